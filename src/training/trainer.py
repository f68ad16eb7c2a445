"""The one generic training loop.

Read top to bottom: ``fit`` sets up, ``_train`` runs epochs of steps, ``_check`` is what happens
every few epochs (metrics, logging, best model, early stopping, checkpoints), ``_finish`` writes
the results. What a batch means lives in the task; this file never looks at the model's kind.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from src.data.datamodule import DataModule
from src.errors import ConfigError, UserError
from src.tasks.task import OptimizerFactory, Task
from src.training.checkpoint import (
    CheckpointWriter,
    load_checkpoint,
    load_weights,
    restore_rng_states,
    rng_states,
    serialize,
    write_durably,
)
from src.training import distributed
from src.training.schedules import build_scheduler

PRECISIONS = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
DEVICES = ("auto", "cpu", "cuda", "mps")
# With val_every_n_epochs=auto a check comes about every this many steps, and at least every epoch.
AUTO_CHECK_STEPS = 100
AUTO_CHECKPOINT_SECONDS = 10.0


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run saved a checkpoint and stopped."""

    def __init__(self, signal_name: str, checkpoint: Path, step: int) -> None:
        super().__init__(f"{signal_name} at step {step}: checkpoint saved to {checkpoint}")
        self.signal_name, self.checkpoint, self.step = signal_name, checkpoint, step


class _StopOnSignals:
    """While training, SIGINT and SIGTERM ask the loop to stop after the current step."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.trainer.interrupted_by = signal.Signals(signum).name

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


@dataclass
class LoopState:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimization steps (one per batch)
    batch_in_epoch: int = 0
    best_score: float | None = None
    checks_without_improvement: int = 0
    checked_at_step: int = -1  # the step of the latest check; equal to `step` when nothing is left to check


class Trainer:
    def __init__(
        self,
        run_dir: str | Path,
        logger: Any = None,
        max_epochs: int | None = None,
        max_steps: int | None = 10_000,
        device: str = "auto",
        precision: str | int = "32",
        gradient_clip_val: float | None = None,
        seed: int = 42,
        val_every_n_epochs: int | str = "auto",
        eval_batch_size: int = 4096,
        monitor: str = "auto",
        mode: str = "auto",
        patience: int | None = None,
        min_delta: float = 0.0,
        checkpoint_every_n_epochs: int | str = "auto",
        checkpoint_every_n_steps: int | None = None,
        checkpoint_every_n_minutes: float | None = 10.0,
        on_nonfinite_loss: str = "stop",
        progress_bar: bool | str = "auto",
        detect_anomaly: bool = False,
        compile: bool = False,
        channels_last: bool | str = "auto",
    ) -> None:
        for key, value in (("trainer.max_epochs", max_epochs), ("trainer.max_steps", max_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(key, value, "must be a positive integer or null")
        if max_epochs is None and max_steps is None:
            raise ConfigError("trainer.max_epochs", max_epochs, "set it or trainer.max_steps; both are null")
        if str(precision) not in PRECISIONS:
            raise ConfigError("trainer.precision", precision, f"allowed: {', '.join(PRECISIONS)}")
        if device not in DEVICES:
            raise ConfigError("trainer.device", device, f"allowed: {', '.join(DEVICES)}")
        if val_every_n_epochs != "auto" and (not isinstance(val_every_n_epochs, int) or val_every_n_epochs < 1):
            raise ConfigError("trainer.val_every_n_epochs", val_every_n_epochs, "must be a positive integer or auto")
        if gradient_clip_val is not None and not gradient_clip_val > 0:
            raise ConfigError("trainer.gradient_clip_val", gradient_clip_val, "must be > 0 or null")
        if mode not in ("auto", "min", "max"):
            raise ConfigError("trainer.mode", mode, "allowed: auto, min, max")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ConfigError("trainer.patience", patience, "must be a positive integer or null")
        if checkpoint_every_n_epochs != "auto" and (not isinstance(checkpoint_every_n_epochs, int) or checkpoint_every_n_epochs < 1):
            raise ConfigError("trainer.checkpoint_every_n_epochs", checkpoint_every_n_epochs, "must be a positive integer or auto")
        if checkpoint_every_n_steps is not None and (not isinstance(checkpoint_every_n_steps, int) or checkpoint_every_n_steps < 1):
            raise ConfigError("trainer.checkpoint_every_n_steps", checkpoint_every_n_steps, "must be a positive integer or null")
        if on_nonfinite_loss not in ("stop", "skip"):
            raise ConfigError("trainer.on_nonfinite_loss", on_nonfinite_loss, "allowed: stop, skip")
        self.run_dir = Path(run_dir)
        self.logger = logger
        self.max_epochs = max_epochs or math.inf
        self.max_steps = max_steps or math.inf
        self.device = _resolve_device(device)
        self.precision = str(precision)
        if PRECISIONS[self.precision] is not None and self.device.type != "cuda":
            raise ConfigError("trainer.precision", precision, f"mixed precision needs CUDA; this run is on {self.device.type}: use 32")
        self.gradient_clip_val = gradient_clip_val
        self.seed = seed
        self.val_every_n_epochs = val_every_n_epochs
        self.eval_batch_size = eval_batch_size
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.checkpoint_every_n_epochs = checkpoint_every_n_epochs
        self.checkpoint_every_n_steps = checkpoint_every_n_steps or math.inf
        self.checkpoint_every_n_minutes = checkpoint_every_n_minutes
        self.skip_nonfinite = on_nonfinite_loss == "skip"
        self.progress_bar = sys.stderr.isatty() if progress_bar == "auto" else bool(progress_bar)
        self.detect_anomaly = detect_anomaly
        self.compile = compile
        # Convolutions run faster on CUDA with channels-last tensors; only 4-D tensors change.
        self.channels_last = self.device.type == "cuda" if channels_last == "auto" else bool(channels_last)
        self.checkpoint_dir = self.run_dir / "checkpoints"

    # ------------------------------------------------------------------ setup
    def fit(
        self,
        task: Task,
        data: DataModule,
        make_optimizer: OptimizerFactory,
        batch_size: int | None = None,
        make_scheduler: Callable | None = None,
        ckpt_path: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> dict[str, float]:
        """Train ``task`` on ``data``; return the final metrics (also in metrics.json)."""
        self.rank, self.world_size = distributed.world()
        if self.world_size > 1:
            self.device = distributed.setup(self.device)
        self.task = task.to(self.device)
        self.data = data.to(self.device)
        if self.channels_last:
            task.to(memory_format=torch.channels_last)
            data.to_channels_last()
        if self.compile:
            task.model.compile()  # in place: the state_dict keys, and so the checkpoints, stay the same
        # What computes a step's loss: the task itself, or the task wrapped to average gradients over ranks.
        self.step_loss = (
            DistributedDataParallel(task, find_unused_parameters=len(set(task.optimizer_order)) > 1)
            if self.world_size > 1
            else task.training_step
        )
        if self.rank != 0:
            self.logger = None  # only rank 0 writes
        self.batch_size = batch_size
        self.config = config or {}
        self.data_state = data.spec.state_dict()  # what evaluate and predict need to rebuild the task
        self.optimizers = task.configure_optimizers(make_optimizer)
        self.steps_per_epoch = steps_per_epoch = data.steps_per_epoch(batch_size)
        # What an epoch-based schedule spans: max_epochs, or the epochs that max_steps allows.
        planned_epochs = self.max_epochs if self.max_epochs != math.inf else int(-(-self.max_steps // steps_per_epoch))
        self.schedulers = [build_scheduler(make_scheduler, opt, planned_epochs) for opt in self.optimizers] if make_scheduler else []
        self.check_every = (
            max(1, AUTO_CHECK_STEPS // steps_per_epoch) if self.val_every_n_epochs == "auto" else self.val_every_n_epochs
        )
        self.evaluated_splits = [split for split in task.evaluated_splits if split in data.splits] or ["train"]
        split = self.evaluated_splits[-1]  # val when there is one
        self.monitor_name = f"{split}/{task.monitor}" if self.monitor == "auto" else self.monitor
        self.monitor_mode = task.monitor_mode if self.mode == "auto" else self.mode
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "16-mixed" else None
        self.state = LoopState()
        self.best_checkpoint: dict[str, Any] | None = None
        self.best_dirty = False  # best_checkpoint is newer than best.ckpt on disk
        self.last_saved: dict[str, Any] | None = None  # what last.ckpt on disk holds (step), for messages
        self._check_model_fits_data()
        # The model's tensors, updated in place by the optimizers: copying them skips state_dict()'s module walk.
        self.live_state = task.state_dict()
        self.resumed_window: dict[int, list[Tensor]] = {}
        self.last_metrics: dict[str, float] = {}  # the latest check's, so a resumed finished run reports them unchanged
        if ckpt_path is not None:
            self._resume(ckpt_path)
        self.writer = CheckpointWriter()
        self.interrupted_by: str | None = None
        anomaly = torch.autograd.detect_anomaly() if self.detect_anomaly else contextlib.nullcontext()
        try:
            with anomaly, _StopOnSignals(self):
                started = time.perf_counter()
                metrics = self._train()
                self.train_seconds = time.perf_counter() - started
            if self.interrupted_by is not None:
                self._save_checkpoints()
                self.writer.wait()
                raise Interrupted(self.interrupted_by, self.checkpoint_dir / "last.ckpt", self.state.step)
            return self._finish(metrics)
        finally:
            self.writer.close()
            if self.logger is not None:
                self.logger.close()

    def _check_model_fits_data(self) -> None:
        x, y = self.data.splits["train"]
        self.task.eval()  # no dropout draws, no batch-norm statistics: this try-out leaves no trace
        try:
            with torch.no_grad():
                self.task.evaluation_step((x[:2], y[:2]))
        except RuntimeError as error:
            message = str(error).splitlines()[0]
            raise UserError(
                f"model {type(self.task.model).__name__} does not fit data {self.data.name} "
                f"(inputs of shape {tuple(x.shape[1:])}): {message}"
            ) from None

    def _resume(self, ckpt_path: str) -> None:
        checkpoint = load_checkpoint(ckpt_path)
        load_weights(self.task, checkpoint["model"], f"ckpt_path={ckpt_path}: does not match this model")
        if "optimizers" not in checkpoint:
            raise UserError(f"ckpt_path={ckpt_path}: holds weights only (a best.ckpt); resume from last.ckpt")
        try:
            for optimizer, saved in zip(self.optimizers, checkpoint["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
        except (ValueError, KeyError) as error:
            raise UserError(f"ckpt_path={ckpt_path}: does not match this optimizer ({error})") from None
        for scheduler, saved in zip(self.schedulers, checkpoint.get("schedulers", [])):
            scheduler.load_state_dict(saved)
        self.state = LoopState(**checkpoint["loop"])
        self.resumed_window = {index: list(losses) for index, losses in checkpoint.get("window", {}).items()}
        self.last_metrics = dict(checkpoint.get("metrics", {}))
        restore_rng_states(checkpoint["rng"])
        best = Path(ckpt_path).with_name("best.ckpt")
        self.best_checkpoint = load_checkpoint(best) if best.is_file() else None
        self.best_dirty = self.best_checkpoint is not None  # this run's folder gets its own copy
        if self.rank == 0:
            print(f"resumed from {ckpt_path} at epoch {self.state.epoch}, step {self.state.step}")

    # ------------------------------------------------------------------ the loop
    def _train(self) -> dict[str, float]:
        task, state = self.task, self.state
        order = task.optimizer_order
        # The step losses since the last check (carried over from the checkpoint when resuming).
        recorded: dict[int, list[Tensor]] = {index: self.resumed_window.get(index, []) for index in set(order)}
        self.recorded = recorded
        self.window_start = state.step - len(recorded[order[0]]) // order.count(order[0])
        self.last_save_time = time.monotonic()
        skip_nonfinite, every_n_steps = self.skip_nonfinite, self.checkpoint_every_n_steps
        step_loss, shard = self.step_loss, (self.rank, self.world_size)
        clip = self.gradient_clip_val
        autocast = PRECISIONS[self.precision]
        task.train()
        while (
            state.epoch < self.max_epochs
            and state.step < self.max_steps
            and not self._stopped_early()
            and not self.interrupted_by
        ):
            # Each epoch's order comes from (seed, epoch): a resumed epoch replays it and skips what was done.
            epoch_seed = self.seed * 1_000_003 + state.epoch
            for batch in self.data.batches("train", self.batch_size, epoch_seed, skip=state.batch_in_epoch, shard=shard):
                for index in order:
                    optimizer = self.optimizers[index]
                    if autocast is None:
                        loss = step_loss(batch, index)
                    else:
                        with torch.autocast(self.device.type, dtype=autocast):
                            loss = step_loss(batch, index)
                    optimizer.zero_grad(set_to_none=True)
                    if skip_nonfinite and not bool(torch.isfinite(loss)):  # a device sync: only when asked for
                        print(f"step {state.step + 1}: train/{task.loss_names[index]} is {float(loss.detach())}, step skipped")
                        loss = loss.detach().nan_to_num(0.0, 0.0, 0.0)
                        recorded[index].append(loss)
                        continue
                    if self.scaler is None:
                        loss.backward()
                        if clip is not None:
                            torch.nn.utils.clip_grad_norm_(_parameters(optimizer), clip)
                        optimizer.step()
                    else:
                        self.scaler.scale(loss).backward()
                        if clip is not None:
                            self.scaler.unscale_(optimizer)
                            torch.nn.utils.clip_grad_norm_(_parameters(optimizer), clip)
                        self.scaler.step(optimizer)
                        self.scaler.update()
                    recorded[index].append(loss.detach())
                state.step += 1
                state.batch_in_epoch += 1
                if state.step % every_n_steps == 0:
                    self._save_checkpoints()
                if (state.step >= self.max_steps or self.interrupted_by) and state.batch_in_epoch < self.steps_per_epoch:
                    break  # mid-epoch; a finished epoch still counts below
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
                for scheduler in self.schedulers:
                    scheduler.step()
                if state.epoch % self.check_every == 0 or state.epoch >= self.max_epochs:
                    self._check()
                if self._checkpoint_due():
                    self._save_checkpoints()
        # A resumed run that had already ended (a kill after its final checkpoint) checks nothing again.
        if state.checked_at_step != state.step and not self.interrupted_by:
            self._check()
        return dict(self.last_metrics)

    def _stopped_early(self) -> bool:
        return self.patience is not None and self.state.checks_without_improvement >= self.patience

    def _checkpoint_due(self) -> bool:
        """At an epoch's end: every N epochs, or when N minutes have passed.

        ``auto``: every epoch, but not within AUTO_CHECKPOINT_SECONDS of the last checkpoint: an
        epoch of whole-batch gradient descent lasts a fraction of a millisecond, and writing
        thousands of checkpoints would cost more than the training.
        """
        since = time.monotonic() - self.last_save_time
        minutes = self.checkpoint_every_n_minutes
        if minutes is not None and since >= 60 * minutes:
            return True
        if self.checkpoint_every_n_epochs == "auto":
            return since >= AUTO_CHECKPOINT_SECONDS
        return self.state.epoch % self.checkpoint_every_n_epochs == 0

    # ------------------------------------------------------------------ every few epochs
    def _check(self) -> None:
        """Metrics, logging, best model, early stopping; the metrics end up in ``last_metrics``."""
        task, state = self.task, self.state
        values: dict[str, Tensor] = {}
        windows: dict[str, tuple[int, Tensor]] = {}  # the step losses since the last check
        for index, losses in self.recorded.items():
            if losses:  # empty right after resuming from a finished run
                name = f"train/step_{task.loss_names[index]}"
                window = torch.stack(losses).float()
                windows[name] = index, window if self.world_size == 1 else distributed.mean_over_ranks(window)
                values[name] = windows[name][1].mean()
                losses.clear()
        task.eval()
        for split in self.evaluated_splits:
            for name, value in task.evaluate(self.data.batches(split, self.eval_batch_size)).items():
                values[f"{split}/{name}"] = value
        task.train()
        metrics = dict(zip(values, torch.stack(list(values.values())).tolist()))  # one device sync
        for name, (index, window) in windows.items():
            if not math.isfinite(metrics[name]):  # a mean is finite only when every loss was
                self._stop_diverged(index, window)
        self.window_start = state.step
        metrics["train/lr"] = self.optimizers[0].param_groups[0]["lr"]
        metrics["epoch"] = state.epoch
        if self.logger is not None:
            self.logger.log_scalars(metrics, state.step)
            if self._due(self.logger.histogram_every_n_epochs):
                self.logger.log_histograms(task.model, state.step)
            if self._due(self.logger.figures_every_n_epochs):
                task.eval()
                self.logger.log_visuals(task.visualize(self.data.splits), state.step)
                task.train()

        if self.monitor_name not in metrics:
            raise ConfigError("trainer.monitor", self.monitor_name, f"not a logged metric; these are: {', '.join(metrics)}")
        score = metrics[self.monitor_name]
        sign = 1 if self.monitor_mode == "min" else -1
        state.checked_at_step = state.step
        self.last_metrics = metrics
        if state.best_score is None or sign * (state.best_score - score) > self.min_delta:
            state.best_score = score
            state.checks_without_improvement = 0
            self.best_checkpoint = self._weights_snapshot()
            self.best_dirty = True
        else:
            state.checks_without_improvement += 1
            if self._stopped_early():
                print(f"early stopping: {self.monitor_name} has not improved for {self.patience} checks")
        if self.progress_bar:
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(("train/loss", "train/acc", "val/")))
            print(f"\repoch {state.epoch} step {state.step} {shown}", end="", file=sys.stderr, flush=True)

    def _due(self, every: int | None) -> bool:
        """Whether a multiple of ``every`` epochs was passed since the previous check."""
        epoch = self.state.epoch
        return bool(every) and epoch // every > (epoch - self.check_every) // every

    def _stop_diverged(self, index: int, window: Tensor) -> None:
        """Name the first step whose loss was NaN or infinite, and the last checkpoint that is still good."""
        bad = (~torch.isfinite(window)).nonzero()
        # No single loss is NaN or inf, yet their mean overflowed: name the largest.
        first_bad = int(bad[0, 0]) if len(bad) else int(window.abs().argmax())
        self.writer.wait()  # so that the checkpoint named below is on disk
        step = self.window_start + first_bad // self.task.optimizer_order.count(index) + 1
        last = (
            f"last good checkpoint: {self.checkpoint_dir / 'last.ckpt'} (step {self.last_saved['step']})"
            if self.last_saved
            else "no checkpoint was written before it"
        )
        raise TrainingDiverged(
            f"train/{self.task.loss_names[index]} became {float(window[first_bad])} at step {step}; the run is "
            f"stopped (try a smaller optimizer.lr or trainer.gradient_clip_val); {last}"
        )

    # ------------------------------------------------------------------ checkpoints and results
    def _weights_snapshot(self) -> dict[str, Any]:
        """best.ckpt: the model as it is now, for evaluation and prediction (resume uses last.ckpt)."""
        model = {name: tensor.clone() for name, tensor in self.live_state.items()}
        return {"model": model, "loop": asdict(self.state), "config": self.config, "data": self.data_state}

    def _checkpoint_state(self) -> dict[str, Any]:
        """Everything a resume needs."""
        return {
            "model": self.task.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "loop": asdict(self.state),
            "window": {index: torch.stack(losses) for index, losses in self.recorded.items() if losses},
            "metrics": self.last_metrics,
            "rng": rng_states(),
            "config": self.config,
            "data": self.data_state,
        }

    def _save_checkpoints(self) -> None:
        """last.ckpt (and best.ckpt when it changed), written in the background from a copy.

        Not while the losses since the last check hold a NaN: the next check stops the run, and
        the checkpoint on disk stays the last good one.
        """
        window = [torch.stack(losses) for losses in self.recorded.values() if losses]
        if self.rank != 0 or (window and not bool(torch.isfinite(torch.cat(window)).all())):
            return
        state = self._checkpoint_state()
        files = [(serialize(state), self.checkpoint_dir / "last.ckpt")]
        if self.best_dirty:
            # best.ckpt first: a kill between the two leaves a last.ckpt whose best.ckpt is never older than it.
            files.insert(0, (serialize(self.best_checkpoint), self.checkpoint_dir / "best.ckpt"))
            self.best_dirty = False
        self.writer.submit(files)
        self.last_saved = state["loop"]
        self.last_save_time = time.monotonic()

    def _finish(self, metrics: dict[str, float]) -> dict[str, float]:
        if self.progress_bar:
            print(file=sys.stderr)
        self.task.eval()
        if "test" in self.data.splits:
            test = self.task.evaluate(self.data.batches("test", self.eval_batch_size))
            metrics.update({f"test/{name}": float(value) for name, value in test.items()})
        self._save_checkpoints()
        self.writer.wait()
        if self.logger is not None:
            step = self.state.step
            self.logger.log_scalars({k: v for k, v in metrics.items() if k.startswith("test/")}, step)
            self.logger.log_histograms(self.task.model, step)
            self.logger.log_graph(self.task.model, self.task.example_input(self.data.splits["train"]))
            self.logger.log_visuals(self.task.visualize(self.data.splits), step)
            self.logger.log_hparams(_hparams(self.config), {k: v for k, v in metrics.items() if "/" in k})
        metrics["step"] = self.state.step
        if self.rank == 0:
            print(f"trained {self.state.epoch} epochs, {self.state.step} steps in {self.train_seconds:.3f} s")
            write_durably(json.dumps(metrics, indent=2) + "\n", self.run_dir / "metrics.json")
        return metrics


def _parameters(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "CUDA is not available on this machine; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.device", name, "MPS is not available on this machine; use auto or cpu")
    return torch.device(name)


def _hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config flattened to ``optimizer.lr``-style keys, without paths, logger and Hydra's flags."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key == "_partial_" or (not prefix and key in ("paths", "logger")):
            continue
        if isinstance(value, dict):
            flat.update(_hparams(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
