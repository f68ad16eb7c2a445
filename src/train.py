"""Train a model: ``python -m src.train [group=option ...] [key=value ...]``."""

from __future__ import annotations

import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src import cli
from src.build import build_all, build_partial, build_scheduler_factory, build_training, plain_config
from src.config_text import config_yaml
from src.errors import ConfigError, UserError, report_user_errors, setting
from src.run_log import log
from src.training.callbacks import Callback
from src.training.checkpoint import FAILED, write_durably
from src.training.device import allocation_failure
from src.training.distributed import is_main_process
from src.training.logger import Logger
from src.training.seeds import in_words
from src.training.trainer import Interrupted, Trainer


def train(config: DictConfig) -> dict[str, float]:
    """Compose, build, fit; the run folder ends up with config.yaml, metrics.json, checkpoints and events."""
    run_dir = make_run_folder(config)
    resolved = plain_config(config)
    if is_main_process():
        text = config_yaml(resolved)
        write_durably(text, run_dir / "config.yaml")
        log.info(f"config (also in {run_dir / 'config.yaml'}):\n{text.rstrip()}")
    data, task, make_optimizer, batch_size = build_training(config)
    make_scheduler = build_scheduler_factory(config.get("scheduler"))
    loggers = build_all("logger", config.get("logger"), Logger, log_dir=run_dir) if is_main_process() else []
    callbacks = build_all("callbacks", config.get("callbacks"), Callback)
    trainer = build_partial("trainer", config.trainer, Trainer)(run_dir=run_dir, logger=loggers, callbacks=callbacks)
    try:
        return trainer.fit(task, data, make_optimizer, batch_size, make_scheduler, config.get("ckpt_path"), resolved | how_it_was_chosen())
    except RuntimeError as error:
        if (refusal := out_of_memory(error, config) or without_determinism(error)) is None:
            raise
        raise refusal from None


def out_of_memory(error: RuntimeError, config: DictConfig) -> UserError | None:
    """For an allocation that failed (CUDA's or MPS's OutOfMemoryError, the CPU allocator's error), one line
    naming the settings that make a run smaller; None for any other error."""
    if (failure := allocation_failure(error)) is None:
        return None
    batch, eval_batch = config.optimizer.get("batch_size"), config.trainer.get("eval_batch_size")
    return UserError(
        f"{failure}: lower optimizer.batch_size "
        f"(now {'null, the whole split' if batch is None else batch}) or trainer.eval_batch_size (now {eval_batch}), "
        "or set trainer.accumulate_grad_batches or trainer.precision=bf16-mixed; the checkpoints written so far are kept"
    )


def without_determinism(error: RuntimeError) -> UserError | None:
    """For an operation that torch refuses under ``trainer.deterministic=true``, one line naming it; else None."""
    refused = re.match(r"(\S+) does not have a deterministic implementation", str(error))
    if refused is None:
        return None
    return ConfigError("trainer.deterministic", True, f"{refused.group(1)} has no deterministic implementation; trainer.deterministic=warn runs it with a warning")


def make_run_folder(config: DictConfig) -> Path:
    run_dir = Path(config.paths.output_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{setting('paths.output_dir', run_dir)}: cannot create the run folder ({error.strerror})") from None
    return run_dir


def how_it_was_chosen() -> dict[str, Any]:
    """Each config group's option, the overrides and the command line, as Hydra recorded them (for the logs)."""
    if not HydraConfig.initialized():
        return {}
    hydra_config = HydraConfig.get()
    choices = {group: option for group, option in hydra_config.runtime.choices.items() if not group.startswith("hydra")}
    overrides = list(hydra_config.overrides.task)
    return {"choices": choices, "overrides": overrides, "command": " ".join(["python -m src.train", *map(shlex.quote, overrides)])}


def resume_command(checkpoint: Path) -> str:
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
    return " ".join(["python -m src.train", *(shlex.quote(o) for o in overrides), f"ckpt_path={shlex.quote(str(checkpoint))}"])


def train_or_stop(config: DictConfig) -> dict[str, float]:
    """Ctrl-C or SIGTERM: the trainer saved a checkpoint; say how to go on, and exit 128 + signal."""
    try:
        return train(config)
    except Interrupted as stop:
        log.warning(f"stopped by {stop}")
        log.warning(f"resume with: {resume_command(stop.checkpoint)}")
        sys.exit(128 + signal.Signals[stop.signal_name].value)


def run_job(config: DictConfig) -> dict[str, Any] | None:
    """A run stops at a user error (one line, exit 2). A job of a multirun records it instead, in its
    folder (``failed``: the line), and returns None: the sweep goes on to its other jobs."""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return report_user_errors(lambda: train_or_stop(config))
    try:
        return train_or_stop(config)
    except UserError as error:
        log.error(f"error: {error}")
        write_durably(f"{error}\n", Path(config.paths.output_dir) / FAILED)
        return None


def failed_trial_value() -> float | None:
    """What a failed job returns to the sweeper: None, which Optuna records as a failed trial. Only the
    search's last trial, when no trial before it finished, reports the worst value instead: Optuna's
    sweeper asks for the best trial at the end and would crash with a traceback if none completed."""
    hydra_config = HydraConfig.get()
    direction, trials = hydra_config.sweeper.get("direction"), hydra_config.sweeper.get("n_trials")
    if direction not in ("minimize", "maximize") or trials is None or hydra_config.job.num != trials - 1:
        return None
    if any(Path(hydra_config.sweep.dir).rglob("metrics.json")):
        return None
    return -sys.float_info.max if direction == "maximize" else sys.float_info.max


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(config: DictConfig) -> float | None:
    metrics = run_job(config)
    if metrics is None:
        return failed_trial_value()
    if not is_main_process():
        return None
    log.info(in_words(metrics))
    log.info(config.paths.output_dir)
    return metrics.get(config.get("optimized_metric", ""))


if __name__ == "__main__":
    if not is_main_process():  # under torchrun, only rank 0 keeps a run folder; the others' Hydra output goes to a temporary one
        import tempfile

        sys.argv += [f"hydra.run.dir={tempfile.mkdtemp(prefix='rank')}", "hydra.output_subdir=null"]
    cli.run(main, "train")
