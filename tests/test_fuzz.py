"""A property-based search of the config space (#12): any value of any key either trains or is refused
with one line that names the key; never another exception."""

import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

import src.predict
from src.errors import UserError
from src.evaluate import evaluate
from src.predict import predict
from src.tasks.classification import BinaryClassification
from src.train import train
from tests.conftest import DATA_FILES, make_config
from tests.test_configs import FITTING_DATA, options

# The options composed with the default job, each with the keys it brings; paths and Hydra's own keys left out.
BASES = [["model=" + option, *FITTING_DATA.get(option, [])] for option in options("model")] + [
    [f"{group}={option}", *{**DATA_FILES, "flip_crop": ["data=digits", "data.layout=image"]}.get(option, [])]
    for group in ("data", "optimizer", "scheduler", "activation", "callbacks", "augment") for option in options(group)
    if option not in ("csv", "none")
]
# data.root: another folder would be downloaded into; the data sets' stand-ins live under $NNLAB_DATA. ckpt_path and
# init_from name checkpoint files, whose refusals name the file (test_errors, test_loop_tools).
SKIPPED = ("paths", "hydra", "name", "ckpt_path", "init_from", "optimized_metric", "logger", "data.root", "data.download")
# Keys whose large values are legitimately slow (they say how long to train or how much data to make), drawn
# from small values only: the search is for crashes, not for long runs.
SIZES = ("trainer.max_steps", "trainer.max_epochs", "trainer.seeds", "data.n_samples", "data.n_points", "data.sequence_length")


def leaves(config, prefix=""):
    for key, value in config.items():
        path = f"{prefix}{key}"
        if path.split(".")[0] in SKIPPED or path in SKIPPED or str(key).startswith("_"):
            continue
        if OmegaConf.is_dict(value):
            yield from leaves(value, f"{path}.")
        else:
            yield path


KEYS = {index: sorted(leaves(make_config(Path("/tmp"), *base, "logger=none"))) for index, base in enumerate(BASES)}

NUMBERS = st.sampled_from([0, -1, -0.5, 1e-30, 0.5, 1.5, 3, 10**9, 1e30, math.nan, math.inf, -math.inf, True])
TEXTS = st.sampled_from(["", "abc", "x" * 300, "ümlaut ☃", "../../etc/passwd", "/nonexistent/file.csv", "null", "1e3"])
LISTS = st.sampled_from([[], [[]], [1, [2]], [0], [-3], ["a"], [10**9], [1.5, 2]])
VALUES = st.one_of(NUMBERS, TEXTS, LISTS, st.none())


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None, suppress_health_check=list(HealthCheck), derandomize="FUZZ_EXAMPLES" not in os.environ)
@given(data=st.data())
def test_any_value_of_any_key_trains_or_is_refused_naming_the_key(data):
    base = data.draw(st.sampled_from(sorted(KEYS)), label="base")
    key = data.draw(st.sampled_from(KEYS[base]), label="key")
    value = data.draw(st.sampled_from([0, 1, 2, -1, None, "x", []]) if key in SIZES else VALUES, label="value")
    with tempfile.TemporaryDirectory() as out:
        config = make_config(Path(out), *BASES[base], "logger=none", "trainer.max_steps=2", "trainer.max_epochs=2",
                             "trainer.log_every_seconds=null")
        with open_dict(config):
            OmegaConf.update(config, key, value, merge=False)
        try:
            train(config)
        except UserError as error:
            message = str(error)
            assert "\n" not in message, message
            leaf = key.rsplit(".", 1)[-1]
            assert leaf in message or key.split(".")[0] in message, f"{key}={value!r}: {message}"


# --- src.predict and src.evaluate: any input file or argument predicts, or is refused in one line naming it.

CELLS = st.sampled_from(["0.5", "-3", "1e3", "", " ", "nan", "inf", "-inf", "abc", "1,5", "ü", '"', "0x10", "1e400", "True"])
HEADERS = st.lists(st.sampled_from(["a", "b", "c", "", "A", "a ", "ä", "size"]), min_size=0, max_size=4)


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A model trained on named CSV columns a, b (class: size), and one on the planar points (two unnamed features)."""
    folder = tmp_path_factory.mktemp("fuzz_runs")
    data = folder / "train.csv"
    data.write_text("a,b,size\n" + "".join(f"{x / 10},{(x % 7) / 7},{'big' if x % 3 else 'small'}\n" for x in range(40)))
    train(make_config(folder / "csv", "data=csv", f"data.path={data}", "data.target=size", "model=mlp", "trainer.max_steps=5", "logger=none"))
    train(make_config(folder / "planar", "trainer.max_steps=5", "logger=none"))
    return {name: folder / name / "checkpoints" / "last.ckpt" for name in ("csv", "planar")}


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None, suppress_health_check=list(HealthCheck), derandomize="FUZZ_EXAMPLES" not in os.environ)
@given(data=st.data())
def test_any_input_file_predicts_or_is_refused_naming_the_file(csv_run, data):
    run = data.draw(st.sampled_from(sorted(csv_run)), label="run")
    header = data.draw(HEADERS, label="header")
    rows = data.draw(st.lists(st.lists(CELLS, min_size=0, max_size=5), min_size=0, max_size=4), label="rows")
    raw = data.draw(st.sampled_from([None, b"", b"\xff\xfe\x00garbage", b"\x00" * 10, b"a,b\n1,2\n\x00"]), label="raw bytes")
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "input.csv"
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
        try:
            written = predict(str(csv_run[run]), str(path), str(Path(out) / "predictions.csv"))
        except UserError as error:
            message = str(error)
            assert "\n" not in message and (str(path) in message or "input" in message), message
            return
        lines = (Path(out) / "predictions.csv").read_text().splitlines()
        assert written == len(lines) - 1 >= 1


def test_rows_predict_in_parts_of_the_runs_eval_batch_size_as_they_do_in_one(csv_run, tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n" + "".join(f"{i / 25},{i % 7 / 7}\n" for i in range(100)))
    predict(str(csv_run["csv"]), str(path), str(tmp_path / "whole.csv"))
    real_build, real_columns, rows_seen = src.predict.build_from_checkpoint, BinaryClassification.prediction_columns, []

    def small_parts(*args):
        task, spec, config = real_build(*args)
        config.trainer.eval_batch_size = 7
        return task, spec, config

    def columns(task, x):
        rows_seen.append(len(x))
        return real_columns(task, x)

    monkeypatch.setattr(src.predict, "build_from_checkpoint", small_parts)
    monkeypatch.setattr(BinaryClassification, "prediction_columns", columns)
    predict(str(csv_run["csv"]), str(path), str(tmp_path / "parts.csv"))
    assert rows_seen == [7] * 14 + [2]
    parts, whole = ([line.rsplit(",", 1) for line in (tmp_path / name).read_text().splitlines()] for name in ("parts.csv", "whole.csv"))
    assert [row for row, _ in parts] == [row for row, _ in whole]  # the cells and the predicted classes
    assert [float(p) for _, p in parts[1:]] == pytest.approx([float(p) for _, p in whole[1:]], abs=1e-5)  # products of other shapes


@pytest.mark.slow
def test_a_million_rows_predict(csv_run, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("b,a\n")
        handle.writelines(f"{i % 7 / 7},{i % 40 / 10}\n" for i in range(10**6))
    assert predict(str(csv_run["csv"]), str(path), str(tmp_path / "out.csv")) == 10**6
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert len(lines) == 10**6 + 1 and lines[0] == "a,b,prediction,probability"
    for i in (0, 1, 10**6 - 1):  # the row's cells as written, in the training's column order, then its class
        a, b, prediction, probability = lines[i + 1].split(",")
        assert (a, b) == (str(i % 40 / 10), str(i % 7 / 7)) and prediction in ("big", "small") and 0.5 <= float(probability) <= 1


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 20)), deadline=None, suppress_health_check=list(HealthCheck), derandomize="FUZZ_EXAMPLES" not in os.environ)
@given(
    split=st.one_of(VALUES, st.sampled_from(["auto", "train", "val", "test"])),
    device=st.one_of(VALUES, st.sampled_from(["auto", "cpu"])),
    eval_batch_size=st.one_of(VALUES, st.sampled_from([1, 3, None])),
)
def test_any_split_device_or_part_size_evaluates_or_is_refused_naming_it(csv_run, split, device, eval_batch_size):
    try:
        metrics = evaluate(str(csv_run["csv"]), split, device, eval_batch_size)
    except UserError as error:
        named = [key for key in ("split", "device", "eval_batch_size") if str(error).startswith(f"{key}=")]
        assert "\n" not in str(error) and named, str(error)
        return
    scored = "test" if split == "auto" else split  # the csv run holds a test split
    assert metrics and all(key.startswith(f"{scored}/") for key in metrics if key != "per_seed")
