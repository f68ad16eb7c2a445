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
from src.errors import ConfigError, UserError
from src.tasks.classification import BinaryClassification, MulticlassClassification
from src.tasks.regression import Regression
from src.tasks.task import OptimizerFactory, Task

SPLIT_KEYS = ("val_fraction", "test_fraction", "standardize", "split_seed", "limit_train_rows")


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


def build_task(config: DictConfig, data: DataModule) -> Task:
    """The task follows from the data: regression, binary (sigmoid) or multi-class (softmax)."""
    if data.task == "regression":
        return Regression(build(config.model, input_shape=data.input_shape, output_size=1))
    output_size = 1 if data.num_classes == 2 else data.num_classes
    model = build(config.model, input_shape=data.input_shape, output_size=output_size)
    if data.num_classes == 2:
        return BinaryClassification(model, data.class_names)
    return MulticlassClassification(model, data.num_classes, data.class_names)


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


def plain_config(config: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for checkpoints and the HParams tab."""
    return {key: value for key, value in OmegaConf.to_container(config, resolve=True).items() if key != "hydra"}
