"""Evaluate a checkpoint: ``python -m src.evaluate ckpt_path=<run>/checkpoints/best.ckpt [split=auto] [device=auto]``.

The model and the data split are rebuilt from the run's own saved config; the metrics go into the
run's metrics.json under their usual names (``test/acc``, ...). A run of several seeds reports each
member (``per_seed``), their mean, spread, and their ensemble's metrics (``test/acc/ensemble``).
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src import cli
from src.build import build_data, build_from_checkpoint
from src.errors import ConfigError, check, null, positive_int, report_user_errors
from src.run_log import log
from src.training.checkpoint import run_folder, write_durably
from src.training.device import out_of_memory_in_one_line, resolve_device
from src.training.seeds import in_words, per_member, summarize


def evaluate(ckpt_path: str | None, split: str = "auto", device: str = "auto", eval_batch_size: int | None = None) -> dict[str, float]:
    """``split``: one of the run's splits, or ``auto``: the one held out longest (test, else val, else train)."""
    if ckpt_path is None:
        raise ConfigError("ckpt_path", ckpt_path, "set it to a checkpoint, e.g. ckpt_path=logs/train/<run>/checkpoints/best.ckpt")
    where = resolve_device(device, "device")
    check("eval_batch_size", eval_batch_size, positive_int | null)
    task, _, config = build_from_checkpoint(ckpt_path)
    data = build_data(config.data)
    held_out = next(name for name in ("test", "val", "train") if name in data.splits)
    if split == "auto":
        split = held_out
    elif not isinstance(split, str) or split not in data.splits:
        raise ConfigError("split", split, f"this run's data has the splits {', '.join(data.splits)} (split=auto takes {held_out})")
    task.to(where)
    data.to(where)
    batch_size = eval_batch_size or config.trainer.eval_batch_size
    with out_of_memory_in_one_line(where, batch_size):
        values = task.evaluate(data.batches(split, batch_size, members=task.members))
        members = [{f"{split}/{name}": value for name, value in member.items()} for member in per_member(values)]
        metrics = summarize(members, getattr(task.model, "seeds", [config.trainer.seed]))
        ensemble = task.solo_view()
        if ensemble is not task:
            values = ensemble.evaluate(data.batches(split, batch_size))
            metrics.update({f"{split}/{name}/ensemble": float(value) for name, value in values.items()})
    checkpoint = Path(ckpt_path).resolve()
    file = run_folder(checkpoint) / "metrics.json"
    saved = json.loads(file.read_text()) if file.is_file() else {}
    for seed, member in metrics.get("per_seed", {}).items():
        saved.setdefault("per_seed", {}).setdefault(seed, {}).update(member)
    saved.update({key: value for key, value in metrics.items() if key != "per_seed"})
    saved["evaluated_checkpoint"] = str(checkpoint)
    if split == "test":
        saved.pop("test_weights", None)  # the evaluated checkpoint says which weights now
    write_durably(json.dumps(saved, indent=2) + "\n", file)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(config: DictConfig) -> None:
    metrics = report_user_errors(lambda: evaluate(config.ckpt_path, config.split, config.device, config.eval_batch_size))
    log.info(in_words(metrics))


if __name__ == "__main__":
    cli.run(main, "evaluate")
