"""The TensorBoard run folder holds what the issue promises, read back with tensorboard itself."""

import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch
from tests.conftest import DATA_FILES, make_config, read_events, run_cli, run_training


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tb") / "moons_run"
    run_training(path, "data=moons", "model=mlp", "optimizer=adam", "trainer.max_steps=300", "logger.tensorboard.histogram_every_n_checks=10")
    return path


def test_run_folder_holds_config_metrics_checkpoints_and_events(run_dir):
    assert (run_dir / "config.yaml").read_text().count("_target_: torch.optim.Adam") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/loss"} <= set(metrics)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    # One event file, in the run folder itself: no sibling folder for the hparams.
    assert [p.parent for p in run_dir.rglob("events.out.tfevents.*")] == [run_dir]


def test_scalars_histograms_images_text_graph_and_hparams(run_dir):
    events = read_events(run_dir)
    tags = events.Tags()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "train/lr"} <= set(tags["scalars"])
    assert any(tag.startswith("weights/") for tag in tags["histograms"])
    assert any(tag.startswith("gradients/") for tag in tags["histograms"])
    assert {"train/decision_boundary", "test/confusion_matrix"} <= set(tags["images"])
    assert any("confusion_matrix_table" in tag for tag in tags["tensors"])
    assert tags["graph"]
    hparams = events.PluginTagToContent("hparams")
    # The session only: TensorBoard derives the table's columns from every run's sessions.
    assert set(hparams) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert b"optimizer.lr" in hparams["_hparams_/session_start_info"] and b"_target_" not in hparams["_hparams_/session_start_info"]
    assert any(tag.startswith("run/config") for tag in tags["tensors"])
    final_acc = events.Scalars("test/acc")[-1].value
    assert final_acc == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["test/acc"])
    steps = [event.step for event in events.Scalars("train/loss")]
    assert steps == sorted(steps) and steps[-1] == 300
    # Checks at 100, 200 and 300 draw no pictures (every 20th would): each series has its start and its end.
    pictured = {tag: [event.step for event in events.Images(tag)] for tag in tags["images"]}
    assert pictured == {"train/decision_boundary": [0, 300], "val/confusion_matrix": [0, 300], "test/confusion_matrix": [300]}


def test_pictures_are_written_as_drawn_and_histograms_hold_every_value(tmp_path):
    from PIL import Image

    from src.training.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path)
    colour, grey, translucent, grey_alpha = torch.rand(3, 5, 7), torch.rand(1, 4, 6), torch.rand(4, 9, 2), torch.rand(2, 3, 3)
    drawn = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8).permute(2, 0, 1)  # as Pillow's pixels come, viewed as CHW
    logger.log_visuals({"colour": colour, "grey": grey, "translucent": translucent, "grey_alpha": grey_alpha, "drawn": drawn}, step=3)
    weights = torch.nn.Linear(30, 20)
    logger.log_histograms(weights, step=3)
    logger.close()
    events = read_events(tmp_path)
    for tag, picture in (("colour", colour), ("grey", grey), ("translucent", translucent), ("grey_alpha", grey_alpha), ("drawn", drawn)):
        (event,) = events.Images(tag)
        assert event.step == 3 and (event.height, event.width) == picture.shape[1:]
        decoded = torch.from_numpy(np.array(Image.open(io.BytesIO(event.encoded_image_string))))
        decoded = decoded.permute(2, 0, 1) if decoded.dim() == 3 else decoded[None]
        expected = picture if picture.dtype == torch.uint8 else (picture * 255).round().to(torch.uint8)
        assert torch.equal(decoded, expected)  # lossless, in order, channels kept
    (histogram,) = events.Histograms("weights/weight")
    assert histogram.histogram_value.num == 600
    assert histogram.histogram_value.min == pytest.approx(weights.weight.min().item())
    assert histogram.histogram_value.max == pytest.approx(weights.weight.max().item())


def test_events_are_on_disk_as_soon_as_they_are_logged(tmp_path):
    """TensorBoard shows a run while it trains: nothing waits in a buffer for the end of the run."""
    from src.training.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path)
    logger.log_scalars({"train/loss": 0.5, "val/acc": 0.75}, step=100)
    logger.log_visuals({"run/model": "| layer |"}, step=100)
    events = read_events(tmp_path)  # before close
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(100, 0.5)]
    assert [(e.step, e.value) for e in events.Scalars("val/acc")] == [(100, 0.75)]
    assert "run/model/text_summary" in events.Tags()["tensors"]
    logger.log_scalars({"train/loss": 0.25}, step=200)
    logger.close()
    assert [(e.step, e.value) for e in read_events(tmp_path).Scalars("train/loss")] == [(100, 0.5), (200, 0.25)]


def test_histograms_match_tensorboards_own_buckets():
    from torch.utils.tensorboard.summary import histogram

    from src.training.tensorboard_logger import _histogram

    for values in (torch.randn(3000, generator=torch.Generator().manual_seed(0)), torch.full((5,), 2.0), torch.tensor([1.0, float("nan"), 3.0, float("inf")])):
        ours = _histogram("w", values).value[0].histo
        finite = values[values.isfinite()]
        theirs = histogram("w", finite, bins=64).value[0].histo
        assert list(ours.bucket) == list(theirs.bucket)
        assert ours.bucket_limit == pytest.approx(list(theirs.bucket_limit), abs=1e-6)
        assert (ours.min, ours.max, ours.num) == (theirs.min, theirs.max, theirs.num)
        assert (ours.sum, ours.sum_squares) == pytest.approx((theirs.sum, theirs.sum_squares), rel=1e-5)
    assert not _histogram("w", torch.tensor([float("nan")])).value


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_real_tensorboard_server_shows_the_run(run_dir):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir.parent), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline and not runs:
            try:
                runs = json.load(urllib.request.urlopen(f"{base}/data/runs", timeout=5))
            except OSError:
                pass
            time.sleep(0.5)
        assert runs == ["moons_run"]
        tags = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=10))
        assert {"train/loss", "val/acc", "test/acc"} <= set(tags["moons_run"])
        points = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/scalars?run=moons_run&tag=val/acc", timeout=10))
        assert points and 0.5 < points[-1][2] <= 1.0
    finally:
        server.terminate()
        server.wait(timeout=10)


def start_tensorboard(logdir):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
         "--samples_per_plugin", "images=1000"],  # TensorBoard keeps 10 per tag by default; 0 here shows none
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def get_json(url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    return json.load(urllib.request.urlopen(request, timeout=timeout))


@pytest.mark.slow
def test_hparams_names_and_pictures_across_kinds_of_runs(tmp_path):
    """A planar run, a CNN run, a GAN run and a 4-job sweep in one folder, read through the real server."""
    jobs = [
        ["trainer.max_steps=300"],
        ["experiment=cnn_digits", "trainer.max_epochs=10", "model.channels=[4,8]", "logger.tensorboard.figures_every_n_checks=1"],
        ["experiment=gan_ring", "trainer.max_epochs=2", "task.eval_samples=200", "model.generator_hidden=[32]"],
        ["-m", "optimizer.lr=0.5,1.2", "activation=tanh,relu", "trainer.max_steps=100"],
    ]
    for job in jobs:
        result = run_cli("src.train", *job, f"paths.log_dir={tmp_path}", timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    server, base = start_tensorboard(tmp_path)
    try:
        deadline, runs = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(runs) < 7:
            try:
                runs = get_json(f"{base}/data/runs", timeout=5)
            except OSError:
                pass
            time.sleep(0.5)
        assert len(runs) == 7, runs
        swept = [run for run in runs if "multirun_" in run]
        # Named by the choices and the overrides (sorted by key, as Hydra lists them), then the job number.
        assert sorted(run.rsplit("/", 1)[1].rsplit("_", 1)[0] for run in swept) == [
            f"two_layer_gd_activation-{activation}_lr-{lr}_max_steps-100" for activation in ("relu", "tanh") for lr in ("0.5", "1.2")
        ]

        experiment = get_json(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        columns = {info["name"] for info in experiment["hparamInfos"]}
        assert {"model", "optimizer", "activation", "data", "experiment", "optimizer.lr"} <= columns
        assert not any("_target_" in column or column.startswith("paths") for column in columns)
        metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
        assert {"train/acc", "val/acc", "test/acc", "val/modes_covered", "val/high_quality"} <= metrics

        images = get_json(f"{base}/data/plugin/images/tags")
        assert any("cnn_digits" in run and "test/confusion_matrix" in tags for run, tags in images.items())
        for run, tags in images.items():
            steps = {}
            for tag in tags:
                entries = get_json(f"{base}/data/plugin/images/images?run={urllib.parse.quote(run)}&tag={urllib.parse.quote(tag)}")
                steps[tag] = [entry["step"] for entry in entries]
            last = max(max(s) for s in steps.values())
            for tag, at in steps.items():
                if tag.startswith("test/"):
                    assert at == [last], (run, tag, at)  # the test split only at the end
                else:  # step 0, the checks it was due at, the end: each once
                    assert len(at) >= 2 and at[0] == 0 and at[-1] == last and len(at) == len(set(at)), (run, tag, at)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_gan_graph_shows_both_networks(tmp_path):
    run_training(tmp_path, "experiment=gan_ring", "trainer.max_epochs=null", "trainer.max_steps=3", "task.eval_samples=100",
                 "model.generator_hidden=[8]", "model.discriminator_hidden=[8]")
    nodes = " ".join(node.name for node in read_events(tmp_path).Graph().node)
    assert "GeneratorThenDiscriminator/Sequential[generator]" in nodes and "GeneratorThenDiscriminator/MLP[discriminator]" in nodes


def test_pictures_carry_their_counts_labels_and_legends():
    from src import visuals

    def cell(image, row, col, left, top=44, size=40):  # one cell of a confusion matrix picture
        return image[:, top + row * size : top + (row + 1) * size, left + col * size : left + (col + 1) * size]

    counts = visuals.confusion_matrix_image(torch.tensor([[7, 0], [0, 9]]), ["cat", "dog"])
    other = visuals.confusion_matrix_image(torch.tensor([[1, 0], [0, 9]]), ["cat", "dog"])
    left = counts.shape[2] - 8 - 2 * 40
    assert counts.shape == (3, 44 + 80 + 8, left + 88)
    assert not torch.equal(cell(counts, 0, 0, left), cell(other, 0, 0, left))  # "7" is not "1"
    assert torch.equal(cell(counts, 1, 1, left), cell(other, 1, 1, left))
    assert (cell(counts, 0, 1, left) < 128).any()  # a "0" written on the pale cell (Pillow's bytes: uint8)
    assert cell(counts, 0, 0, left)[:, 0, 0].tolist() == [0, 89, 255]  # a row all on the diagonal: dark blue
    assert cell(counts, 0, 1, left)[:, 0, 0].tolist() == [255, 255, 255]  # none: white
    images = torch.rand(3, 1, 8, 8)
    plain, labelled = visuals.image_grid(images, scale=6), visuals.image_grid(images, scale=6, labels=["a as b"] * 3)
    assert labelled.shape[1] == plain.shape[1] + 16 and (labelled[:, -16:, :] < 128).any()
    points = [torch.randn(50, 2) * 0.1 + 3, torch.randn(50, 2) * 0.1 + 3]  # far from the top left corner
    with_legend = visuals.scatter(points, torch.zeros(2), torch.full((2,), 4.0), names=["real", "generated"])
    corner = with_legend[:, 10:20, 10:20]  # the first name's colour square
    assert torch.allclose(corner, visuals._PALETTE[0][:, None, None], atol=0.01)


def test_the_decision_boundary_colours_each_region_by_its_class_and_draws_the_points_on_it():
    from src import visuals

    pale, strong = 0.6 + 0.4 * visuals._PALETTE, visuals._PALETTE
    x = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])  # drawn on a 41-pixel grid from -1.5 to 1.5: 0.075 a pixel
    two = visuals.decision_boundary_image(lambda grid: (grid[:, 0] > 0).float(), x[[0, 2]], torch.tensor([0, 1]), size=41)
    assert torch.allclose(two[:, 20, 2], pale[0]) and torch.allclose(two[:, 20, 38], pale[1])  # left of x = 0, right of it
    assert torch.allclose(two[:, 33, 7], strong[0]) and torch.allclose(two[:, 7, 33], strong[1])  # (-1, -1) low left, (1, 1) up right

    def three_bands(grid):  # class 0 left of -0.5, 1 between, 2 right of 0.5
        return torch.nn.functional.one_hot((grid[:, 0] > -0.5).long() + (grid[:, 0] > 0.5).long(), 3).float()

    three = visuals.decision_boundary_image(three_bands, x, torch.tensor([0, 1, 2]), size=41)
    for column, band in [(2, 0), (20, 1), (38, 2)]:
        assert torch.allclose(three[:, 5, column], pale[band])
    for (row, column), label in [((33, 7), 0), ((20, 20), 1), ((7, 33), 2)]:
        assert torch.allclose(three[:, row, column], strong[label])

    # Past the palette's 10 colours it starts again: class 11 of 12 (right of x = 0.5) takes class 1's colours.
    twelve = visuals.decision_boundary_image(lambda grid: torch.nn.functional.one_hot(11 * (grid[:, 0] > 0.5).long(), 12).float(),
                                             x[[0, 2]], torch.tensor([0, 11]), size=41)
    assert torch.allclose(twelve[:, 20, 2], pale[0]) and torch.allclose(twelve[:, 20, 38], pale[1])
    assert torch.allclose(twelve[:, 7, 33], strong[1])


@pytest.mark.parametrize("anchor", ["mm", "ms", "rm", "lm", "mt"])
def test_numbers_put_together_from_their_digits_are_pillows_own_drawing_of_them(anchor):
    from src import visuals

    for number in [*map(str, range(10, 400)), "0000", "4096", "1234567890"]:
        mask, left, top = visuals._lettering(number, anchor)
        drawn, drawn_left, drawn_top = visuals._drawn(number, anchor)
        assert (left, top, mask.size) == (drawn_left, drawn_top, drawn.size), number
        assert np.array_equal(np.asarray(mask), np.asarray(drawn)), number


def test_hparams_hold_what_an_experiment_changed_from_its_options_own_yaml():
    from src.training.tensorboard_logger import hyperparameters

    config = {
        "choices": {"experiment": "cnn_digits", "model": "cnn", "optimizer": "adam", "trainer": "default", "logger": "tensorboard"},
        "overrides": ["trainer.seed=3"],
        "model": {"_target_": "src.models.cnn.CNN", "channels": [32, 64], "kernel_size": 3, "activation": {"_target_": "torch.nn.ReLU"}},
        "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.002, "betas": [0.9, 0.999], "batch_size": 64},
        "trainer": {"max_epochs": 40, "max_steps": None, "seed": 3, "device": "auto"},
        "paths": {"log_dir": "/somewhere"},
    }
    assert hyperparameters(config) == {
        "experiment": "cnn_digits", "model": "cnn", "optimizer": "adam", "trainer": "default",  # the choices
        "model.channels": [32, 64], "optimizer.lr": 0.002, "trainer.max_epochs": 40, "trainer.max_steps": None,  # changed
        "trainer.seed": 3,  # the command line's
    }


def test_event_checksums_match_tensorboards_own():
    import os

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    from src.training.tensorboard_logger import _masked_crc32c

    for size in (0, 1, 12, 1000):
        data = os.urandom(size)
        assert _masked_crc32c(data) == masked_crc32c(data)


def test_zero_means_no_pictures_and_no_histograms_at_all(tmp_path):
    run_training(tmp_path, "trainer.max_steps=200", "logger=tensorboard", "logger.tensorboard.histogram_every_n_checks=0",
                 "logger.tensorboard.figures_every_n_checks=0")
    tags = read_events(tmp_path).Tags()
    assert "train/loss" in tags["scalars"] and tags["graph"]
    assert tags["images"] == [] and tags["histograms"] == []


def test_the_graph_puts_each_op_and_parameter_in_its_module_with_its_shape():
    from torch import nn

    from src.models.mlp import MLP
    from src.training.model_graph import model_graph

    model = MLP((8, 8), 10, [16], nn.Tanh, dropout=0.5)
    nodes = {node.name: node for node in model_graph(model, torch.zeros(1, 8, 8)).node}
    shape = lambda node: [d.size for d in node.attr["_output_shapes"].list.shape[0].dim]  # noqa: E731
    first = next(node for name, node in nodes.items() if name.startswith("MLP/Sequential[layers]/Linear[1]/") and node.op == "aten::linear")
    flatten = nodes[first.input[0]]
    assert flatten.op == "aten::flatten" and flatten.input[0] == "input/x" and shape(flatten) == [1, 64]
    assert list(first.input[1:]) == ["MLP/Sequential[layers]/Linear[1]/weight", "MLP/Sequential[layers]/Linear[1]/bias"]
    assert nodes["MLP/Sequential[layers]/Linear[1]/weight"].op == "Parameter" and shape(nodes["MLP/Sequential[layers]/Linear[1]/weight"]) == [16, 64]
    assert shape(first) == [1, 16] and shape(nodes["output/output.1"]) == [1, 10]
    # Traced in eval mode (the dropout's train flag is false), and the model is left training as it was.
    dropout = next(node for node in nodes.values() if node.op == "aten::dropout")
    assert nodes[dropout.input[2]].attr["attr"].s == b"{'value': 0}" and model.training
    # Every input of every node is a node: TensorBoard draws each edge.
    assert all(name in nodes for node in nodes.values() for name in node.input)


def _pairings():
    from tests.test_configs import FITTING_DATA, options

    # Each kind of data once: the 2-D point sets moons, circles and gaussian_quantiles draw as planar and blobs
    # do, fashion_mnist as mnist, csv's rows of features as arrays' do.
    same_kind = ("csv", "moons", "circles", "gaussian_quantiles", "fashion_mnist")
    data = [[f"data={option}", *DATA_FILES.get(option, [])] for option in options("data") if option not in same_kind]
    data += [["data=digits", "data.layout=image"], ["data=digits", "data.layout=sequence"]]
    tasks = [([*FITTING_DATA.get(model, ["data=sine"]), f"task={task}"], model) for model in options("model") for task in options("task")]
    return [(d, model) for d in data for model in options("model")] + tasks


PAIRINGS = _pairings()


@pytest.mark.parametrize(("data", "model"), PAIRINGS, ids=[" ".join([*(o.split("=")[1] for o in d if o.startswith(("data=", "data.layout=", "task="))), m]) for d, m in PAIRINGS])
def test_every_model_that_fits_a_data_set_draws_its_pictures_of_it(tmp_path, data, model):
    """The pictures TensorBoard gets at each picture check, for every pairing of a data option and a model option,
    and of a model option and a task option, that builds (the others are refused in one line): a GAN on sequences
    or on rows of features, a classifier of 25 classes of 2-D points (more than the palette's 10 colours) and a
    forecast of data that is no series once ended in a traceback there."""
    from src.build import build_training
    from src.errors import UserError
    from src.tasks.regression import Regression

    try:
        data_module, task, _, _ = build_training(make_config(tmp_path, *data, f"model={model}"))
        task.try_on(next(data_module.batches("train", None)), data_module.name)
    except UserError:
        return
    pictures = task.solo_view().eval().visualize(data_module.pictured_splits())
    assert pictures or type(task) is Regression  # the one task that draws nothing
    for tag, picture in pictures.items():
        if isinstance(picture, str):
            continue
        assert picture.dim() == 3 and picture.shape[0] in (1, 3), tag
        assert picture.dtype == torch.uint8 or (0 <= picture.min() and picture.max() <= 1), tag
        if "generated_vs_real" in tag or "decision_boundary" in tag:  # both sides' colours are drawn
            colours = {tuple(pixel) for pixel in picture.flatten(1).T.tolist()}
            assert len(colours) >= 3, tag
