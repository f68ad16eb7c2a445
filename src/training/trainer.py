"""The one generic training loop.

Read top to bottom: ``fit`` sets up, ``_train`` runs epochs of steps, ``_check`` is what happens
every few epochs (metrics, logging, best model, early stopping), ``_finish`` writes the results.
What a batch means lives in the task; a batch's gradients in ``gradients.py``; divergence in
``divergence.py``; what last.ckpt keeps in ``loop_state.py``, its files in ``checkpoint.py``; what the
loggers get in ``reporting.py``; callback events in ``callbacks.py``. It never looks at the model's kind.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from src.data.datamodule import DataModule
from src.errors import ConfigError, Rule, auto, boolean, check_arguments, null, number, one_of, positive_int, positive_number
from src.run_log import log
from src.tasks.task import OptimizerFactory, Task
from src.training import distributed
from src.training.callbacks import EVENTS, Callback, subscribers
from src.training.checkpoint import RunCheckpoints, run_fingerprint, write_durably
from src.training.divergence import step_loss_windows, stop_if_diverged
from src.training.device import DEVICES, MATMUL_PRECISIONS, PRECISIONS, numerics, precision_tools, resolve_device, to_channels_last
from src.training.gradients import accumulated_sizes, backward_pass, optimizer_step
from src.training.logger import Logger
from src.training.loop_state import LoopState, best_snapshot, resume, save_checkpoint, weights_of
from src.training.monitor import Monitor
from src.training.progress import Progress, trained_line
from src.training.reporting import Reporter
from src.training.schedules import build_scheduler, planned_span
from src.training.seeds import clip_grad_norm_per_member, member_seeds, per_member, summarize
from src.training.signals import Interrupted, StopOnSignals
from src.training.summary import model_summary

# With val_every_n_epochs=auto a check comes about every this many steps, and at least every epoch.
AUTO_CHECK_STEPS = 100


class Trainer:
    #: What each argument may hold; a bad value is refused naming ``trainer.<argument>``.
    RULES: dict[str, Rule] = {
        "max_epochs": positive_int | null,
        "max_steps": positive_int | null,
        "device": one_of(*DEVICES),
        "precision": Rule(lambda value: str(value) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        "gradient_clip_val": positive_number | null,
        "accumulate_grad_batches": positive_int,
        "val_every_n_epochs": positive_int | auto,
        "eval_batch_size": positive_int,
        "train_eval_rows": positive_int | one_of("auto", "all"),
        "mode": one_of("auto", "min", "max"),
        "patience": positive_int | null,
        "min_delta": number(0),
        "checkpoint_every_n_epochs": positive_int | auto,
        "checkpoint_every_n_steps": positive_int | null,
        "checkpoint_every_n_minutes": positive_number | null,
        "on_nonfinite_loss": one_of("stop", "skip"),
        "test_weights": one_of("best", "last"),
        "progress_bar": boolean | auto,
        "log_every_seconds": positive_number | null,
        "detect_anomaly": boolean,
        "compile": boolean,
        "matmul_precision": one_of(*MATMUL_PRECISIONS),
        "deterministic": Rule(lambda value: value in (True, False, "warn"), "true, false or warn"),
        "sync_batchnorm": boolean,
        "channels_last": boolean | auto,
    }

    def __init__(
        self,
        run_dir: str | Path,
        logger: Logger | list[Logger] | None = None,
        callbacks: list[Callback] = (),
        max_epochs: int | None = None,
        max_steps: int | None = 10_000,
        device: str = "auto",
        precision: str | int = "32",
        gradient_clip_val: float | None = None,
        accumulate_grad_batches: int = 1,
        seed: int = 42,
        seeds: int | list[int] = 1,
        val_every_n_epochs: int | str = "auto",
        eval_batch_size: int = 4096,
        train_eval_rows: int | str = "auto",
        monitor: str = "auto",
        mode: str = "auto",
        patience: int | None = None,
        min_delta: float = 0.0,
        checkpoint_every_n_epochs: int | str = "auto",
        checkpoint_every_n_steps: int | None = None,
        checkpoint_every_n_minutes: float | None = 10.0,
        on_nonfinite_loss: str = "stop",
        test_weights: str = "best",
        progress_bar: bool | str = "auto",
        log_every_seconds: float | None = 30.0,
        detect_anomaly: bool = False,
        compile: bool = False,
        matmul_precision: str = "highest",
        deterministic: bool | str = False,
        sync_batchnorm: bool = True,
        channels_last: bool | str = "auto",
    ) -> None:
        check_arguments("trainer", locals(), self.RULES)
        if max_epochs is None and max_steps is None:
            raise ConfigError("trainer.max_epochs", max_epochs, "set it or trainer.max_steps; both are null")
        self.run_dir = Path(run_dir)
        self.loggers: list[Logger] = [] if logger is None else list(logger) if isinstance(logger, Iterable) else [logger]
        self.callbacks = list(callbacks)
        self.max_epochs, self.max_steps = max_epochs or math.inf, max_steps or math.inf
        self.device = resolve_device(device)
        self.autocast, self.scaler = precision_tools(str(precision), self.device)
        self.gradient_clip_val, self.eval_batch_size, self.train_eval_rows = gradient_clip_val, eval_batch_size, train_eval_rows
        self.accumulate, self.seeds, self.val_every_n_epochs = accumulate_grad_batches, member_seeds(seed, seeds), val_every_n_epochs
        self.monitor_setting, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.checkpoint_every_n_steps = checkpoint_every_n_steps or math.inf
        self.checkpoints = RunCheckpoints(self.run_dir, checkpoint_every_n_epochs, checkpoint_every_n_minutes)
        self.skip_nonfinite, self.test_weights = on_nonfinite_loss == "skip", test_weights
        bar = progress_bar is True or (progress_bar == "auto" and sys.stderr.isatty())
        if bar or log_every_seconds:
            self.callbacks.append(Progress(bar, log_every_seconds))
        self.numerics, self.compile, self.sync_batchnorm = (detect_anomaly, matmul_precision, deterministic), compile, sync_batchnorm
        # Convolutions run faster on CUDA with channels-last tensors; only 4-D tensors change.
        self.channels_last = self.device.type == "cuda" if channels_last == "auto" else channels_last

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
        self.members = task.members
        if self.members != len(self.seeds):
            raise ConfigError("trainer.seeds", self.seeds, f"the model was built with {self.members} member(s)")
        self.view = task.solo_view()  # plain outputs, for pictures and the graph: the members' ensemble
        self.data = data.to(self.device)
        data.sample_for_evaluation("train", self.train_eval_rows)
        if self.channels_last:
            to_channels_last(task)
            data.to_channels_last()
        if self.compile:
            task.model.compile()  # in place: the state_dict keys, and so the checkpoints, stay the same
        self.batch_size, part_size = accumulated_sizes(batch_size, self.accumulate, data.size("train"))
        self.backward = backward_pass(distributed.step_loss(task, self.world_size, self.sync_batchnorm), task, self.autocast, self.scaler, part_size)
        self.config = config or {}
        self.data_state = data.spec.state_dict()  # what evaluate and predict need to rebuild the task
        self.optimizers = task.configure_optimizers(make_optimizer)
        self.steps_per_epoch = data.steps_per_epoch(self.batch_size)
        self.shard_weights = distributed.shard_weights(data.size("train"), self.batch_size, self.rank, self.world_size)
        self.total_steps = min(self.max_steps, self.max_epochs * self.steps_per_epoch)  # at most (one of the two is finite)
        self.check_every = (
            max(1, AUTO_CHECK_STEPS // self.steps_per_epoch) if self.val_every_n_epochs == "auto" else self.val_every_n_epochs
        )
        self.evaluated_splits = [split for split in task.evaluated_splits if split in data.splits] or ["train"]
        self.monitor = Monitor.of(self.monitor_setting, self.mode, task, self.evaluated_splits, self.min_delta, self.patience)
        span = planned_span(self.max_epochs, self.max_steps, self.steps_per_epoch)
        self.schedulers = [build_scheduler(make_scheduler, opt, *span, self.monitor.mode) for opt in self.optimizers] if make_scheduler else []
        self.step_schedulers = [scheduler for scheduler in self.schedulers if scheduler.interval == "step"]
        self.state = LoopState()
        example = next(data.batches("train", None, members=self.members))
        summary = model_summary(task.model, lambda: task.try_on(example, data.name))  # the try-out shows the shapes
        # The model's tensors, updated in place by the optimizers: copying them skips state_dict()'s module walk.
        self.live_state = task.state_dict()
        self.recorded: dict[int, list[Tensor]] = {index: [] for index in set(task.optimizer_order)}
        self.last_metrics: dict[str, float] = {}  # the latest check's, so a resumed finished run reports them unchanged
        self.member_metrics: list[dict[str, float]] = []  # the same, per member
        self.reporter = Reporter(self, self.loggers if self.rank == 0 else [])  # only rank 0 writes
        self.fingerprint = run_fingerprint(self.config, self.data_state, self.optimizers, self.schedulers) | {"number of seeds": self.members}
        if ckpt_path is not None:
            resume(self, ckpt_path)
        self.reporter.model_summary(summary)
        self.hooks = {event: subscribers(self.callbacks, event) for event in EVENTS}
        # What callbacks add to every check (and to the test at the end): functions of the splits' names.
        self.evaluations: list[Callable[[list[str]], dict[str, Tensor]]] = []
        self.interrupted_by: str | None = None
        with numerics(*self.numerics, self.device):
            try:
                for hook in self.hooks["on_fit_start"]:
                    hook(self)
                self.resumed_at = self.state.step
                if not self.resumed_at:
                    self.reporter.start(self.optimizers[0].param_groups[0]["lr"])
                with StopOnSignals(self):
                    started = time.perf_counter()
                    self._train()
                    self.train_seconds = time.perf_counter() - started
                if self.interrupted_by is not None:
                    save_checkpoint(self)
                    self.checkpoints.wait()
                    raise Interrupted(self.interrupted_by, self.checkpoints.last, self.state.step)
                return self._finish()
            finally:
                for hook in self.hooks["on_teardown"]:
                    hook(self)
                self.checkpoints.close()
                self.reporter.close()
                if self.world_size > 1:
                    self.backward = None  # it holds the DDP wrapper, which holds the process group
                    distributed.teardown()

    # ------------------------------------------------------------------ the loop
    def _train(self) -> None:
        task, state, recorded = self.task, self.state, self.recorded
        order = task.optimizer_order
        # The first step whose loss is in the window since the last check (losses carried over when resuming).
        self.window_start = state.step - len(recorded[order[0]]) // order.count(order[0])
        skip_nonfinite, every_n_steps = self.skip_nonfinite, self.checkpoint_every_n_steps
        shard, clip = (self.rank, self.world_size), self.gradient_clip_val
        stacked, first_seed = self.members > 1, self.seeds[0]
        clip_grad_norm = clip_grad_norm_per_member if stacked else torch.nn.utils.clip_grad_norm_
        scaler, hooks = self.scaler, self.hooks
        backward, shard_weights, last_batch = self.backward, self.shard_weights, self.steps_per_epoch - 1
        task.train()
        while (
            state.epoch < self.max_epochs
            and state.step < self.max_steps
            and not self.monitor.stopped(state)
            and not self.interrupted_by
        ):
            for hook in hooks["on_epoch_start"]:
                hook(self)
            # Each epoch's order comes from (seed, epoch): a resumed epoch replays it and skips what was done.
            epoch_seed = [seed * 1_000_003 + state.epoch for seed in self.seeds] if stacked else first_seed * 1_000_003 + state.epoch
            for batch in self.data.batches("train", self.batch_size, epoch_seed, skip=state.batch_in_epoch, shard=shard):
                weight = None if shard_weights is None else shard_weights[state.batch_in_epoch == last_batch]
                for index in order:
                    optimizer = self.optimizers[index]
                    optimizer.zero_grad(set_to_none=True)
                    loss = backward(batch, index, weight)  # one per member when stacked
                    if skip_nonfinite and not distributed.all_finite(loss):  # a device sync: only when asked for
                        log.warning(f"step {state.step + 1}: train/{task.loss_names[index]} is {loss.detach().tolist()}, step skipped")
                        recorded[index].append(loss.detach().nan_to_num(0.0, 0.0, 0.0))
                        continue
                    optimizer_step(optimizer, scaler, clip, clip_grad_norm)
                    recorded[index].append(loss)
                for scheduler in self.step_schedulers:
                    scheduler.step()
                state.step += 1
                state.batch_in_epoch += 1
                for hook in hooks["on_step_end"]:
                    hook(self)
                if state.step % every_n_steps == 0:
                    save_checkpoint(self)
                if (state.step >= self.max_steps or self.interrupted_by) and state.batch_in_epoch < self.steps_per_epoch:
                    break  # mid-epoch; a finished epoch still counts below
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
                for scheduler in self.schedulers:
                    if scheduler.interval == "epoch":
                        scheduler.step()
                for hook in hooks["on_epoch_end"]:
                    hook(self)
                if state.epoch % self.check_every == 0 or state.epoch >= self.max_epochs:
                    self._check()
                if self.checkpoints.due_at_epoch_end(state.epoch):
                    save_checkpoint(self)
        # A resumed run that had already ended (a kill after its final checkpoint) checks nothing again.
        if state.checked_at_step != state.step and not self.interrupted_by:
            self._check()

    # ------------------------------------------------------------------ every few epochs
    def _check(self) -> None:
        """Metrics, logging, best model, early stopping; the metrics end up in ``last_metrics``."""
        state = self.state
        windows = step_loss_windows(self)
        values = {name: window.mean(0) for name, (_, window) in windows.items()}  # 0-d, or one value per member
        values |= self._evaluate_all(self.evaluated_splits)
        members = per_member(values)  # one device sync
        stop_if_diverged(self, windows, members)
        self.window_start = state.step
        for metrics in members:
            metrics["train/lr"] = self.optimizers[0].param_groups[0]["lr"]
            metrics["epoch"] = state.epoch
        metrics = summarize(members, self.seeds)
        self.reporter.log(metrics, members, "check")

        state.checked_at_step = state.step
        self.last_metrics, self.member_metrics = metrics, members
        improved = self.monitor.improved(state, members)
        for scheduler in self.schedulers:
            if scheduler.interval == "check":  # on the members' mean: they share one learning rate
                scheduler.step(metrics[self.monitor.name])
        if any(improved):
            self.checkpoints.keep_best(best_snapshot(self, improved))
        for hook in self.hooks["on_check"]:
            hook(self, metrics)

    def evaluate(self, splits: list[str], weights: dict[str, Tensor] | None = None, tag: str = "") -> dict[str, Tensor]:
        """``<split>/<tag><metric>`` of the model (one value per member when stacked), or of ``weights`` (named as
        in the task's state dict) loaded into it for the while: callbacks that keep other weights (EMA) use it."""
        training = self.task.training
        self.task.eval()
        with weights_of(self.live_state, weights):
            values = {
                f"{split}/{tag}{name}": value
                for split in splits
                for name, value in self.task.evaluate(self.data.batches(split, self.eval_batch_size, members=self.members)).items()
            }
        self.task.train(training)
        return values

    def _evaluate_all(self, splits: list[str], weights: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The model's metrics (with ``weights``, when given) and what the callbacks add to them."""
        values = self.evaluate(splits, weights)
        for evaluation in self.evaluations:
            values |= evaluation(splits)
        return values

    # ------------------------------------------------------------------ checkpoints and results
    def _finish(self) -> dict[str, Any]:
        members = [dict(metrics) for metrics in self.member_metrics] if self.members > 1 else [dict(self.last_metrics)]
        if "test" in self.data.splits:
            best = self.checkpoints.best if self.test_weights == "best" else None
            for metrics, test in zip(members, per_member(self._evaluate_all(["test"], best["model"] if best else None))):
                metrics.update(test)
        self.task.eval()
        metrics = summarize(members, self.seeds)
        save_checkpoint(self)
        self.checkpoints.wait()
        self.reporter.end(metrics, members, self.config)
        metrics["step"] = self.state.step
        if "test" in self.data.splits:
            metrics["test_weights"] = "best" if best else "last"
        for hook in self.hooks["on_fit_end"]:
            hook(self, metrics)
        if self.rank == 0:
            log.info(trained_line(self.state.epoch, self.state.step, self.resumed_at, self.train_seconds))
            write_durably(json.dumps(metrics, indent=2) + "\n", self.run_dir / "metrics.json")
        return metrics
