"""Small files in the exact formats data sets are published in, for tests that cannot download."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B, np.dtype("int32"): 0x0C,
             np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, the type code, the number of dimensions, each dimension big-endian, the data big-endian."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gzipped: bool = True) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def digit_like(count: int, classes: int = 10, size: int = 28, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pictures whose class is a bright square at a place of its own, over noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    images = rng.integers(0, 60, (count, channels, size, size), dtype=np.uint8)
    cell = size // 4
    for i, label in enumerate(labels):
        row, col = divmod(int(label) % 16, 4)
        images[i, :, row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 255
    return images, labels.astype(np.uint8)


def write_mnist_files(folder: Path, train: int = 120, test: int = 40, gzipped: bool = True) -> None:
    """The four IDX files, named as published."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = digit_like(count, seed=seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images[:, 0], gzipped)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gzipped)


def cifar_batch(images: np.ndarray, labels: np.ndarray, label: str) -> bytes:
    """A batch as CIFAR-10's python version pickles it (protocol 2, as Python 2's cPickle wrote it)."""
    batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in labels], b"data": images.reshape(len(images), -1),
             b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    return pickle.dumps(batch, protocol=2)


def write_cifar_archive(path: Path, per_batch: int = 20, extracted: bool = False) -> Path:
    """cifar-10-python.tar.gz (or the cifar-10-batches-py folder it holds) with five train batches and a test batch."""
    blobs = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = digit_like(per_batch, size=32, channels=3, seed=i)
        blobs[name] = cifar_batch(images, labels, name)
    blobs["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": per_batch}, protocol=2)
    if extracted:
        path.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            (path / name).write_bytes(blob)
        return path
    with tarfile.open(path, "w:gz") as archive:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return path


def write_caches(root: Path) -> None:
    """The .npz each published data set is kept as after its first read, so that data=mnist etc. start offline."""
    for name, size, channels in (("mnist", 28, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3)):
        (root / name).mkdir(parents=True, exist_ok=True)
        x_train, y_train = digit_like(120, size=size, channels=channels, seed=0)
        x_test, y_test = digit_like(40, size=size, channels=channels, seed=1)
        np.savez(root / name / f"{name}.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def write_image_folder(folder: Path, per_class: int = 12) -> Path:
    from PIL import Image

    for label, name in enumerate(["cats", "dogs"]):
        (folder / name).mkdir(parents=True, exist_ok=True)
        images, _ = digit_like(per_class, classes=1, size=20, channels=3, seed=label)
        for i, image in enumerate(images):
            picture = image.transpose(1, 2, 0) if label == 0 else image.transpose(1, 2, 0)[::-1].copy()
            Image.fromarray(picture).save(folder / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def write_arrays(path: Path, rows: int = 60) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    return path
