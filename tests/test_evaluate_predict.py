"""Evaluate and predict from a checkpoint, rebuilding the model from the run's own config."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from src.errors import UserError
from src.build import build_from_checkpoint
from src.evaluate import evaluate
from src.predict import predict
from src.tasks.classification import BinaryClassification
from tests.conftest import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    rows = [(x / 10, (x % 7) / 7, "big" if x / 10 + (x % 7) / 7 > 3 else "small") for x in range(60)]
    data = run / "train.csv"
    with open(data, "w", newline="") as handle:
        csv.writer(handle).writerows([("a", "b", "size"), *rows])
    metrics = run_training(
        run / "out", "data=csv", f"data.path={data}", "data.target=size", "model=mlp", "optimizer=adam",
        "optimizer.lr=0.01", "trainer.max_steps=300", "logger=none",
    )
    return run, metrics, rows


def test_evaluate_reproduces_the_runs_test_metrics(trained):
    run, metrics, _ = trained
    result = evaluate(str(run / "out" / "checkpoints" / "best.ckpt"))  # the weights the run tested
    assert result["test/acc"] == pytest.approx(metrics["test/acc"]) and result["test/loss"] == pytest.approx(metrics["test/loss"])
    saved = json.loads((run / "out" / "metrics.json").read_text())
    assert saved["test/acc"] == pytest.approx(metrics["test/acc"]) and saved["evaluated_checkpoint"].endswith("best.ckpt")
    assert saved["train/acc"] == metrics["train/acc"]  # the training metrics stay


def counted(method, rows_seen: list[int]):
    """``method`` of a task, noting the rows of each batch it is given."""
    def call(task, batch):
        rows_seen.append(len(batch[1] if isinstance(batch, tuple) else batch))
        return method(task, batch)
    return call


def test_evaluate_and_predict_in_parts_of_eval_batch_size_on_the_cpu_give_the_same_numbers(trained, tmp_path, monkeypatch):
    run, _, _ = trained
    checkpoint = str(run / "out" / "checkpoints" / "best.ckpt")
    whole = evaluate(checkpoint)
    monkeypatch.setattr(BinaryClassification, "evaluation_step", counted(BinaryClassification.evaluation_step, passes := []))
    parts = evaluate(checkpoint, device="cpu", eval_batch_size=7)
    assert passes == [7, 2]  # the 9 test rows
    assert parts["test/acc"] == pytest.approx(whole["test/acc"]) and parts["test/loss"] == pytest.approx(whole["test/loss"], rel=1e-6)
    new = tmp_path / "new.csv"
    new.write_text("a,b\n" + "".join(f"{x / 7},{x % 5}\n" for x in range(30)))
    predict(checkpoint, str(new), str(tmp_path / "whole.csv"))
    monkeypatch.setattr(BinaryClassification, "prediction_columns", counted(BinaryClassification.prediction_columns, passes := []))
    predict(checkpoint, str(new), str(tmp_path / "parts.csv"), device="cpu", eval_batch_size=4)
    assert passes == [4] * 7 + [2]
    whole, parts = (list(csv.reader((tmp_path / name).open())) for name in ("whole.csv", "parts.csv"))
    assert [row[:-1] for row in parts] == [row[:-1] for row in whole]  # the cells and the classes
    assert [float(row[-1]) for row in parts[1:]] == pytest.approx([float(row[-1]) for row in whole[1:]], abs=1e-5)


@pytest.mark.parametrize(("override", "message"), [
    ({"device": "gpu"}, "device='gpu': must be one of auto, cpu, cuda, mps"),
    ({"eval_batch_size": 0}, "eval_batch_size=0: must be a positive integer or null"),
    *([] if torch.cuda.is_available() else [({"device": "cuda"}, "device='cuda': CUDA is not available on this machine; use auto or cpu")]),
])
def test_a_device_or_part_size_that_cannot_be_is_refused_in_one_line(trained, tmp_path, override, message):
    run, _, _ = trained
    checkpoint = str(run / "out" / "checkpoints" / "best.ckpt")
    for command in (lambda: evaluate(checkpoint, **override), lambda: predict(checkpoint, str(run / "train.csv"), str(tmp_path / "p.csv"), **override)):
        with pytest.raises(UserError) as error:
            command()
        assert str(error.value) == message


def test_running_out_of_memory_while_evaluating_or_predicting_ends_in_one_line(trained, tmp_path, monkeypatch):
    run, _, _ = trained
    checkpoint = str(run / "out" / "checkpoints" / "best.ckpt")

    def full(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB")

    monkeypatch.setattr(BinaryClassification, "evaluation_step", full)
    monkeypatch.setattr(BinaryClassification, "prediction_columns", full)
    line = "out of memory (tried to allocate 2.00 GiB): lower eval_batch_size (now 100)"
    for command in (lambda: evaluate(checkpoint, eval_batch_size=100), lambda: predict(checkpoint, str(run / "train.csv"), str(tmp_path / "p.csv"), eval_batch_size=100)):
        with pytest.raises(UserError) as error:
            command()
        assert str(error.value) == line + ("" if not torch.cuda.is_available() else " or device=cpu")


def test_the_default_split_is_the_one_held_out_and_a_split_the_run_lacks_is_refused_naming_those_it_has(tmp_path):
    run_training(tmp_path / "planar", "trainer.max_steps=1", "logger=none")  # the notes' planar job: every row trains
    planar = str(tmp_path / "planar" / "checkpoints" / "last.ckpt")
    assert set(evaluate(planar)) == {"train/loss", "train/acc"}
    with pytest.raises(UserError) as error:
        evaluate(planar, "test")
    assert str(error.value) == "split='test': this run's data has the splits train (split=auto takes train)"
    run_training(tmp_path / "moons", "data=moons", "data.test_fraction=0", "trainer.max_steps=1", "logger=none")
    assert set(evaluate(str(tmp_path / "moons" / "checkpoints" / "last.ckpt"))) == {"val/loss", "val/acc"}


def test_predict_writes_class_and_probability_per_row(trained, tmp_path):
    run, metrics, rows = trained
    new = tmp_path / "new.csv"
    new.write_text("b,a\n0.1,0.2\n0.9,5.5\n")  # columns by name, in any order
    out = tmp_path / "preds.csv"
    assert predict(str(run / "out" / "checkpoints" / "best.ckpt"), str(new), str(out)) == 2
    result = list(csv.DictReader(out.open()))
    assert [row["prediction"] for row in result] == ["small", "big"]
    assert all(0.5 <= float(row["probability"]) <= 1 for row in result)
    assert list(result[0]) == ["a", "b", "prediction", "probability"]


def test_predict_names_missing_columns(trained, tmp_path):
    run, _, _ = trained
    bad = tmp_path / "bad.csv"
    bad.write_text("a,c\n1,2\n")
    with pytest.raises(UserError, match=r"^input='.*bad\.csv': missing column\(s\) b; the model takes a, b$"):
        predict(str(run / "out" / "checkpoints" / "best.ckpt"), str(bad), str(tmp_path / "o.csv"))


def test_predict_counts_columns_for_unnamed_features(tmp_path):
    run_training(tmp_path / "run", "trainer.max_steps=5", "logger=none")
    bad = tmp_path / "three.csv"
    bad.write_text("x,y,z\n1,2,3\n")
    with pytest.raises(UserError, match=r"3 columns, but the model takes 2 \(the features of data planar\)"):
        predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(bad), str(tmp_path / "o.csv"))
    (tmp_path / "one.csv").write_text("x\n1\n")
    with pytest.raises(UserError, match=r"1 column, but the model takes 2 "):
        predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(tmp_path / "one.csv"), str(tmp_path / "o.csv"))
    good = tmp_path / "two.csv"
    good.write_text("x,y\n1,2\n-3,0.5\n")
    assert predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(good), str(tmp_path / "o.csv")) == 2
    named = (tmp_path / "o.csv").read_text().splitlines()
    bare = tmp_path / "numbers.csv"  # numbers alone: no header row, so its first row is data too
    bare.write_text("1,2\n-3,0.5\n")
    assert predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(bare), str(tmp_path / "o.csv")) == 2
    assert (tmp_path / "o.csv").read_text().splitlines() == ["x1,x2" + named[0].removeprefix("x,y"), *named[1:]]


def test_a_training_csv_without_a_header_row_is_refused_saying_so(tmp_path, csv_file):
    path = csv_file("1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(UserError, match=r"no such column .*\(columns: 1, 2, 0\); its first row holds numbers: the file needs a header row"):
        run_training(tmp_path, "data=csv", f"data.path={path}", "data.target=label", "trainer.max_steps=1", "logger=none")


def test_regression_prediction(tmp_path, csv_file):
    path = csv_file("x,y\n" + "".join(f"{x / 10},{3 * x / 10 + 1}\n" for x in range(-20, 20)))
    run_training(
        tmp_path / "run", "data=csv", f"data.path={path}", "data.target=y", "data.target_type=regression", "model=logreg",
        "optimizer=gd", "optimizer.lr=0.5", "trainer.max_steps=400", "logger=none",
    )
    new = csv_file("x\n0.5\n", "new.csv")
    predict(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), str(new), str(tmp_path / "o.csv"))
    assert float(list(csv.DictReader((tmp_path / "o.csv").open()))[0]["prediction"]) == pytest.approx(2.5, abs=1e-3)


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    """A ring GAN trained a few steps on standardized points, its stacked twin of 2 seeds, a digits GAN (8×8
    pictures) and a GAN of sine windows (sequences)."""
    folder = tmp_path_factory.mktemp("gan")
    short = ["trainer.max_steps=5", "trainer.max_epochs=null", "callbacks=none", "logger=none"]
    job = ["experiment=gan_ring", "data.n_samples=500", "data.standardize=true", *short]
    run_training(folder / "one", *job)
    run_training(folder / "two", *job, "trainer.seeds=2")
    run_training(folder / "digits", "experiment=gan_digits", *short)
    run_training(folder / "sine", "model=gan", "data=sine", *short)
    return {name: str(folder / name / "checkpoints" / "last.ckpt") for name in ("one", "two", "digits", "sine")}


def generator_output(checkpoint: str, samples: int, seed: int) -> torch.Tensor:
    task, spec, _ = build_from_checkpoint(checkpoint)
    with torch.no_grad():
        generated = task.model.generator(task.latent(samples, torch.Generator().manual_seed(seed)))
    return generated if spec.mean is None else generated * spec.std + spec.mean


def test_a_gan_generates_samples_in_the_datas_units_from_the_latent_draws_of_its_seed(gan, tmp_path):
    def generated(name, **settings):
        assert predict(gan["one"], None, str(tmp_path / name), **settings) == settings["samples"]
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == "x1,x2"
        return torch.tensor([[float(cell) for cell in line.split(",")] for line in lines[1:]])

    samples = generated("seed3.csv", samples=7, seed=3)
    assert build_from_checkpoint(gan["one"])[1].mean is not None and samples.shape == (7, 2)
    torch.testing.assert_close(samples, generator_output(gan["one"], 7, 3), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(generated("parts.csv", samples=7, seed=3, eval_batch_size=3), samples)
    assert not torch.allclose(generated("seed4.csv", samples=7, seed=4), samples)
    member, spec, _ = build_from_checkpoint(gan["two"], 43)
    predict(gan["two"], None, str(tmp_path / "member.csv"), member=43, samples=4, seed=0)
    with torch.no_grad():
        first = member.model.generator(member.latent(4, torch.Generator().manual_seed(0)))[0] * spec.std + spec.mean
    assert (tmp_path / "member.csv").read_text().splitlines()[1] == ",".join(f"{value:.7g}" for value in first.tolist())


def test_a_png_output_draws_a_gans_samples_in_one_picture(gan, tmp_path):
    """Pictures in a grid of √N columns, each stretched to black and white and enlarged 4 times; 2-D points on
    a white square, every sample a coloured pixel."""
    assert predict(gan["digits"], None, str(tmp_path / "digits.png"), samples=8, seed=3) == 8
    picture = np.asarray(Image.open(tmp_path / "digits.png"))
    assert picture.shape == (3 * 33 + 1, 3 * 33 + 1, 3)  # 3 columns and rows of 8×8 pixels × 4, 1 apart
    for index, sample in enumerate(generator_output(gan["digits"], 8, 3)[:, 0]):
        row, column = divmod(index, 3)
        cell = picture[1 + 33 * row : 33 * (row + 1) : 4, 1 + 33 * column : 33 * (column + 1) : 4, 0]
        stretched = (sample - sample.min()) / (sample.max() - sample.min()) * 255
        assert np.abs(cell.astype(float) - stretched.numpy()).max() <= 1
    assert (picture[1 + 33 * 2 :, 1 + 33 * 2 :] == 255).all()  # the ninth cell stays empty

    predict(gan["one"], None, str(tmp_path / "ring.png"), samples=50, seed=3)
    points = generator_output(gan["one"], 50, 3)
    picture = np.asarray(Image.open(tmp_path / "ring.png"))
    size = picture.shape[0]
    low, high = points.min(0).values - 0.3, points.max(0).values + 0.3  # the scatter's margins
    columns = ((points[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long()
    rows = ((high[1] - points[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long()
    assert (picture[rows, columns] != 255).any(1).all() and (picture == 255).all(2).mean() > 0.99


def test_generating_is_refused_in_one_line_without_a_count_for_a_classifier_or_from_rows(gan, trained, tmp_path):
    run = trained[0]
    classifier = str(run / "out" / "checkpoints" / "best.ckpt")
    for (path, input, settings, output), line in [
        ((gan["one"], None, {}, "out.csv"), "samples=None: a GAN generates samples from noise: give their number, e.g. samples=1000"),
        ((gan["one"], None, {"samples": 0}, "out.csv"), "samples=0: must be a positive integer"),
        ((gan["one"], str(run / "train.csv"), {"samples": 3}, "out.csv"), f"input='{run / 'train.csv'}': a GAN generates from noise, not from rows: give samples=<count> instead"),
        ((gan["two"], None, {"samples": 3}, "out.csv"), "member=None: a run of several seeds generates with one of them: member=<seed> (its seeds: 42, 43)"),
        ((classifier, None, {"samples": 3}, "out.csv"), "samples=3: only a GAN (task=adversarial) generates samples; this checkpoint's task is BinaryClassification: give input=<file>"),
        ((gan["sine"], None, {"samples": 3}, "out.png"), f"output='{tmp_path / 'out.png'}': a picture shows pictures or 2-D points; data sine's samples are 40×1 values: give a .csv"),
        ((gan["digits"], None, {"samples": 125 ** 2}, "out.png"), f"samples={125 ** 2}: at most 15376 pictures of 8×8 fit in a grid 4096 pixels wide: give fewer, or output=<file>.csv"),
        ((classifier, str(run / "train.csv"), {}, "out.png"), f"output='{tmp_path / 'out.png'}': predictions are written as CSV rows; a picture (.png) shows a GAN's samples"),
    ]:
        with pytest.raises(UserError) as error:
            predict(path, input, str(tmp_path / output), **settings)
        assert str(error.value) == line
    assert not list(tmp_path.iterdir())
