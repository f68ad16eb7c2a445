"""Checkpoint files: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from src.errors import UserError, in_one_line, setting


def serialize(state: dict[str, Any]) -> bytes:
    """The checkpoint as bytes: a snapshot that later training steps cannot change."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def write_durably(data: bytes | str, path: Path) -> None:
    """Temporary file, flush, fsync, atomic rename: a reader sees the old file or the new one."""
    data = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Load tensors and plain containers only; anything else in the file is refused, never run. ``key``: the
    setting that named the file, in the refusals."""
    file, where = Path(path).expanduser(), setting(key, path)
    if not str(path).strip():  # `ckpt_path=` on the command line: Path("") is the current folder
        raise UserError(f"{where}: empty; give a checkpoint file (<run>/checkpoints/last.ckpt)")
    if file.is_dir():  # a run folder, say
        found = sorted(str(ckpt.relative_to(file)) for ckpt in [*file.glob("*.ckpt"), *file.glob(f"{CHECKPOINT_FOLDER}/*.ckpt")])
        raise UserError(f"{where}: a folder, not a checkpoint file" + (f"; in it: {', '.join(found)}" if found else ""))
    if not file.is_file():
        raise UserError(f"{where}: no such checkpoint file")
    with file.open("rb") as handle:
        start = handle.read(16)
    if not start.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive, or its older format: a pickle
        raise UserError(f"{file}: not a checkpoint file (torch.save writes a zip archive; this file {f'begins {start!r}' if start else 'is empty'})")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)|Unsupported operand \d+", str(error))
        what = found.group(1) or found.group(0) if found else "unsafe content"
        raise UserError(f"{file}: refused, it holds more than tensors and plain data ({what}); nothing in it was run") from None
    except Exception as error:  # noqa: BLE001 - random bytes reach the unpickler as IndexError, KeyError, OverflowError, ...
        raise UserError(f"{file}: not a readable checkpoint (truncated or corrupt: {in_one_line(error)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{file}: not a checkpoint of this framework (no model state)")
    return state


def run_fingerprint(config: dict[str, Any], data: dict[str, Any], optimizers: list, schedulers: list) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote its checkpoint, beyond the weights' shapes."""

    def target(group: str) -> Any:
        node = config.get(group)
        return node.get("_target_") if isinstance(node, dict) else node

    # Loading an optimizer's state brings back its hyper-parameters: a changed one would be silently undone.
    settings = {
        f"optimizer.{name}": list(value) if isinstance(value, tuple) else value
        for name, value in (optimizers[0].defaults.items() if optimizers else ())
        if isinstance(value, (int, float, str, bool, tuple, type(None)))
    }
    return {
        "data set": data["name"],
        "data input shape": list(data["input_shape"]),
        "data target type": data["target_type"],
        "number of classes": data["num_classes"],
        "model": target("model"),
        "activation": target("activation"),
        "task": target("task"),
        "optimizer": [type(optimizer).__name__ for optimizer in optimizers],
        "scheduler": [type(scheduler).__name__ for scheduler in schedulers],
        **settings,
    }


def restore_training_state(
    path: str, model: torch.nn.Module, optimizers: list, schedulers: list, fingerprint: dict[str, Any]
) -> dict[str, Any]:
    """Load a last.ckpt's weights, optimizer and scheduler states into the run's objects; return the checkpoint.

    Refused, before any of it is loaded, when the checkpoint comes from another kind of run.
    """
    checkpoint, where = load_checkpoint(path), setting("ckpt_path", path)
    if "optimizers" not in checkpoint:
        raise UserError(f"{where}: holds weights only (a best.ckpt); resume from last.ckpt")
    for what, here in fingerprint.items():
        there = checkpoint.get("run", {}).get(what, here)  # checkpoints written before this check carry none
        if there != here:
            raise UserError(f"{where}: does not fit this run ({what}: {_words(there)} in the checkpoint, {_words(here)} in this run)")
    load_weights(model, checkpoint["model"], f"{where}: does not match this model")
    try:
        for optimizer, saved in zip(optimizers, checkpoint["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
    except (ValueError, KeyError) as error:
        raise UserError(f"{where}: does not match this optimizer ({error})") from None
    for scheduler, saved in zip(schedulers, checkpoint.get("schedulers", [])):
        scheduler.load_state_dict(saved)
    return checkpoint


def _words(value: Any) -> str:
    if isinstance(value, list):
        return "none" if not value else ", ".join(map(str, value))
    return str(value)


def rng_states() -> dict[str, Any]:
    """torch, numpy and python generator states, as tensors and plain values. Python's 625 numbers go in one
    tensor: pickled one by one as a list, they took a quarter of a digits MLP's last.ckpt (1.6 ms → 1.2 ms)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }


def restore_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    internal = p["internal"].tolist() if isinstance(p["internal"], Tensor) else p["internal"]  # a list before 2026-11-29
    random.setstate((p["version"], tuple(internal), p["gauss"]))


def load_weights(module: torch.nn.Module, weights: dict[str, Tensor], refusal: str) -> None:
    """Load ``weights`` into ``module``, or raise one line: ``refusal`` followed by the first difference."""
    mismatch = state_mismatch(module.state_dict(), weights)
    if mismatch:
        raise UserError(f"{refusal} ({mismatch})")
    module.load_state_dict(weights)


def state_mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> str:
    """The first difference in names or shapes between two state dicts, in words ('' if none)."""
    for name in expected.keys() - found.keys():
        return f"{name} is missing from the checkpoint"
    for name in found.keys() - expected.keys():
        return f"the checkpoint has {name}, which this model lacks"
    for name, tensor in expected.items():
        if tensor.shape != found[name].shape:
            return f"{name} has shape {tuple(found[name].shape)} in the checkpoint, {tuple(tensor.shape)} in this model"
    return ""


class CheckpointWriter:
    """Writes serialized checkpoints on one background thread, so the loop does not wait for fsync.

    The caller serializes (a snapshot, under the GIL); the thread only writes bytes, syncs and
    renames, which release the GIL. At most one write is in flight; ``wait`` returns once
    everything submitted is on disk (and raises the write's error, if any).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None

    def submit(self, files: list[tuple[bytes, Path]]) -> None:
        self.wait()
        self._pending = self._pool.submit(lambda: [write_durably(data, path) for data, path in files])

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


CHECKPOINT_FOLDER = "checkpoints"  # inside a run folder
FAILED = "failed"  # inside the folder of a multirun's job that failed: the reason, in one line


def run_folder(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint file belongs to (its own folder for a checkpoint moved elsewhere)."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == CHECKPOINT_FOLDER else path.parent


class RunCheckpoints:
    """A run's ``last.ckpt`` (everything a resume needs) and ``best.ckpt`` (the weights at the best check).

    The best snapshot is kept in memory and written with the next last.ckpt; writes happen on a
    background thread from serialized copies. ``every_n_epochs="auto"``: at every epoch's end,
    but not within ``auto_seconds`` of the previous write (an epoch of whole-batch gradient
    descent lasts a fraction of a millisecond; thousands of checkpoints would cost more than the
    training).
    """

    def __init__(
        self, run_dir: Path, every_n_epochs: int | str, every_n_minutes: float | None, auto_seconds: float = 10.0
    ) -> None:
        self.directory = run_dir / CHECKPOINT_FOLDER
        self.every_n_epochs = every_n_epochs
        self.every_n_minutes = every_n_minutes
        self.auto_seconds = auto_seconds
        self.writer = CheckpointWriter()
        self.best: dict[str, Any] | None = None
        self.best_dirty = False  # ``best`` is newer than best.ckpt on disk
        self.last_saved_step: int | None = None  # what last.ckpt on disk holds, for messages
        self.last_save_time = time.monotonic()

    @property
    def last(self) -> Path:
        return self.directory / "last.ckpt"

    def keep_best(self, snapshot: dict[str, Any]) -> None:
        self.best, self.best_dirty = snapshot, True

    def resume_best(self, last_checkpoint: str | Path) -> None:
        """The best weights of the run being resumed, copied into this run's folder at the next write."""
        best = Path(last_checkpoint).with_name("best.ckpt")
        if best.is_file():
            self.keep_best(load_checkpoint(best))

    def due_at_epoch_end(self, epoch: int) -> bool:
        since = time.monotonic() - self.last_save_time
        if self.every_n_minutes is not None and since >= 60 * self.every_n_minutes:
            return True
        if self.every_n_epochs == "auto":
            return since >= self.auto_seconds
        return epoch % self.every_n_epochs == 0

    def save(self, state: dict[str, Any]) -> None:
        files = [(serialize(state), self.last)]
        if self.best_dirty:
            # best.ckpt first: a kill between the two leaves a last.ckpt whose best.ckpt is never older than it.
            files.insert(0, (serialize(self.best), self.directory / "best.ckpt"))
            self.best_dirty = False
        self.writer.submit(files)
        self.last_saved_step = state["loop"]["step"]
        self.last_save_time = time.monotonic()

    def wait(self) -> None:
        self.writer.wait()

    def close(self) -> None:
        self.writer.close()
