"""The formats image data sets are published in, read with their own headers checked.

IDX (MNIST, Fashion-MNIST; gzipped or not) and CIFAR's "python version" batches, which are
pickles: read with an unpickler that builds numpy arrays, lists, numbers and strings and refuses
everything else, so a file that tries to run code is refused, never run.
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import UserError

# IDX: two zero bytes, a type code, the number of dimensions; then each dimension as a big-endian uint32.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    raw = _read_maybe_gzipped(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise UserError(f"{path}: not an IDX file (its first bytes are {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{path}: IDX header cut short ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(f"{path}: IDX of shape {shape} needs {expected} bytes, the file holds {len(raw)} (truncated or corrupt)")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _read_maybe_gzipped(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise UserError(f"{path}: gzip stream broken ({error}): the file is truncated or corrupt") from None


class _ArraysOnly(pickle.Unpickler):
    """Builds numpy arrays and plain values; any other class or function is refused."""

    _reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own array constructor, wherever it lives
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes into a protocol-2 pickle
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays and plain values are read")


def read_cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: ``data`` (N×3072 uint8, channel-major) and ``labels``; as N×3×32×32 and N."""
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise UserError(f"{where}: not a CIFAR batch ({error})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{where}: not a CIFAR batch (a {type(batch).__name__}, not a dict)")
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    images, labels = batch.get("data"), batch.get("labels")
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or labels is None:
        raise UserError(f"{where}: a CIFAR batch holds 'data' (N×3072) and 'labels'; this one holds {sorted(batch)}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(images),):
        raise UserError(f"{where}: {len(images)} images but {labels.size} labels")
    return images.astype(np.uint8).reshape(-1, 3, 32, 32), labels


def read_cifar10(source: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train (data_batch_1..5) and test (test_batch) splits, from the archive or its extracted folder."""
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    blobs = _members_of(source, [name for group in names.values() for name in group])
    splits = {}
    for split, group in names.items():
        parts = [read_cifar_batch(blobs[name], f"{source}:{name}") for name in group]
        splits[split] = np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
    return splits


def _members_of(source: Path, names: list[str]) -> dict[str, bytes]:
    if source.is_dir():
        missing = [name for name in names if not (source / name).is_file()]
        if missing:
            raise UserError(f"{source}: missing {', '.join(missing)}")
        return {name: (source / name).read_bytes() for name in names}
    try:
        with tarfile.open(source, "r:gz") as archive:
            members = {Path(member.name).name: member for member in archive.getmembers() if member.isfile()}
            missing = [name for name in names if name not in members]
            if missing:
                raise UserError(f"{source}: the archive lacks {', '.join(missing)}")
            return {name: archive.extractfile(members[name]).read() for name in names}  # read, never extracted
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise UserError(f"{source}: not a readable .tar.gz ({error}): the file is truncated or corrupt") from None
