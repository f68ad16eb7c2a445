"""Shared by the studies' report scripts: read runs back from their own files, draw, write Markdown.

A report is made only from what runs wrote (metrics.json, config.yaml, metrics.csv, TensorBoard
events, checkpoints), never typed by hand: rerunning a study's command regenerates it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]  # one per setting; a setting's seeds share it
sys.path.insert(0, str(REPO_ROOT))


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, float]
    member: str = ""  # "seed_7": one member of a run of several seeds (its curves are in the run's files)
    _events: EventAccumulator | None = None

    @property
    def events(self) -> EventAccumulator:
        if self._events is None:
            self._events = EventAccumulator(str(self.path), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
            self._events.Reload()
        return self._events

    def scalars(self, tag: str) -> tuple[list[int], list[float], list[float]]:
        """Steps, values and wall-clock seconds since the first point, from the run's metrics.csv (or,
        for a run written before it existed, from its TensorBoard events)."""
        history = (self.path.parent if self.member else self.path) / "metrics.csv"
        if history.is_file():
            rows = [row for row in _history(history) if row["name"] == tag and row["member"] == self.member]
            start = float(rows[0]["wall_time"]) if rows else 0.0
            return [int(r["step"]) for r in rows], [float(r["value"]) for r in rows], [float(r["wall_time"]) - start for r in rows]
        points = self.events.Scalars(tag)
        start = points[0].wall_time if points else 0.0
        return [p.step for p in points], [p.value for p in points], [p.wall_time - start for p in points]

    def image(self, tag: str, index: int = -1):
        return plt.imread(io.BytesIO(self.events.Images(tag)[index].encoded_image_string), format="png")

    def images(self, tag: str) -> list[tuple[int, Any]]:
        return [(e.step, plt.imread(io.BytesIO(e.encoded_image_string), format="png")) for e in self.events.Images(tag)]

    def gradient_norms(self) -> dict[str, tuple[list[int], list[float]]]:
        """Per parameter: the gradient's L2 norm at each histogram, from the histogram's sum of squares."""
        norms = {}
        for tag in self.events.Tags()["histograms"]:
            if tag.startswith("gradients/") and tag.endswith("weight"):
                events = self.events.Histograms(tag)
                norms[tag.removeprefix("gradients/")] = (
                    [e.step for e in events], [math.sqrt(e.histogram_value.sum_squares) for e in events]
                )
        return norms

    @property
    def per_seed(self) -> dict[str, dict[str, float]]:
        """Each member's final metrics, by seed (a run of one seed has one member)."""
        return self.metrics.get("per_seed") or {str(self.config["trainer"]["seed"]): self.metrics}

    def values(self, key: str) -> list[float]:
        return [member[key] for member in self.per_seed.values()]

    def spread(self, key: str, percent: bool = False) -> str:
        """``mean ± std (min–max)`` over the members (the sample standard deviation)."""
        values = [100 * v for v in self.values(key)] if percent else self.values(key)
        form, unit = (".1f", "%") if percent else (".2e" if max(map(abs, values)) < 1e-3 else ".4f", "")
        mean = statistics.fmean(values)
        if len(values) == 1:
            return f"{mean:{form}}{unit} (one seed)"
        std = statistics.stdev(values)
        return f"{mean:{form}} ± {std:{form}}{unit} ({min(values):{form}}–{max(values):{form}})"

    def members(self) -> list["Run"]:
        """One Run per seed: its own metrics and curves (its rows of metrics.csv; TensorBoard: the run folder's ``seed_<s>``)."""
        if "per_seed" not in self.metrics:
            return [self]
        return [Run(self.path / f"seed_{seed}", self.config, metrics, f"seed_{seed}") for seed, metrics in self.per_seed.items()]

    def stuck_at_chance(self, key: str, chance: float, margin: float = 0.02) -> list[str]:
        """The seeds whose ``key`` (an accuracy) ended within ``margin`` of chance: dead networks."""
        return [seed for seed, member in self.per_seed.items() if member[key] <= chance + margin]

    def get(self, dotted: str) -> Any:
        node: Any = self.config
        for key in dotted.split("."):
            node = node[key]
        return node


@functools.lru_cache(maxsize=None)
def _history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def place_in(value: float, values: list[float], tolerance: float = 1e-6) -> str:
    """Where a published number falls among the seeds' values, in words (metrics are float32: a tolerance)."""
    below = sum(v < value - tolerance for v in values)
    above = sum(v > value + tolerance for v in values)
    if below == above == 0:
        return "equal to every seed"
    if below == len(values):
        return "above every seed"
    if above == len(values):
        return "below every seed"
    return f"inside the seeds' range ({below} of {len(values)} seeds below it, {above} above)"


def output_folder(study: Path) -> Path:
    """Where the runs are and the report goes: the study's folder, or the folder given as argument."""
    out = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else study
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_runs(folder: Path) -> list[Run]:
    """Every finished run under ``folder`` (those with a metrics.json), in folder order."""
    runs = []
    for metrics_file in sorted(folder.rglob("metrics.json")):
        path = metrics_file.parent
        runs.append(Run(path, yaml.safe_load((path / "config.yaml").read_text()), json.loads(metrics_file.read_text())))
    if not runs:
        raise SystemExit(f"no finished runs under {folder}: run the study's command first")
    return runs


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"![{path.stem}]({path.name})"


def write_report(folder: Path, title: str, command: str, sections: list[str]) -> Path:
    text = [f"# {title}", "", "Generated by `report.py` from the runs' own files; rerun with:", "", "```bash", command, "```", ""]
    text += [section.strip() + "\n" for section in sections]
    out = folder / "README.md"
    out.write_text("\n".join(text))
    return out
