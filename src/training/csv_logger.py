"""The per-step history as a table: ``<run>/metrics.csv``, one row per logged scalar."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import IO, Any

from torch import Tensor, nn

from src.run_log import log
from src.visuals import Visual

COLUMNS = ("step", "name", "value", "member", "wall_time")


class CSVLogger:
    """Rows of ``step,name,value,member,wall_time``: ``member`` is empty for the run (its only model, or the
    mean of its seeds) and ``seed_<s>`` for one member's own values. Long rather than wide, so that
    names that appear late (``test/acc`` at the end) need no rewrite: the file is only ever appended
    to, and flushed at every check, so a killed run keeps every check but the one being written.

    Read it with ``csv.DictReader`` or ``pandas.read_csv(...).pivot_table(index="step", columns="name")``.
    """

    #: Scalars only: no pictures or histograms, not even at the end.
    histogram_every_n_checks = 0
    figures_every_n_checks = 0

    def __init__(self, log_dir: str | Path, filename: str = "metrics.csv", member_name: str = "", file: IO[str] | None = None) -> None:
        self.path = Path(log_dir) / filename
        self.member_name = member_name
        self._file, self._owner = file, file is None
        self._writer = csv.writer(file) if file is not None else None
        self.failed = False

    def _rows(self) -> Any:
        if self._writer is None:  # opened on first use: a run that fails its checks leaves no empty file
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if self._file.tell() == 0:
                self._writer.writerow(COLUMNS)
        return self._writer

    def member(self, name: str) -> "CSVLogger":
        """One member's scalars, in the same file under its name."""
        self._rows()
        return CSVLogger(self.path.parent, self.path.name, name, self._file)

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        if self.failed:
            return
        now = round(time.time(), 3)
        try:
            self._rows().writerows((step, name, value, self.member_name, now) for name, value in metrics.items())
            self._file.flush()
        except OSError as error:
            self.failed = True
            log.warning(f"warning: cannot write {self.path} ({error.strerror or error}); training goes on without it")

    def log_histograms(self, model: nn.Module, step: int) -> None:
        pass

    def log_visuals(self, visuals: dict[str, Visual], step: int) -> None:
        pass

    def log_graph(self, model: nn.Module, example: Tensor) -> None:
        pass

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        if self._owner and self._file is not None and not self._file.closed:
            self._file.close()
