"""Image data sets from the files they are published as: MNIST, Fashion-MNIST, CIFAR-10, a folder of
images, and arrays of anything else. Pixels become floats in [0, 1], shaped N×C×H×W.

The published files are fetched into ``root`` when missing (``downloads.py``), read once, and
kept as one ``.npz`` beside them for the next start.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.data.dataset import Dataset
from src.data.downloads import Remote, ensure_files
from src.data.image_formats import read_cifar10, read_idx
from src.errors import ConfigError, Rule, UserError, boolean, check, check_arguments, nonempty_list_of, null, one_of, positive_int, setting
from src.run_log import log

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_MD5 = ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432", "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")
FASHION_MD5 = ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe", "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10 = Remote("cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",), "c58f30108f718f92721af3b95e74349a")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
a_path = Rule(lambda value: isinstance(value, str) and value != "", "a path")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def data_root(root: str | None) -> Path:
    """``root``, else $NNLAB_DATA, else the user's cache: $XDG_CACHE_HOME/nnlab (~/.cache/nnlab)."""
    check("data.root", root, a_path | null)
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("NNLAB_DATA"):
        return Path(os.environ["NNLAB_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "nnlab"


def mnist(root: str | None = None, download: bool = True, unit_range: bool = False) -> Dataset:
    """70,000 handwritten digits, 1×28×28: 60,000 to train on, the published 10,000 as the test split.

    ``unit_range``: pixels in [-1, 1] (a tanh generator's range) instead of [0, 1].
    """
    files = [Remote(name, tuple(m + name for m in MNIST_MIRRORS), md5) for name, md5 in zip(IDX_FILES, MNIST_MD5)]
    return _unit_range(_idx_set("mnist", files, root, download, [str(d) for d in range(10)]), unit_range)


def fashion_mnist(root: str | None = None, download: bool = True, unit_range: bool = False) -> Dataset:
    """70,000 pictures of clothes in 10 classes, 1×28×28, split as MNIST is."""
    files = [Remote(name, tuple(m + name for m in FASHION_MIRRORS), md5) for name, md5 in zip(IDX_FILES, FASHION_MD5)]
    return _unit_range(_idx_set("fashion_mnist", files, root, download, FASHION_CLASSES), unit_range)


def _unit_range(dataset: Dataset, unit_range: bool) -> Dataset:
    if check("data.unit_range", unit_range, boolean):
        dataset.info[PIXEL_RANGE] = [-1.0, 1.0]
        dataset.features = _in_range(dataset.features, dataset.info)
        dataset.test = (_in_range(dataset.test[0], dataset.info), dataset.test[1])
    return dataset


def cifar10(root: str | None = None, download: bool = True) -> Dataset:
    """60,000 colour pictures in 10 classes, 3×32×32: 50,000 to train on, the published 10,000 as the test split.

    Read from the archive, or from its extracted ``cifar-10-batches-py`` folder when that is there.
    """
    check_arguments("data", locals(), {"download": boolean})
    folder = data_root(root) / "cifar10"

    def read() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        extracted = folder / "cifar-10-batches-py"
        if extracted.is_dir():
            return read_cifar10(extracted)
        ensure_files([CIFAR10], folder, download, "cifar10")
        return read_cifar10(folder / CIFAR10.name)

    return _cached("cifar10", folder, read, CIFAR10_CLASSES)


def _idx_set(name: str, files: list[Remote], root: str | None, download: bool, classes: list[str]) -> Dataset:
    check_arguments("data", {"download": download}, {"download": boolean})
    folder = data_root(root) / name

    def read() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ensure_files(files, folder, download, name)
        x_train, y_train, x_test, y_test = (read_idx(folder / remote.name) for remote in files)
        for images, labels, path in ((x_train, y_train, files[0].name), (x_test, y_test, files[2].name)):
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise UserError(f"data {name}: {folder / path} holds {images.shape}, its labels {labels.shape}: they do not pair up")
        return {"train": (x_train[:, None], y_train), "test": (x_test[:, None], y_test)}

    return _cached(name, folder, read, classes)


def _cached(name: str, folder: Path, read, classes: list[str]) -> Dataset:
    """The data set from ``<folder>/<name>.npz``, made from the published files when it is missing or unreadable."""
    cache = folder / f"{name}.npz"
    splits = None
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as arrays:
                splits = {split: (arrays[f"x_{split}"], arrays[f"y_{split}"]) for split in ("train", "test")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
            log.warning(f"data {name}: the cache {cache} is unreadable ({error}); reading the published files again")
    if splits is None:
        splits = read()
        for split, (_, labels) in splits.items():
            if labels.min() < 0 or labels.max() >= len(classes):
                raise UserError(f"data {name}: {split} labels range over {labels.min()}..{labels.max()}, not 0..{len(classes) - 1}")
        _save_npz(cache, {f"{kind}_{split}": array for split, pair in splits.items() for kind, array in zip("xy", pair)})
    (x, y), test = splits["train"], splits["test"]
    return Dataset(
        _pixels(x), y.astype(np.int64), "classification", name, list(classes), info=picture_info(x.shape[1]),
        test=(_pixels(test[0]), test[1].astype(np.int64)),
    )


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    part = path.with_name(path.name + ".part")
    with part.open("wb") as file:
        np.savez(file, **arrays)
    os.replace(part, path)


def _pixels(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


#: The data's ``info`` key of a data set of pictures: Pillow's mode of its pixels ("L" grey, "RGB"), so that
#: ``src.predict`` can read new picture files as the training pictures were read.
PICTURES = "picture_mode"
#: ... and the range its pixels were mapped to, when not [0, 1].
PIXEL_RANGE = "pixel_range"


def _in_range(pixels: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Pixels in [0, 1] mapped to the data's range (``info``), the same for training and for ``src.predict``."""
    low, high = info.get(PIXEL_RANGE, (0.0, 1.0))
    return pixels * np.float32(high - low) + np.float32(low)


def picture_info(channels: int) -> dict[str, str]:
    return {PICTURES: "L" if channels == 1 else "RGB"}


class UnreadablePicture(Exception):
    """A file Pillow cannot read as a picture (the reason is the message)."""


def read_picture(file: Path, mode: str, size: Sequence[int]) -> np.ndarray:
    """A picture file as C×H×W uint8 pixels in Pillow's ``mode``, resized to ``size`` (height, width)."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert(mode).resize((size[1], size[0]), Image.BILINEAR), dtype=np.uint8)
    # OSError covers Pillow's UnidentifiedImageError and truncated files; a decompression bomb is refused too.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadablePicture(str(error)) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def pictures(files: list[Path], info: dict[str, Any], size: Sequence[int], where: str) -> np.ndarray:
    """Picture files read as the training pictures were (``info``: the data's): N×C×H×W floats in their range;
    an unreadable one stops with one line, ``where`` first."""
    read = []
    for file in files:
        try:
            read.append(read_picture(file, info[PICTURES], size))
        except UnreadablePicture as error:
            raise UserError(f"{where}: {file} is not a readable image ({error})") from None
    return _in_range(_pixels(np.stack(read)), info)


def image_folder(
    path: str | None = None, image_size: int | list[int] = 32, channels: int = 3, on_bad_file: str = "error"
) -> Dataset:
    """One sub-folder per class, its name the class's; PNG, JPEG, BMP, ... read with Pillow and resized."""
    rules = {"path": a_path, "channels": one_of(1, 3), "on_bad_file": one_of("error", "skip")}
    check_arguments("data", locals(), rules)
    size = [image_size, image_size] if isinstance(image_size, int) and not isinstance(image_size, bool) else image_size
    size = list(check("data.image_size", size, nonempty_list_of(positive_int)))
    if len(size) != 2:
        raise ConfigError("data.image_size", image_size, "must be one size or [height, width]")
    folder, where = Path(path).expanduser(), setting("data.path", path)
    if not folder.is_dir():
        raise UserError(f"{where}: no such folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"{where}: needs one sub-folder per class, at least two; found {len(classes)}")
    info, images, labels, bad = picture_info(channels), [], [], []
    for label, name in enumerate(classes):
        for file in sorted(f for f in (folder / name).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES):
            try:
                images.append(read_picture(file, info[PICTURES], size))
            except UnreadablePicture as error:
                if on_bad_file == "error":
                    raise UserError(f"{where}: {file} is not a readable image ({error}); data.on_bad_file=skip leaves such files out") from None
                bad.append(file)
                continue
            labels.append(label)
    if bad:
        log.warning(f"{where}: left out {len(bad)} unreadable file(s), the first {bad[0]}")
    empty = [name for label, name in enumerate(classes) if label not in labels]
    if empty:
        raise UserError(f"{where}: no readable image in {', '.join(empty)}")
    return Dataset(_pixels(np.stack(images)), np.asarray(labels, dtype=np.int64), "classification", folder.name, classes, info=info)


def arrays(path: str | None = None, target_type: str = "auto") -> Dataset:
    """``x`` and ``y`` from an .npz (``x_test``/``y_test`` too, when published apart), or from x.npy and y.npy in a folder.

    ``target_type=auto``: integer targets are class labels, anything else is regressed.
    """
    check("data.target_type", target_type, one_of("auto", "classification", "regression"))
    check("data.path", path, a_path)
    source, where = Path(path).expanduser(), setting("data.path", path)
    try:
        if source.is_dir():
            found = {name: np.load(source / f"{name}.npy", allow_pickle=False) for name in ("x", "y")}
        else:
            with np.load(source, allow_pickle=False) as archive:
                found = {name: archive[name] for name in archive.files}
    except FileNotFoundError as error:
        raise UserError(f"{where}: {error.filename or source} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{where}: not readable numpy arrays ({' '.join(str(error).split())})") from None
    if "x" not in found or "y" not in found:
        raise UserError(f"{where}: needs arrays named x and y; it holds {', '.join(sorted(found)) or 'none'}")
    x, y = found["x"], found["y"]
    if len(x) != len(y):
        raise UserError(f"{where}: x has {len(x)} rows, y has {len(y)}")
    kind = target_type if target_type != "auto" else "classification" if np.issubdtype(y.dtype, np.integer) else "regression"
    test = (found["x_test"], found["y_test"]) if "x_test" in found and "y_test" in found else None
    if kind == "classification":
        y = _labels(y, where)
        test = None if test is None else (test[0], _labels(test[1], where))
    return Dataset(x.astype(np.float32), y, kind, source.stem, test=test)


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise UserError(f"{where}: class labels must be integers 0..K-1 in one column")
    return y.astype(np.int64)
