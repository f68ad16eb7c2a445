"""TensorBoard: scalars, histograms, images, text, the model graph and the HParams tab, in one run folder."""

from __future__ import annotations

import functools
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable

import google_crc32c
import numpy as np
import torch
from isal import isal_zlib
from omegaconf import OmegaConf
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.summary.writer import record_writer
from torch import Tensor, nn
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torch.utils.tensorboard.summary import text

from src import REPO_ROOT
from src.config_text import config_yaml
from src.errors import Rule, boolean, check_arguments, non_negative_int, null
from src.run_log import log
from src.training.event_file import EventFile
from src.training.model_graph import model_graph
from src.visuals import uint8_pixels


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config as ``optimizer.lr``-style keys, without ``_target_``s, paths, the logger and Hydra's flags."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("_partial_", "_target_") or (not prefix and key in NOT_HYPERPARAMETERS):
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


#: Top-level keys and config groups that say where and how a run is logged, not what it learns.
NOT_HYPERPARAMETERS = ("paths", "logger", "callbacks", "launcher", "hparams_search", "hydra", "choices", "overrides", "command")


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """What tells runs apart in the HParams table: each config group's choice (``optimizer: gd``), every
    key set on the command line (``optimizer.lr: 0.5``, its resolved value) and every key an experiment
    set away from its option's own yaml (``cnn_digits``' ``optimizer.lr: 0.002``); without Hydra's record
    of them (a config composed in code), every leaf."""
    if "choices" not in config:
        return flatten(config)
    chosen = {group: option for group, option in config["choices"].items() if option is not None and group not in NOT_HYPERPARAMETERS}
    flat = flatten(config)
    chosen |= {key: flat[key] for key, default in _option_defaults(config["choices"]).items() if key in flat and flat[key] != default}
    for override in config.get("overrides", []):
        key = override.split("=", 1)[0].lstrip("+~")
        if key in flat:
            chosen[key] = flat[key]
    return chosen


def _option_defaults(choices: dict[str, str | None]) -> dict[str, Any]:
    """The leaves each chosen option's yaml sets itself (``conf/<group>/<option>.yaml``), as ``group.key``;
    interpolations and options that write elsewhere than their group (``# @package _global_``) left out."""
    defaults: dict[str, Any] = {}
    for group, option in choices.items():
        path = REPO_ROOT / "conf" / group / f"{option}.yaml"
        if option is None or group in NOT_HYPERPARAMETERS or not path.is_file():
            continue
        text = path.read_text()
        if "@package" in text:
            continue
        own = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
        own.pop("defaults", None)
        defaults |= {key: value for key, value in flatten(own, f"{group}.").items() if not (isinstance(value, str) and "${" in value)}
    return defaults


def _masked_crc32c(data: bytes) -> int:
    """The checksum each event record carries (TFRecord's masked CRC-32C), computed in C by google-crc32c.
    TensorBoard's record writer computes it in pure Python a byte at a time: 3.7 ms for a 26 kB picture,
    ~20 µs for a scalar."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


record_writer.masked_crc32c = _masked_crc32c


def _written(method: Callable) -> Callable:
    """What ``method`` adds reaches the disk when it returns (TensorBoard shows it at its next reload). An
    OSError (disk full, folder removed) stops the logging with one line; the training goes on."""

    @functools.wraps(method)
    def guarded(self: "TensorBoardLogger", *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return None
        try:
            method(self, *args, **kwargs)
            if self._events is not None:
                self._events.flush()
        except OSError as error:
            self.failed = True
            log.warning(f"warning: cannot write TensorBoard events to {self.log_dir} ({error.strerror or error}); training goes on without them")
            return None

    return guarded


class TensorBoardLogger:
    """Implements ``src.training.logger.Logger``."""

    RULES: dict[str, Rule] = {
        "histogram_every_n_checks": non_negative_int | null,  # 0: never; null: at step 0 and at the end only
        "figures_every_n_checks": non_negative_int | null,
        "graph": boolean,
    }

    def __init__(
        self,
        log_dir: str | Path,
        histogram_every_n_checks: int | None = 20,
        figures_every_n_checks: int | None = 20,
        graph: bool = True,
    ) -> None:
        check_arguments("logger.tensorboard", locals(), self.RULES)
        self.log_dir = Path(log_dir)
        self.histogram_every_n_checks = histogram_every_n_checks
        self.figures_every_n_checks = figures_every_n_checks
        self.graph = graph
        self.failed = False
        self._events: EventFile | None = None

    @property
    def events(self) -> EventFile:
        if self._events is None:  # opened on first use: a run that fails its checks leaves no empty event file
            self._events = EventFile(self.log_dir)
        return self._events

    def member(self, name: str) -> "TensorBoardLogger":
        """A run of its own in a sub-folder (TensorBoard lists it as ``<run>/seed_7``): scalars only."""
        return TensorBoardLogger(self.log_dir / name, histogram_every_n_checks=None, figures_every_n_checks=None, graph=False)

    @_written
    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        self.events.add_scalars(metrics, step)

    @_written
    def log_graph(self, model: nn.Module, example: Tensor) -> None:
        if not self.graph:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings say nothing to a user
            try:
                self.events.add_graph(model_graph(model, example))
            except Exception as error:  # a model the tracer cannot follow still trains
                log.info(f"note: no model graph in TensorBoard ({type(error).__name__}: {error})")

    @_written
    def log_histograms(self, model: nn.Module, step: int) -> None:
        for name, parameter in model.named_parameters():
            self.events.add_summary(_histogram(f"weights/{name}", parameter), step)
            if parameter.grad is not None:
                self.events.add_summary(_histogram(f"gradients/{name}", parameter.grad), step)

    @_written
    def log_visuals(self, visuals: dict[str, Tensor | str], step: int) -> None:
        for tag, visual in visuals.items():
            self.events.add_summary(text(tag, visual) if isinstance(visual, str) else _png(tag, visual), step)

    @_written
    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        """This run's session only (its hyper-parameters and final metrics), in its own folder: TensorBoard
        derives the HParams columns from every run's sessions, so runs of any kind sit in one table (an
        experiment summary per run would make it show the first run's columns for all). The composed
        config and the command line go to the Text tab."""
        clean = {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in hyperparameters(config).items()}
        _, session_start, session_end = hparams_summary(clean, metrics)
        for summary in (session_start, session_end):
            self.events.add_summary(summary)
        shown = {key: value for key, value in config.items() if key not in ("choices", "overrides", "command")}
        config_text = config_yaml(shown)
        self.events.add_summary(text("run/config", "    " + config_text.replace("\n", "\n    ")))
        if "command" in config:
            self.events.add_summary(text("run/command", f"    {config['command']}"))

    @_written
    def close(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            events.close()


def _histogram(tag: str, values: Tensor, bins: int = 64) -> Summary:
    """The finite values in ``bins`` equal buckets from their least to their greatest, counted by torch where
    they live. TensorBoard's summary goes through numpy, whose dot product for the sum of squares wakes
    OpenBLAS's threads: they spin ~150 ms of CPU after a CNN's histograms, beside the training. (A value
    within float32 rounding of a bucket's edge may fall in the bucket beside numpy's.)"""
    values = values.detach().flatten().float()
    if not bool(values.isfinite().all()):
        values = values[values.isfinite()]
    if not len(values):
        return Summary()
    low, high = map(float, values.aminmax())
    left, right = (low - 0.5, high + 0.5) if low == high else (low, high)  # one value: numpy's range around it
    counts = torch.histc(values, bins, left, right).tolist()
    limits = torch.linspace(left, right, bins + 1, dtype=torch.float64).tolist()
    total, squares = torch.stack([values.sum(), values.square().sum()]).tolist()
    # The buckets from the first to the last that holds a value; TensorBoard reads each bucket's right
    # edge, so an empty bucket before them holds the left one.
    first = next(i for i, count in enumerate(counts) if count)
    last = max(i for i, count in enumerate(counts) if count)
    histogram = HistogramProto(
        min=low, max=high, num=len(values), sum=total, sum_squares=squares,
        bucket_limit=limits[first : last + 2], bucket=[0.0, *counts[first : last + 1]],
    )
    return Summary(value=[Summary.Value(tag=tag, histo=histogram)])


def _png(tag: str, image: Tensor) -> Summary:
    """A [C, H, W] picture (float in [0, 1], or uint8; 1 to 4 channels: grey, grey and alpha, RGB, RGBA)."""
    channels, height, width = image.shape
    encoded = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png_bytes(image))
    return Summary(value=[Summary.Value(tag=tag, image=encoded)])


_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → the PNG header's colour type


def png_bytes(image: Tensor) -> bytes:
    """The picture as a PNG file: each row "up"-filtered (minus the row above it), deflated by ISA-L at its level 1.

    Pillow's encoder tries all five PNG filters on every row of an RGB picture and cannot be told to use
    one: 5.2 ms for a 10-class confusion matrix (464×452), against ~0.4 ms here (its deflate: 0.19 ms by
    ISA-L, 1.7 ms by zlib's level 1, for the same size) for a file ~7% larger. TensorBoard's own add_image goes
    through float64 arrays and zlib's level 6."""
    pixels = uint8_pixels(image)
    channels, height, width = pixels.shape
    rows = pixels.permute(1, 2, 0).reshape(height, width * channels).numpy()
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = 2  # the "up" filter's number; the first row's "row above" is zeros
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", isal_zlib.compress(filtered.tobytes(), 1)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
