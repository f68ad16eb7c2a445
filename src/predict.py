"""Predict from a checkpoint: ``python -m src.predict ckpt_path=... input=new.csv output=preds.csv``.

Each output row holds the input row, the predicted class and its probability (or the regression value).
A model trained on pictures also takes a picture file or a folder of them (``input=photos/``): a row per
picture, its file first.
A run of several seeds predicts as their ensemble (the members' mean probability, or mean value),
or as one member with ``member=<seed>``. A GAN generates instead: ``samples=N`` rows of its generator's samples,
in the data's own units, from the latent draws of ``seed`` (``member=<seed>`` for a run of several seeds), or
with ``output=<file>.png`` one picture of them: pictures in a grid, 2-D points scattered.
"""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

import hydra
import torch
from omegaconf import DictConfig

from src import cli, visuals
from src.build import build_from_checkpoint
from src.data.csv_table import feature_matrix, read_rows
from src.data.image_sets import IMAGE_SUFFIXES, PICTURES, pictures
from src.data.spec import DataSpec
from src.errors import ConfigError, UserError, check, integer, null, positive_int, report_user_errors, setting
from src.run_log import log
from src.tasks.task import Task
from src.training.device import out_of_memory_in_one_line, resolve_device


# A GAN's pictures in one .png: each enlarged this many times, the grid at most this many pixels wide (its canvas
# is drawn in float32: 200 MB at that size).
GRID_SCALE, GRID_SIDE = 4, 4096
USAGE = "python -m src.predict ckpt_path=<ckpt> input=<file.csv> output=<file.csv> (a GAN: samples=<count> instead of input)"


def _feature_columns(header: list[str], spec: DataSpec, path: Path) -> list[int]:
    width = math.prod(spec.input_shape)
    if spec.feature_names is not None:  # trained on a CSV: columns by name, in the training order
        missing = [name for name in spec.feature_names if name not in header]
        if missing:
            raise ConfigError("input", path, f"missing column(s) {', '.join(missing)}; the model takes {', '.join(spec.feature_names)}")
        return [header.index(name) for name in spec.feature_names]
    if len(header) != width:
        columns = f"{len(header)} column{'s' * (len(header) != 1)}"
        raise ConfigError("input", path, f"{columns}, but the model takes {width} (the features of data {spec.name})")
    return list(range(width))


def predict(
    ckpt_path: str | None, input: str | None, output: str, member: int | None = None, device: str = "auto", eval_batch_size: int | None = None,
    samples: int | None = None, seed: int = 0,
) -> int:
    if ckpt_path is None:
        raise ConfigError("ckpt_path", ckpt_path, f"is required: {USAGE}")
    where = resolve_device(device, "device")
    check("eval_batch_size", eval_batch_size, positive_int | null)
    task, spec, config = build_from_checkpoint(ckpt_path, member)
    batch_size = eval_batch_size or config.trainer.eval_batch_size
    if samples is not None or task.adversarial:
        return _generate(task, spec, where, batch_size, input, output, samples, seed)
    if input is None:
        raise ConfigError("input", input, f"is required: {USAGE}")
    if _is_picture(output):
        raise ConfigError("output", output, "predictions are written as CSV rows; a picture (.png) shows a GAN's samples")
    task = task.solo_view().to(where)
    path = Path(input).expanduser()
    files = _picture_files(path, spec, input)
    if files is not None:
        features = torch.from_numpy(pictures(files, spec.info, spec.input_shape[1:], setting("input", input)))
        names, shown = ["file"], [[str(file) for file in files]]
    else:
        if not path.is_file():
            raise ConfigError("input", input, "file not found")
        header, body = read_rows(path, ",", header_optional=spec.feature_names is None)  # columns by position
        columns = _feature_columns(header, spec, path)
        features = torch.from_numpy(feature_matrix(path, header, body, columns)).float().reshape(len(body), *spec.input_shape)
        names, shown = [header[c] for c in columns], [[row[c] for _, row in body] for c in columns]  # the cells' own text
    with out_of_memory_in_one_line(where, batch_size):
        try:  # in parts of eval_batch_size rows: a folder of pictures through a CNN at once would fill any memory
            parts = [task.prediction_columns(rows.to(where)) for rows in spec.scale(features).split(batch_size)]
        except UserError as error:
            raise UserError(f"{setting('ckpt_path', ckpt_path)}: {error}") from None
    predicted = {column: [value for part in parts for value in part[column]] for column in parts[0]}
    _write(output, names + list(predicted), zip(*shown, *predicted.values()))
    return len(features)


def _generate(task: Task, spec: DataSpec, where: torch.device, batch_size: int, input: str | None, output: str, samples: int | None, seed: int) -> int:
    """``samples`` rows of the GAN's generated samples, flattened, in the data's units (its standardization undone)."""
    if not task.adversarial:
        raise ConfigError("samples", samples, f"only a GAN (task=adversarial) generates samples; this checkpoint's task is {type(task).__name__}: give input=<file>")
    if input is not None:
        raise ConfigError("input", input, "a GAN generates from noise, not from rows: give samples=<count> instead")
    if samples is None:
        raise ConfigError("samples", samples, "a GAN generates samples from noise: give their number, e.g. samples=1000")
    check("samples", samples, positive_int)
    check("seed", seed, integer)
    shape, picture = task.model.sample_shape, _is_picture(output)
    if picture and len(shape) != 3 and shape != (2,):
        raise ConfigError("output", output, f"a picture shows pictures or 2-D points; data {spec.name}'s samples are {'×'.join(map(str, shape))} values: give a .csv")
    if picture and len(shape) == 3:
        cell = GRID_SCALE * max(shape[1:]) + 1  # a picture enlarged and the line between two
        if math.ceil(math.sqrt(samples)) * cell + 1 > GRID_SIDE:
            fit = ((GRID_SIDE - 1) // cell) ** 2
            raise ConfigError("samples", samples, f"at most {fit} pictures of {shape[1]}×{shape[2]} fit in a grid {GRID_SIDE} pixels wide: give fewer, or output=<file>.csv")
    if task.members > 1:
        raise ConfigError("member", None, f"a run of several seeds generates with one of them: member=<seed> (its seeds: {', '.join(map(str, task.model.seeds))})")
    task.to(where)
    latent = task.latent(samples, torch.Generator(device=where).manual_seed(seed))  # drawn at once: parts draw alike
    with out_of_memory_in_one_line(where, batch_size), torch.no_grad():
        generated = torch.cat([task.model.generator(part) for part in latent.split(batch_size)]).cpu()
    if spec.mean is not None:
        generated = generated * spec.std + spec.mean
    if picture:
        drawn = visuals.image_grid(generated, math.ceil(math.sqrt(samples)), GRID_SCALE) if len(shape) == 3 else visuals.scatter([generated])
        with _writing(output):
            visuals.pil_image(drawn).save(output, format="PNG")
        return samples
    rows = generated.flatten(1)
    names = spec.feature_names if spec.feature_names and len(spec.feature_names) == rows.shape[1] else [f"x{i}" for i in range(1, rows.shape[1] + 1)]
    _write(output, names, ([f"{value:.7g}" for value in row] for row in rows.tolist()))
    return samples


def _is_picture(output: str) -> bool:
    return Path(output).suffix.lower() == ".png"


def _write(output: str, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    with _writing(output), open(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@contextlib.contextmanager
def _writing(output: str) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise UserError(f"{setting('output', output)}: cannot write ({error.strerror or error})") from None


def _picture_files(path: Path, spec: DataSpec, given: str) -> list[Path] | None:
    """The picture files ``input`` names (a picture, or a folder of them, read as far down as it goes), or
    None for a CSV of rows."""
    if not path.is_dir() and path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if PICTURES not in spec.info:
        what = "a folder" if path.is_dir() else "a picture"
        raise ConfigError("input", given, f"{what}, but this model takes rows of {math.prod(spec.input_shape)} numbers (data {spec.name}): give a CSV")
    if not path.is_dir():
        if not path.is_file():
            raise ConfigError("input", given, "file not found")
        return [path]
    files = sorted(file for file in path.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file())
    if not files:
        raise ConfigError("input", given, f"no picture files in it ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(config: DictConfig) -> None:
    count = report_user_errors(
        lambda: predict(config.ckpt_path, config.input, config.output, config.member, config.device, config.eval_batch_size, config.samples, config.seed)
    )
    what = "generated sample" if config.samples is not None else "prediction"
    log.info(f"{count} {what}{'s' if count != 1 else ''} written to {config.output}")


if __name__ == "__main__":
    cli.run(main, "predict")
