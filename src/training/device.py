"""Where a run computes (CPU, CUDA, MPS) and in which precision."""

from __future__ import annotations

import contextlib
import os
import re
from typing import ContextManager, Iterator

import torch

from src.errors import ConfigError, UserError, check, one_of
from src.run_log import log
from src.training.distributed import is_main_process

PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
MATMUL_PRECISIONS = ("highest", "high", "medium")
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """``auto``: CUDA, else MPS, else CPU; another name, or a device that is absent, is refused with one line naming ``key``."""
    check(key, name, one_of(*DEVICES))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(key, name, "CUDA is not available on this machine; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(key, name, "MPS is not available on this machine; use auto or cpu")
    return torch.device(name)


def allocation_failure(error: BaseException) -> str | None:
    """``out of memory (tried to allocate 2.00 GiB)`` for an allocation that failed (CUDA's or MPS's
    OutOfMemoryError, the CPU allocator's error), to which the caller adds what makes its work smaller; None
    for any other error."""
    if not isinstance(error, torch.OutOfMemoryError) and "can't allocate memory" not in str(error):
        return None
    tried = re.search(r"tried to allocate ([\d.]+ \w+)", str(error), re.IGNORECASE)
    return f"out of memory{f' (tried to allocate {tried.group(1)})' if tried else ''}"


@contextlib.contextmanager
def out_of_memory_in_one_line(device: torch.device, batch_size: int) -> Iterator[None]:
    """For evaluation and prediction: an allocation that fails inside ends in one line naming what makes the
    work smaller, the rows of a forward pass (``eval_batch_size``) and the device."""
    try:
        yield
    except RuntimeError as error:
        if (failure := allocation_failure(error)) is None:
            raise
        other = "" if device.type == "cpu" else " or device=cpu"
        raise UserError(f"{failure}: lower eval_batch_size (now {batch_size}){other}") from None


def precision_tools(precision: str, device: torch.device) -> tuple[ContextManager, torch.amp.GradScaler]:
    """The context a forward pass runs in, and the gradient scaler: one code path for every precision.

    32 bits: a null context and a disabled scaler, whose ``scale``, ``unscale_``, ``step`` and
    ``update`` pass straight through. 16-mixed: autocast to fp16 and a scaler that guards against
    underflow (CUDA). bf16-mixed needs no scaler; on the CPU too, where bfloat16 instructions (AVX-512
    BF16, AMX) make convolutions faster, though autocast's casts cost more than they save on tiny layers.
    """
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type != "cuda":
        instead = "bf16-mixed or 32" if device.type == "cpu" else "32"
        raise ConfigError("trainer.precision", precision, f"mixed precision in float16 needs CUDA; this run is on {device.type}: use {instead}")
    if dtype is torch.bfloat16 and device.type not in ("cuda", "cpu"):
        raise ConfigError("trainer.precision", precision, f"mixed precision in bfloat16 needs CUDA or the CPU; this run is on {device.type}: use 32")
    autocast = contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
    return autocast, torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)


@contextlib.contextmanager
def matmul_precision(setting: str, device: torch.device | None = None) -> Iterator[None]:
    """float32 matrix products at ``setting`` for the while, then torch's setting as it was (it is global).

    ``highest``: full float32, torch's default. ``high``: TF32 on the tensor cores of CUDA GPUs since
    Ampere, which cuDNN's convolutions already use by default (a 10-bit mantissa; several times faster).
    ``medium``: bfloat16 products. CPUs without such units compute at full precision in any case.
    On such a GPU (``device``) at ``highest``, one line says so (from the first process only).
    """
    tensor_cores = device is not None and device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
    if setting == "highest" and tensor_cores and is_main_process():
        log.info("note: this GPU multiplies float32 matrices several times faster in TF32: trainer.matmul_precision=high")
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(setting)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@contextlib.contextmanager
def deterministic_algorithms(setting: bool | str) -> Iterator[None]:
    """``true``: torch's deterministic algorithms only, for the while (an operation without one stops the run);
    ``warn``: the same, but such an operation runs on with a warning; ``false``: torch's settings as they are.

    On CUDA that is also cuDNN's convolutions (none chosen by timing them: ``benchmark`` off) and cuBLAS,
    which torch runs deterministically only with ``CUBLAS_WORKSPACE_CONFIG`` set (``:4096:8`` unless it is).
    The CPU's operations are deterministic already; torch then also fills new tensors' memory with NaN (the
    default job's time: within noise).
    """
    if setting is False:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark
    workspace_was_set = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=setting == "warn")
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        if not workspace_was_set:
            del os.environ["CUBLAS_WORKSPACE_CONFIG"]


@contextlib.contextmanager
def numerics(detect_anomaly: bool, matmul: str, deterministic: bool | str, device: torch.device | None = None) -> Iterator[None]:
    """A run's numerical settings, which are torch's global ones, for the while: ``trainer.detect_anomaly``,
    ``trainer.matmul_precision`` and ``trainer.deterministic``."""
    with torch.autograd.set_detect_anomaly(detect_anomaly), matmul_precision(matmul, device), deterministic_algorithms(deterministic):
        yield


def to_channels_last(module: torch.nn.Module) -> None:
    """Image-shaped (4-D) weights in channels-last order, in place.

    ``Module.to(memory_format=...)`` refuses the 5-D weights of stacked members' convolutions
    ([members, out, in, h, w]); those are reshaped per step and stay as they are.
    """
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
