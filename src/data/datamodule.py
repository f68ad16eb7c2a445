"""Split, scale and batch a small data set that lives as tensors on the training device."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from src.data.augment import batch_generator
from src.data.dataset import Dataset
from src.data.spec import DataSpec
from src.errors import ConfigError, Rule, UserError, boolean, check_arguments, integer, null, number, positive_int

Batch = tuple[Tensor, Tensor]


class DataModule:
    """Deterministic stratified train/val/test split; standardization fitted on train only.

    ``split_shuffle=False`` keeps time order: train, then val, then test (for forecasting).

    Batches are drawn by index from tensors already on the device, with a fresh permutation per
    epoch: no per-sample DataLoader, no copies per step.
    """

    #: What each split argument may hold; a bad value is refused naming ``data.<argument>``.
    RULES: dict[str, Rule] = {
        "val_fraction": number(0, 1, high_open=True),
        "test_fraction": number(0, 1, high_open=True),
        "standardize": boolean,
        "split_seed": integer,
        "split_shuffle": boolean,
        "limit_train_rows": positive_int | null,
    }

    def __init__(
        self,
        dataset: Dataset,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        standardize: bool = False,
        split_seed: int = 0,
        split_shuffle: bool = True,
        limit_train_rows: int | None = None,
    ) -> None:
        check_arguments("data", locals(), self.RULES)
        if val_fraction + test_fraction >= 1:
            raise ConfigError(
                "data.val_fraction + data.test_fraction", val_fraction + test_fraction, "must be below 1"
            )
        if dataset.test is not None and test_fraction > 0:
            raise ConfigError("data.test_fraction", test_fraction, f"{dataset.name} has its published test split: set 0")
        published = [dataset.features] + ([] if dataset.test is None else [dataset.test[0]])
        with np.errstate(over="ignore"):  # values beyond float32's range become inf, and are refused
            if not all(np.all(np.isfinite(np.asarray(x, dtype=np.float32))) for x in published):
                raise UserError(f"data {dataset.name}: features hold NaN or inf (or values beyond float32's range)")
        self.name = dataset.name
        self.target_type = dataset.target_type
        labels = [dataset.targets] + ([] if dataset.test is None else [dataset.test[1]])
        self.num_classes = max(int(y.max()) for y in labels) + 1 if dataset.target_type == "classification" else 0
        self.spec = DataSpec(
            dataset.name, dataset.target_type, self.num_classes, tuple(dataset.features.shape[1:]),
            dataset.class_names, dataset.feature_names, dataset.info,
        )

        parts = _split(dataset, val_fraction, test_fraction, split_seed, split_shuffle)
        if limit_train_rows is not None:
            parts["train"] = tuple(part[:limit_train_rows] for part in parts["train"])
        if standardize:
            train = parts["train"][0]
            if train.ndim == 4:  # images (N×C×H×W): per channel, kept in float32 (CIFAR's train split is 600 MB so)
                mean = train.mean(axis=(0, 2, 3), dtype=np.float64)[:, None, None].astype(np.float32)
                std = train.std(axis=(0, 2, 3), dtype=np.float64)[:, None, None].astype(np.float32)
            else:  # per feature
                mean, std = train.mean(axis=0), train.std(axis=0)
            std[std == 0] = 1.0
            parts = {name: ((x - mean) / std, y) for name, (x, y) in parts.items()}
            self.spec.mean = torch.as_tensor(mean, dtype=torch.float32)
            self.spec.std = torch.as_tensor(std, dtype=torch.float32)
        self.splits: dict[str, Batch] = {name: self._tensors(x, y) for name, (x, y) in parts.items()}
        #: Applied to each shuffled training batch: fn(pictures, generator) -> pictures (``augment.py``).
        self.augment: Callable[[Tensor, torch.Generator], Tensor] | None = None

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> Batch:
        features = torch.as_tensor(x, dtype=torch.float32)
        if self.target_type == "regression":
            targets = torch.as_tensor(y, dtype=torch.float32)
        elif self.num_classes == 2:
            targets = torch.as_tensor(y, dtype=torch.float32)  # binary cross-entropy wants 0./1.
        else:
            targets = torch.as_tensor(y, dtype=torch.int64)
        return features, targets

    def to(self, device: torch.device) -> "DataModule":
        self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self.splits.items()}
        return self

    def to_channels_last(self) -> None:
        """Image batches (N, C, H, W) in channels-last memory order; other tensors as they are."""
        self.splits = {
            name: (x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x, y)
            for name, (x, y) in self.splits.items()
        }

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def steps_per_epoch(self, batch_size: int | None) -> int:
        n = self.size("train")
        return 1 if batch_size is None or batch_size >= n else -(-n // batch_size)

    def batches(
        self,
        split: str,
        batch_size: int | None,
        shuffle_seed: int | list[int] | None = None,
        skip: int = 0,
        shard: tuple[int, int] = (0, 1),
        members: int = 1,
    ) -> Iterator[Batch]:
        """Yield the split in batches, shuffled when ``shuffle_seed`` is given; ``skip`` resumes mid-epoch.

        The order depends on the seed alone, so a resumed epoch replays exactly. ``shard=(rank,
        world)`` yields this rank's every world-th row of each (global) batch. For K stacked
        members (``members``, or one seed each in ``shuffle_seed``) batches are shaped [K, N, ...]:
        each member's own order, or the same rows for all as a view that copies nothing.
        """
        x, y = self.splits[split]
        n = len(y)
        rank, world = shard
        augment = self.augment if split == "train" and shuffle_seed is not None else None
        whole = batch_size is None or batch_size >= n
        if isinstance(shuffle_seed, list) and (augment or not whole):
            size = n if whole else batch_size
            orders = (
                torch.arange(n, device=x.device).expand(len(shuffle_seed), n) if whole  # as one seed's whole batch
                else torch.stack([_order(n, seed) for seed in shuffle_seed]).to(x.device, non_blocking=True)
            )
            for start in range(skip * size, n, size):
                index = orders[:, start : start + size][:, rank::world]
                features = x[index]
                if augment:  # each member draws as its seed alone would
                    features = torch.stack([
                        augment(member, batch_generator(x.device, seed, start)) for member, seed in zip(features, shuffle_seed)
                    ])
                yield features, y[index]
            return
        if isinstance(shuffle_seed, list):
            shuffle_seed, members = shuffle_seed[0], len(shuffle_seed)  # one whole batch: the order is irrelevant
        size = batch_size or n
        for position, (features, targets) in enumerate(self._shared_batches(x, y, batch_size, shuffle_seed, skip, shard)):
            if augment:
                features = augment(features, batch_generator(x.device, shuffle_seed, (skip + position) * size))
            if members > 1:
                features, targets = features.expand(members, *features.shape), targets.expand(members, *targets.shape)
            yield features, targets

    @staticmethod
    def _shared_batches(
        x: Tensor, y: Tensor, batch_size: int | None, shuffle_seed: int | None, skip: int, shard: tuple[int, int]
    ) -> Iterator[Batch]:
        n = len(y)
        rank, world = shard
        if batch_size is None or batch_size >= n:
            if skip == 0:
                yield (x, y) if world == 1 else (x[rank::world], y[rank::world])  # whole batch: order is irrelevant
            return
        if shuffle_seed is None:
            for start in range(skip * batch_size, n, batch_size):
                yield x[start : start + batch_size], y[start : start + batch_size]
            return
        order = _order(n, shuffle_seed).to(x.device, non_blocking=True)
        for start in range(skip * batch_size, n, batch_size):
            index = order[start : start + batch_size][rank::world]
            yield x[index], y[index]


def _order(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _split(dataset: Dataset, val_fraction: float, test_fraction: float, seed: int, shuffle: bool) -> dict[str, tuple]:
    x, y = dataset.features, dataset.targets
    parts = {"train": (x, y)} if dataset.test is None else {"train": (x, y), "test": dataset.test}
    if val_fraction == 0 and test_fraction == 0:
        return parts
    from sklearn.model_selection import train_test_split  # ~1 s to import: only when a split is asked

    stratify = dataset.target_type == "classification" and shuffle

    def cut(x, y, fraction):
        try:
            return train_test_split(
                x, y, test_size=fraction, random_state=seed, shuffle=shuffle, stratify=y if stratify else None
            )
        except ValueError as error:
            raise UserError(f"data {dataset.name}: cannot split {len(y)} rows that way ({error})") from None

    if test_fraction > 0:
        x, x_test, y, y_test = cut(x, y, test_fraction)
        parts["test"] = (x_test, y_test)
    if val_fraction > 0:
        x, x_val, y, y_val = cut(x, y, val_fraction / (1 - test_fraction))
        parts["val"] = (x_val, y_val)
    parts["train"] = (x, y)
    return parts


def held_out_split(splits: dict[str, Batch]) -> str:
    """The split that shows how a model does on data it did not train on: test, else val, else train."""
    return next(name for name in ("test", "val", "train") if name in splits)
