"""A user's own CSV file: numeric feature columns and one target column."""

from __future__ import annotations

import contextlib
import csv
import gc
import math
from pathlib import Path
from typing import Iterator

import numpy as np

from src.data.dataset import Dataset
from src.errors import ConfigError, Rule, UserError, check, one_of


def number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: {text!r} is not a finite number (NaN and inf are not allowed)")
    return value


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def finite_floats(cells: list[str]) -> np.ndarray | None:
    """The cells as float64 through Python's own ``float`` in one pass of C (4-6x faster than a call per
    cell), or None when one of them is not a finite number."""
    try:
        values = np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def feature_matrix(file: Path, header: list[str], body: list[tuple[int, list[str]]], columns: list[int]) -> np.ndarray:
    """The cells of ``columns`` as a [rows, columns] float64 array; the first cell (row by row) that is not a
    finite number is refused, naming its line and column."""
    values = [finite_floats([row[c] for _, row in body]) for c in columns]
    if all(column is not None for column in values):
        return np.stack(values, axis=1)
    return np.array([[number(row[c], f"{file} line {line}, column {header[c]!r}") for c in columns] for line, row in body])


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading makes a list and a tuple per row, and no reference cycles; as they pile up, Python's collector
    would pass over all of them again and again (for a million rows, ~1.3 s of 2 s)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_rows(path: Path, delimiter: str, header_optional: bool = False) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header's column names and the data rows with their line numbers. With ``header_optional``, a first
    row of numbers alone is data: the columns are named ``x1``, ``x2``, ... ."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle, _collector_paused():
            reader = csv.reader(handle, delimiter=delimiter)
            rows = [(reader.line_num, row) for row in reader if any(map(str.strip, row))]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: not a readable CSV file ({error})") from None
    if not rows:
        raise UserError(f"{path}: the file is empty (expected a header row and data rows)")
    (_, header), body = rows[0], rows[1:]
    first = "the header"
    if header_optional and all(is_number(cell) for cell in header):
        header, body, first = [f"x{i}" for i in range(1, len(header) + 1)], rows, "the first row"
    header = [name.strip() for name in header]
    if not body:
        raise UserError(f"{path}: only a header, no data rows")
    for line, row in body:
        if len(row) != len(header):
            raise UserError(f"{path} line {line}: {len(row)} fields, but {first} has {len(header)}")
    return header, body


def load_csv(
    path: str | None,
    target: str | None,
    features: list[str] | None = None,
    target_type: str = "classification",
    delimiter: str = ",",
) -> Dataset:
    """Read ``path``; ``target`` names the label column, ``features`` the inputs (default: all others)."""
    if path is None:
        raise ConfigError("data.path", path, "set it to your CSV file, e.g. data.path=my.csv")
    if target is None:
        raise ConfigError("data.target", target, "set it to the name of the label column")
    check("data.target_type", target_type, one_of("classification", "regression"))
    delimiter = "\t" if delimiter == "\\t" else delimiter  # a tab, as a command line can write it
    check("data.delimiter", delimiter, Rule(lambda value: isinstance(value, str) and len(value) == 1, "one character (\\t: a tab)"))
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError("data.path", path, "file not found")
    header, body = read_rows(file, delimiter)
    if target not in header:
        numbers = all(is_number(name) for name in header)
        hint = "; its first row holds numbers: the file needs a header row of column names" if numbers else ""
        raise ConfigError("data.target", target, f"no such column in {file} (columns: {', '.join(header)}){hint}")
    feature_names = list(features) if features is not None else [name for name in header if name != target]
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise ConfigError("data.features", missing, f"no such column in {file} (columns: {', '.join(header)})")
    if not feature_names:
        raise ConfigError("data.features", feature_names, f"{file} has no feature column besides the target")

    columns = [header.index(name) for name in feature_names]
    x = feature_matrix(file, header, body, columns)
    labels = [row[header.index(target)].strip() for _, row in body]
    where = f"{file} column {target!r}"
    if target_type == "regression":
        y = finite_floats(labels)
        if y is None:  # name the first label that is not a finite number
            y = np.array([number(label, f"{where} line {line}") for label, (line, _) in zip(labels, body)])
        return Dataset(x, y, "regression", file.stem, feature_names=feature_names)

    if any(label == "" for label in labels):
        raise UserError(f"{where}: empty label on line {body[labels.index('')][0]}")
    classes = sorted(set(labels), key=_label_order)
    if len(classes) < 2:
        raise UserError(f"{where}: holds a single class ({classes[0]!r}); classification needs at least two")
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    return Dataset(x, y, "classification", file.stem, classes, feature_names)


def _label_order(label: str) -> tuple[int, float, str]:
    """Numeric labels sort by value (2 before 10), others alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
