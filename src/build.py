"""Turn the composed config into objects: data, task (with its model), optimizer, scheduler, logger."""

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
from src.errors import ConfigError, UserError
from src.training.checkpoint import load_checkpoint, load_weights
from src.tasks.adversarial import Adversarial
from src.tasks.classification import BinaryClassification, MulticlassClassification
from src.tasks.forecast import Forecast
from src.tasks.regression import Regression
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
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("trainer.seed", seed, "must be an integer")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_data(config: DictConfig) -> DataModule:
    source = {key: value for key, value in config.items() if key not in SPLIT_KEYS}
    split = {key: config[key] for key in SPLIT_KEYS if key in config}
    return DataModule(build(source), **split)


def build_task(config: DictConfig, data: DataSpec) -> Task:
    """``task: auto`` follows the data: regression, binary (sigmoid) or multi-class (softmax)."""
    kind = config.get("task", "auto")
    if kind == "auto":
        kind = "regression" if data.task == "regression" else "classification"
    if kind not in TASKS:
        raise ConfigError("task", kind, f"allowed: auto, {', '.join(TASKS)}")
    return TASKS[kind](config, data)


def _classification(config: DictConfig, data: DataSpec) -> Task:
    if data.task != "classification":
        raise ConfigError("task", "classification", f"data {data.name} holds real-valued targets: use task=regression")
    if data.num_classes == 2:
        return BinaryClassification(build(config.model, input_shape=data.input_shape, output_size=1), data.class_names)
    model = build(config.model, input_shape=data.input_shape, output_size=data.num_classes)
    return MulticlassClassification(model, data.num_classes, data.class_names)


def _regression(config: DictConfig, data: DataSpec) -> Task:
    return Regression(build(config.model, input_shape=data.input_shape, output_size=1))


def _forecast(config: DictConfig, data: DataSpec) -> Task:
    return Forecast(build(config.model, input_shape=data.input_shape, output_size=1))


def _adversarial(config: DictConfig, data: DataSpec) -> Task:
    model = build(config.model, input_shape=data.input_shape, output_size=1)
    if not hasattr(model, "generator") or not hasattr(model, "discriminator"):
        raise ConfigError("task", "adversarial", "needs a model with a generator and a discriminator (model=gan)")
    return Adversarial(
        model, model.discriminator_steps, model.generator_steps, modes=data.info.get("modes"), mode_std=data.info.get("mode_std")
    )


TASKS: dict[str, Callable[[DictConfig, DataSpec], Task]] = {
    "classification": _classification,
    "regression": _regression,
    "forecast": _forecast,
    "adversarial": _adversarial,
}


def build_optimizer(config: DictConfig) -> tuple[OptimizerFactory, int | None]:
    """The optimizer factory (it gets the parameters later) and the batch size (None: whole batch)."""
    lr = config.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError("optimizer.lr", lr, "must be a number > 0")
    batch_size = config.get("batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError("optimizer.batch_size", batch_size, "must be a positive integer, or null for the whole data set")
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
    spec = DataSpec.from_state(checkpoint["data"])
    task = build_task(config, spec)
    load_weights(task, checkpoint["model"], f"ckpt_path={path}: does not match the model its config describes")
    return task.eval(), spec, config


def plain_config(config: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for checkpoints and the HParams tab."""
    return {key: value for key, value in OmegaConf.to_container(config, resolve=True).items() if key != "hydra"}
