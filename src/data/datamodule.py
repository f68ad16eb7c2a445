"""Split, scale and batch a small data set that lives as tensors on the training device."""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from src.data.augment import batch_generator
from src.data.dataset import Dataset
from src.data.spec import DataSpec
from src.errors import ConfigError, Rule, UserError, auto, boolean, check_arguments, integer, null, number, positive_int

Batch = tuple[Tensor, Tensor]


class DataModule:
    """Deterministic stratified train/val/test split; standardization fitted on train only.

    ``split_shuffle=False`` keeps time order: train, then val, then test (for forecasting).

    Batches are drawn by index from tensors already on the device, with a fresh permutation per
    epoch: no per-sample DataLoader, no copies per step. Data too large for the device
    (``on_device=false``, or ``auto`` when the splits would take over half the GPU's free memory) stay
    in pinned CPU memory, and each batch is drawn there by the same indices and then moved.
    """

    #: What each split argument may hold; a bad value is refused naming ``data.<argument>``.
    RULES: dict[str, Rule] = {
        "val_fraction": number(0, 1, high_open=True),
        "test_fraction": number(0, 1, high_open=True),
        "standardize": boolean,
        "split_seed": integer,
        "split_shuffle": boolean,
        "limit_train_rows": positive_int | null,
        "on_device": boolean | auto,
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
        on_device: bool | str = "auto",
    ) -> None:
        check_arguments("data", locals(), self.RULES)
        if val_fraction + test_fraction >= 1:
            total = round(val_fraction + test_fraction, 12)  # 0.99 + 0.9: 1.89, not 1.8900000000000001
            raise ConfigError("data.val_fraction + data.test_fraction", total, "must be below 1")
        if dataset.test is not None and test_fraction > 0:
            raise ConfigError("data.test_fraction", test_fraction, f"{dataset.name} has its published test split: set 0")
        published = [dataset.features] + ([] if dataset.test is None else [dataset.test[0]])
        with np.errstate(over="ignore"):  # values beyond float32's range become inf, and are refused
            if not all(np.all(np.isfinite(np.asarray(x, dtype=np.float32))) for x in published):
                raise UserError(f"data {dataset.name}: features hold NaN or inf (or values beyond float32's range)")
        self.name = dataset.name
        self.on_device_setting = on_device
        self.device = torch.device("cpu")  # where batches go
        self.resident = True  # the splits live on that device (else each batch is moved there)
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
        #: The rows evaluated in place of a whole split (``sample_for_evaluation``): split → row indices.
        self.evaluation_rows: dict[str, Tensor] = {}

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
        self.device = device
        self.resident = self.on_device(device) or device.type == "cpu"
        if self.resident:
            self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self.splits.items()}
            self.evaluation_rows = {name: rows.to(device) for name, rows in self.evaluation_rows.items()}
        elif device.type == "cuda":  # pinned: each batch's copy to the GPU runs beside the computation
            self.splits = {name: (x.pin_memory(), y.pin_memory()) for name, (x, y) in self.splits.items()}
        return self

    def on_device(self, device: torch.device) -> bool:
        """Whether the splits live on ``device`` (else batches are moved there one by one)."""
        if self.on_device_setting != "auto" or device.type != "cuda":
            return self.on_device_setting is not False
        size = sum(x.nbytes + y.nbytes for x, y in self.splits.values())
        return size < torch.cuda.mem_get_info(device)[0] / 2

    def pictured_splits(self, max_rows: int = 10_000) -> dict[str, Batch]:
        """What pictures are drawn from, on the device: the splits, or their first ``max_rows`` rows when they
        live in CPU memory (a confusion matrix of 10,000 rows says what one of 60,000 does)."""
        if self.resident:
            return self.splits
        return {name: (x[:max_rows].to(self.device), y[:max_rows].to(self.device)) for name, (x, y) in self.splits.items()}

    def to_channels_last(self) -> None:
        """Image batches (N, C, H, W) in channels-last memory order; other tensors as they are."""
        self.splits = {
            name: (x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x, y)
            for name, (x, y) in self.splits.items()
        }

    def sample_for_evaluation(self, split: str, rows: int | str) -> None:
        """Evaluate ``split`` (its unshuffled batches) on a fixed sample of ``rows`` of its rows, drawn once and
        the same for every seed and every check; ``auto``: as many rows as the validation split holds (the
        same precision as the metrics it is compared with), ``all``: every row."""
        if rows == "auto":
            rows = self.size("val") if "val" in self.splits else "all"
        if rows == "all" or rows >= self.size(split):
            self.evaluation_rows.pop(split, None)
            return
        x = self.splits[split][0]
        self.evaluation_rows[split] = _order(self.size(split), seed=0)[:rows].sort().values.to(x.device)  # where the split lives

    def size(self, split: str) -> int:
        return self.splits[split][1].shape[0]  # len() of a tensor costs ~2 µs of Python, every step

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
        """The split in batches, shuffled when ``shuffle_seed`` is given; ``skip`` resumes mid-epoch.

        The order depends on the seed alone, so a resumed epoch replays exactly. ``shard=(rank,
        world)`` yields this rank's every world-th row of each (global) batch. For K stacked
        members (``members``, or one seed each in ``shuffle_seed``) batches are shaped [K, N, ...]:
        each member's own order, or the same rows for all as a view that copies nothing. Shuffled
        training batches are augmented (``augment``) on the device, each member's as its seed alone draws
        and each rank's rows as one process draws for them.
        """
        augment = self.augment if split == "train" and shuffle_seed is not None else None
        whole = batch_size is None or batch_size >= self.size(split)
        if (
            whole and not skip and augment is None and shard[1] == 1 and members == 1 and not isinstance(shuffle_seed, list)
            and self.resident and (shuffle_seed is not None or split not in self.evaluation_rows)
        ):
            # The split as it is stored, the one batch of whole-batch descent's every step: without the
            # generators below (~25,000 instructions a step, 2.5% of the default job's; bench/instructions.py).
            return iter((self.splits[split],))
        return self._batches(split, batch_size, shuffle_seed, skip, shard, members, augment, whole)

    def _batches(
        self, split: str, batch_size: int | None, shuffle_seed: int | list[int] | None, skip: int, shard: tuple[int, int],
        members: int, augment: Callable | None, whole: bool,
    ) -> Iterator[Batch]:
        n = self.size(split)
        # Each member's own rows (its order, or its own augmentation), or one batch that every member shares.
        own_rows = isinstance(shuffle_seed, list) and (augment is not None or not whole)
        members = len(shuffle_seed) if isinstance(shuffle_seed, list) else members
        for features, targets, draws in self._indexed_batches(split, batch_size, shuffle_seed, skip, shard, own_rows):
            if not self.resident:
                features, targets = features.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)
            if augment is not None:
                generators = [batch_generator(self.device, seed, start) for seed, start in draws]
                rows = {}
                if shard[1] > 1:  # under torchrun: the global batch's draws, of which this rank takes its rows
                    batch_rows = min(batch_size or n, n - draws[0][1])
                    rows = dict(batch_rows=batch_rows, rows=_shard(torch.arange(batch_rows, device=self.device), *shard))
                features = (
                    torch.stack([augment(member, generator, **rows) for member, generator in zip(features, generators)]) if own_rows
                    else augment(features, generators[0], **rows)
                )
            if members > 1 and not own_rows:
                features, targets = features.expand(members, *features.shape), targets.expand(members, *targets.shape)
            yield features, targets

    def _indexed_batches(
        self, split: str, batch_size: int | None, shuffle_seed: int | list[int] | None, skip: int, shard: tuple[int, int], own_rows: bool
    ) -> Iterator[tuple[Tensor, Tensor, list[tuple[int, int]]]]:
        """Batches where the split lives, each with the (order seed, first row) of its random draws, per member."""
        x, y = self.splits[split]
        if shuffle_seed is None and split in self.evaluation_rows:
            index = self.evaluation_rows[split]
            x, y = _rows(x, index), _rows(y, index)
        n = y.shape[0]
        rank, world = shard
        whole = batch_size is None or batch_size >= n
        if own_rows:
            size = n if whole else batch_size
            orders = (
                torch.arange(n, device=x.device).expand(len(shuffle_seed), n) if whole  # as one seed's whole batch
                else torch.stack([_order(n, seed) for seed in shuffle_seed]).to(x.device, non_blocking=True)
            )
            for start in range(skip * size, n, size):
                index = _shard(orders[:, start : start + size], rank, world)
                yield _rows(x, index), _rows(y, index), [(seed, start) for seed in shuffle_seed]
            return
        if isinstance(shuffle_seed, list):
            shuffle_seed = shuffle_seed[0]  # one whole batch, the same for every member: the order is irrelevant
        size = batch_size or n
        for position, (features, targets) in enumerate(self._shared_batches(x, y, batch_size, shuffle_seed, skip, shard)):
            yield features, targets, [(shuffle_seed, (skip + position) * size)]

    @staticmethod
    def _shared_batches(
        x: Tensor, y: Tensor, batch_size: int | None, shuffle_seed: int | None, skip: int, shard: tuple[int, int]
    ) -> Iterator[Batch]:
        n = y.shape[0]
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
            index = _shard(order[start : start + batch_size], rank, world)
            yield _rows(x, index), _rows(y, index)


def _rows(tensor: Tensor, index: Tensor) -> Tensor:
    """``tensor[index]`` for an index of any shape, by index_select: 1.5-3x faster per batch on a CPU."""
    if index.dim() == 1:
        return tensor.index_select(0, index)
    return tensor.index_select(0, index.reshape(-1)).view(*index.shape, *tensor.shape[1:])


def _shard(index: Tensor, rank: int, world: int) -> Tensor:
    """This rank's every world-th row of a batch (the last axis of ``index``). A rank with no row of a
    short last batch gets the batch's first row, which the loop weights 0: each rank's backward pass
    takes part in averaging the gradients."""
    part = index[..., rank::world]
    return part if part.shape[-1] else index[..., :1]


def _order(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _split(dataset: Dataset, val_fraction: float, test_fraction: float, seed: int, shuffle: bool) -> dict[str, tuple]:
    x, y = dataset.features, dataset.targets
    parts = {"train": (x, y)} if dataset.test is None else {"train": (x, y), "test": dataset.test}
    if val_fraction == 0 and test_fraction == 0:
        return parts
    from sklearn.model_selection import train_test_split  # ~1 s to import: only when a split is asked

    stratify = dataset.target_type == "classification" and shuffle

    def cut(x, y, fraction, setting):
        if stratify:
            _check_stratified_cut(y, fraction, setting, dataset.name)
        try:
            return train_test_split(
                x, y, test_size=fraction, random_state=seed, shuffle=shuffle, stratify=y if stratify else None
            )
        except ValueError as error:
            raise UserError(f"data {dataset.name}: cannot split {len(y)} rows that way ({error})") from None

    if test_fraction > 0:
        x, x_test, y, y_test = cut(x, y, test_fraction, f"data.test_fraction={test_fraction:g}")
        parts["test"] = (x_test, y_test)
    if val_fraction > 0:
        x, x_val, y, y_val = cut(x, y, val_fraction / (1 - test_fraction), f"data.val_fraction={val_fraction:g}")
        parts["val"] = (x_val, y_val)
    parts["train"] = (x, y)
    return parts


def _check_stratified_cut(y, fraction: float, setting: str, data_name: str) -> None:
    """A split that keeps each class's share (sklearn's stratified one) needs two rows of every class, and
    a row of each class on both sides of the cut: said here in the config's words."""
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    if counts.min() < 2:
        lonely = [str(c) for c in classes[counts < 2]]
        named = ", ".join(lonely[:5]) + (" ..." if len(lonely) > 5 else "")
        which = f"class {named} has" if len(lonely) == 1 else f"classes {named} have"
        raise UserError(
            f"{setting}: a split that keeps each class's share of data {data_name}'s {len(y)} rows needs two rows "
            f"of every class; {which} one (more rows, or 0 for no such split)"
        )
    held = math.ceil(fraction * len(y))  # as sklearn counts them
    for part, rows in [("its split", held), ("the rest", len(y) - held)]:
        if rows < len(classes):
            raise UserError(
                f"{setting}: leaves {rows} of data {data_name}'s {len(y)} rows in {part}, but keeping each class's "
                f"share puts a row of each of the {len(classes)} classes there"
            )


def shown_splits(splits: dict[str, Batch]) -> list[str]:
    """What a task's pictures show: the split watched during training (val, else train), and the test split
    when it is given (at the end), so that each picture's series runs from step 0 to the end."""
    return ["val" if "val" in splits else "train", *(["test"] if "test" in splits else [])]
