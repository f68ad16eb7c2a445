"""Turn the composed config into objects: data, task (with its model), optimizer, scheduler, loggers, callbacks."""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.datamodule import DataModule
from src.data.spec import DataSpec
from src.errors import Rule, UserError, check, integer, positive_int, positive_number
from src.training.checkpoint import load_checkpoint, load_weights
from src.tasks.task import OptimizerFactory, Task

SPLIT_KEYS = ("val_fraction", "test_fraction", "standardize", "split_seed", "split_shuffle", "limit_train_rows")


def build(config: DictConfig | dict, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with a user's mistake surfacing as one line instead of a wrapped traceback."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(" ".join(str(error).split())) from None


def seed_everything(seed: int) -> None:
    check("trainer.seed", seed, integer)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_data(config: DictConfig) -> DataModule:
    source = {key: value for key, value in config.items() if key not in SPLIT_KEYS}
    split = {key: config[key] for key in SPLIT_KEYS if key in config}
    return DataModule(build(source), **split)


def build_task(config: DictConfig, data: DataSpec) -> Task:
    """The task group's choice (``conf/task/``), given a factory for the model at the output size it asks for."""
    def make_model(output_size: int) -> torch.nn.Module:
        return build(config.model, input_shape=data.input_shape, output_size=output_size)

    return build(config.task, _partial_=True)(model=make_model, spec=data)


def build_all(config: DictConfig | None, **kwargs: Any) -> list[Any]:
    """A group that may hold several objects (loggers, callbacks): the ``_target_`` at its top, or each entry's.

    An option without one (``logger=none``) builds nothing, even when an experiment tunes its keys.
    """
    if not config:
        return []
    if "_target_" in config:
        return [build(config, **kwargs)]
    return [build(entry, **kwargs) for entry in config.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def build_optimizer(config: DictConfig) -> tuple[OptimizerFactory, int | None]:
    """The optimizer factory (it gets the parameters later) and the batch size (None: whole batch)."""
    check("optimizer.lr", config.get("lr"), positive_number)
    batch_size = check("optimizer.batch_size", config.get("batch_size"), positive_int | Rule(lambda v: v is None, "null (the whole data set)"))
    factory = build({key: value for key, value in config.items() if key != "batch_size"})
    return factory, batch_size


def build_scheduler_factory(config: DictConfig | None) -> Callable | None:
    return None if config is None else build(config)


def build_from_checkpoint(path: str) -> tuple[Task, DataSpec, DictConfig]:
    """The trained task, rebuilt from the config and data description its checkpoint holds."""
    checkpoint = load_checkpoint(path)
    if "config" not in checkpoint or "data" not in checkpoint:
        raise UserError(f"ckpt_path={path}: holds no config or data description to rebuild the model from")
    config = OmegaConf.create(checkpoint["config"])
    if not isinstance(config.get("task"), DictConfig):
        raise UserError(f"ckpt_path={path}: written by an earlier version (its task is a name, not a config); retrain it")
    spec = DataSpec.from_state(checkpoint["data"])
    task = build_task(config, spec)
    load_weights(task, checkpoint["model"], f"ckpt_path={path}: does not match the model its config describes")
    return task.eval(), spec, config


def plain_config(config: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for checkpoints and the HParams tab."""
    return {key: value for key, value in OmegaConf.to_container(config, resolve=True).items() if key != "hydra"}
