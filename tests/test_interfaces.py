"""The task group, and the written interfaces a newcomer implements: a task, a logger, a callback."""

from __future__ import annotations

import math
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import ListConfig
from torch import Tensor, nn

from src.build import build_data, build_task
from src.errors import ConfigError, UserError, check, nonempty_list_of, null, number, one_of, positive_int
from src.tasks.adversarial import Adversarial
from src.tasks.classification import BinaryClassification, MulticlassClassification
from src.tasks.forecast import Forecast
from src.tasks.regression import Regression
from src.training.callbacks import EVENTS, Callback
from tests.conftest import make_config, run_training

FAST = ["logger=none", "trainer.max_steps=20"]


def task_for(tmp_path: Path, *overrides: str):
    config = make_config(tmp_path, *overrides)
    return build_task(config, build_data(config.data).spec)


@pytest.mark.parametrize(
    "overrides, kind, outputs",
    [
        ([], BinaryClassification, 1),  # the notes' network: one sigmoid output
        (["data=digits"], MulticlassClassification, 10),
        (["task=classification", "data=digits"], MulticlassClassification, 10),
        (["data=sine", "model=rnn"], Regression, 1),
        (["data=sine", "model=rnn", "task=forecast"], Forecast, 1),
        (["model=gan", "data=ring"], Adversarial, None),
    ],
)
def test_each_task_option_builds_its_task_with_the_output_size_it_asks_for(tmp_path, overrides, kind, outputs):
    task = task_for(tmp_path, *overrides)
    assert type(task) is kind
    if outputs is not None:
        x = task.example_input(build_data(make_config(tmp_path, *overrides).data).splits["train"])
        assert task.model(x).shape[-1] == outputs


def test_task_settings_live_in_the_task_group(tmp_path):
    assert task_for(tmp_path, "data=sine", "model=rnn", "task=forecast", "task.horizon=7").horizon == 7
    gan = task_for(tmp_path, "model=gan", "data=ring", "task.discriminator_steps=2")
    assert gan.optimizer_order == (0, 0, 1)
    for setting, line in [
        ("task.generator_steps=0", r"^task\.generator_steps=0: must be an integer in \[1, 1,000\]$"),
        ("task.discriminator_steps=1000000000", r"^task\.discriminator_steps=1000000000: must be an integer in \[1, 1,000\]$"),  # not 8 GB of turns
        ("task.eval_samples=1000000000", r"^task\.eval_samples=1000000000: must be an integer in \[1, 1,000,000\]$"),
    ]:
        with pytest.raises(ConfigError, match=line):
            task_for(tmp_path, "model=gan", "data=ring", setting)
    with pytest.raises(ConfigError, match=r"^task='classification': data sine holds real-valued targets"):
        task_for(tmp_path, "data=sine", "model=rnn", "task=classification")
    with pytest.raises(ConfigError, match=r"^task='adversarial': needs a model with a generator"):
        task_for(tmp_path, "task=adversarial")
    for task in ["task=classification", "task=regression", "task=auto"]:
        with pytest.raises(UserError, match=r"^task: a \w+ task maps rows to outputs; model GAN is a generator with a discriminator, which trains with task=adversarial"):
            task_for(tmp_path, "model=gan", "data=ring", task)
    # A forecast feeds its outputs back in as the series' next values: one series, real-valued.
    for data, found in [("data=moons", r"classification targets of inputs shaped \(2,\)"), ("data=adding", r"shaped \(50, 2\)")]:
        with pytest.raises(ConfigError, match=rf"^task='forecast': needs windows of one series \(T×1\) .*{found}"):
            task_for(tmp_path, data, "model=rnn", "task=forecast")


@pytest.mark.parametrize("data", ["data=digits", "data=moons"])
def test_label_smoothing_trains_on_smoothed_targets_and_scores_the_plain_loss(tmp_path, data):
    epsilon = 0.2
    plain, smoothed = task_for(tmp_path, data), task_for(tmp_path, data, "task=classification", "task.label_smoothing=0.2")
    with torch.no_grad():  # confident outputs, far from the initial weights' near-uniform ones
        for parameter in plain.parameters():
            parameter.normal_(0, 2, generator=torch.Generator().manual_seed(0))
    smoothed.load_state_dict(plain.state_dict())
    x, y = build_data(make_config(tmp_path, data).data).splits["train"]
    if type(plain) is MulticlassClassification:
        log_p = torch.log_softmax(plain.model(x), -1)
        targets = (1 - epsilon) * F.one_hot(y, 10) + epsilon / 10  # (1-ε)·one-hot + ε/K
        by_hand = -(targets * log_p).sum(-1).mean()
    else:
        z, t = plain.model(x).squeeze(-1), y * (1 - epsilon) + epsilon / 2
        by_hand = -(t * F.logsigmoid(z) + (1 - t) * F.logsigmoid(-z)).mean()  # the notes' J on smoothed targets: log a, log(1-a)
    assert smoothed.training_step((x, y), 0).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert plain.training_step((x, y), 0).item() != pytest.approx(by_hand.item(), rel=1e-3)
    assert smoothed.evaluation_step((x, y))["loss"].item() == pytest.approx(plain.training_step((x, y), 0).item(), rel=1e-6)


def test_label_smoothing_out_of_its_range_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^task\.label_smoothing=1: must be a number in \[0, 1\)$"):
        task_for(tmp_path, "data=digits", "task=classification", "task.label_smoothing=1")


def test_a_model_with_more_outputs_than_a_regression_takes_is_refused_before_training(tmp_path):
    # A model built by hand keeps its two outputs: mse_loss would broadcast them against the 1-D targets.
    data = build_data(make_config(tmp_path, "data=ring").data)
    task = Regression(nn.Linear(2, 2), data.spec)
    with pytest.raises(UserError, match=r"^model Linear does not fit data ring .*a regression takes one output per row; this model gives outputs shaped \(2, 2\)"):
        task.try_on(next(data.batches("train", None)), data.name)


class MeanAbsoluteError(Regression):
    """A task written by a user: one class, named in the config by its ``_target_``."""

    def training_step(self, batch, optimizer_index: int) -> Tensor:
        x, y = batch
        return F.l1_loss(self.predict(x), y)


def test_a_new_task_is_one_class_named_by_the_config(tmp_path):
    metrics = run_training(
        tmp_path, "data=sine", "model=mlp", "optimizer=adam", "optimizer.lr=0.01", f"task._target_={__name__}.MeanAbsoluteError", *FAST
    )
    assert "val/mae" in metrics and metrics["train/step_loss"] < 1.0  # the mean |error| it minimized, not an MSE


class RecordingLogger:
    """Implements src.training.logger.Logger by writing down every call."""

    calls: list[tuple[str, str, object]] = []

    def __init__(self, log_dir: Path, name: str, histogram_every_n_checks: int | None = 5, figures_every_n_checks: int | None = None):
        self.name, self.histogram_every_n_checks, self.figures_every_n_checks = name, histogram_every_n_checks, figures_every_n_checks

    def log_scalars(self, metrics, step):
        self.calls.append((self.name, "scalars", (step, dict(metrics))))

    def log_histograms(self, model, step):
        self.calls.append((self.name, "histograms", step))

    def log_visuals(self, visuals, step):
        self.calls.append((self.name, "visuals", (step, sorted(visuals))))

    def log_graph(self, model, example):
        self.calls.append((self.name, "graph", tuple(example.shape)))

    def log_hparams(self, config, metrics):
        self.calls.append((self.name, "hparams", (config["optimizer"]["lr"], sorted(metrics))))

    def close(self):
        self.calls.append((self.name, "close", None))


def test_any_object_with_the_logger_methods_is_a_logger_and_several_loggers_get_the_same_calls(tmp_path):
    RecordingLogger.calls.clear()
    target = f"{__name__}.RecordingLogger"
    run_training(
        tmp_path, "logger=none", "trainer.max_steps=300", "trainer.val_every_n_epochs=50",
        f"+logger.a._target_={target}", "+logger.a.name=a", f"+logger.b._target_={target}", "+logger.b.name=b",
    )
    by_logger = {name: [(kind, value) for who, kind, value in RecordingLogger.calls if who == name] for name in "ab"}
    assert by_logger["a"] == by_logger["b"]
    calls = by_logger["a"]
    scalars = [value for kind, value in calls if kind == "scalars"]
    # step 0 (the untrained model), every check, then the end (no test split)
    assert [step for step, _ in scalars] == [0, 50, 100, 150, 200, 250, 300, 300]
    assert scalars[0][1]["train/loss"] > scalars[5][1]["train/loss"]
    # at the start, every 5th check (the 5th is at step 250) and the end; pictures (None) at the start and the end
    assert [value for kind, value in calls if kind == "histograms"] == [0, 250, 300]
    pictures = ["train/confusion_matrix", "train/confusion_matrix_table", "train/decision_boundary"]
    assert [value for kind, value in calls if kind == "visuals"] == [(0, ["run/model"]), (0, pictures), (300, pictures)]
    assert ("graph", (1, 2)) in calls and ("hparams", (1.2, ["train/acc", "train/loss", "train/lr", "train/step_loss"])) in calls
    assert calls[-1] == ("close", None)


def test_the_last_checks_pictures_and_histograms_are_the_ends(tmp_path, monkeypatch):
    """A check at the run's last step leaves its pictures to the end (which adds the test split's): each
    step's pictures are drawn once."""
    from src.training.reporting import Reporter

    drawn, draw = [], Reporter._visuals
    monkeypatch.setattr(Reporter, "_visuals", lambda self, with_test: drawn.append(self.trainer.state.step) or draw(self, with_test))
    RecordingLogger.calls.clear()
    run_training(
        tmp_path, "logger=none", "trainer.max_steps=300", "trainer.val_every_n_epochs=100", f"+logger.a._target_={__name__}.RecordingLogger",
        "+logger.a.name=a", "+logger.a.figures_every_n_checks=1", "+logger.a.histogram_every_n_checks=1",
    )
    assert drawn == [0, 100, 200, 300]
    pictures = ["train/confusion_matrix", "train/confusion_matrix_table", "train/decision_boundary"]
    visuals = [value for _, kind, value in RecordingLogger.calls if kind == "visuals"]
    assert visuals == [(0, ["run/model"]), (0, pictures), (100, pictures), (200, pictures), (300, pictures)]
    assert [value for _, kind, value in RecordingLogger.calls if kind == "histograms"] == [0, 100, 200, 300]


class RecordingCallback(Callback):
    events: list[tuple[str, int]] = []

    def on_fit_start(self, trainer):
        self.events.append(("on_fit_start", trainer.state.step))

    def on_epoch_start(self, trainer):
        self.events.append(("on_epoch_start", trainer.state.step))

    def on_step_end(self, trainer):
        self.events.append(("on_step_end", trainer.state.step))

    def on_epoch_end(self, trainer):
        self.events.append(("on_epoch_end", trainer.state.step))

    def on_check(self, trainer, metrics):
        self.events.append(("on_check", int(metrics["epoch"])))

    def on_fit_end(self, trainer, metrics):
        self.events.append(("on_fit_end", metrics["step"]))

    def on_teardown(self, trainer):
        self.events.append(("on_teardown", trainer.state.step))


class CountSteps(Callback):
    """Overrides one event; the loop calls no other for it."""

    steps = 0

    def on_step_end(self, trainer):
        CountSteps.steps += 1


def test_callbacks_get_the_loop_events_in_order(tmp_path):
    assert EVENTS == ("on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_check", "on_fit_end", "on_teardown")
    RecordingCallback.events.clear()
    CountSteps.steps = 0
    run_training(
        tmp_path, "data=moons", "model=mlp", "optimizer=minibatch", "trainer.max_epochs=2", "trainer.max_steps=null",
        "trainer.val_every_n_epochs=1", "logger=none",
        f"+callbacks.record._target_={__name__}.RecordingCallback", f"+callbacks.count._target_={__name__}.CountSteps",
    )
    steps_per_epoch = 4  # 200 training rows of moons in batches of 64
    expected = [("on_fit_start", 0)]
    for epoch in range(2):
        expected.append(("on_epoch_start", epoch * steps_per_epoch))
        expected += [("on_step_end", epoch * steps_per_epoch + i) for i in range(1, steps_per_epoch + 1)]
        expected += [("on_epoch_end", (epoch + 1) * steps_per_epoch), ("on_check", epoch + 1)]
    assert RecordingCallback.events == expected + [("on_fit_end", 2 * steps_per_epoch), ("on_teardown", 2 * steps_per_epoch)]
    assert CountSteps.steps == 2 * steps_per_epoch


def test_one_check_helper_states_every_rule():
    assert check("k", None, positive_int | null) is None
    assert check("k", ListConfig([4, 8]), nonempty_list_of(positive_int)) == [4, 8]
    for value, rule, message in [
        (0, positive_int | null, "k=0: must be a positive integer or null"),
        (True, positive_int, "k=True: must be a positive integer"),
        (math.nan, number(0, low_open=True), "k=nan: must be a number > 0"),
        (math.inf, number(0, low_open=True), "k=inf: must be a number > 0"),
        (1, number(0, 1, high_open=True), "k=1: must be a number in [0, 1)"),
        ("x", one_of("a", "b"), "k='x': must be one of a, b"),
        ([4, 0], nonempty_list_of(positive_int), "k=[4, 0]: must be a non-empty list of positive integers"),
        (ListConfig([4, 0]), nonempty_list_of(positive_int), "k=[4, 0]: must be a non-empty list of positive integers"),
        ("abc", nonempty_list_of(positive_int), "k='abc': must be a non-empty list of positive integers"),
    ]:
        with pytest.raises(ConfigError) as error:
            check("k", value, rule)
        assert str(error.value) == message


def test_32_bit_precision_uses_the_same_code_path_with_a_disabled_scaler():
    from src.training.device import precision_tools

    autocast, scaler = precision_tools("32", torch.device("cpu"))
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss
    with pytest.raises(ConfigError, match="mixed precision in float16 needs CUDA"):
        precision_tools("16-mixed", torch.device("cpu"))


def test_a_parameters_gradient_accumulator_lives_from_one_pass_to_the_next_and_no_activation_does(tmp_path):
    """A hook on a parameter's AccumulateGrad node fires on every later step only if the node is the one each
    forward pass reuses: freed with a step's graph, a new one (without the hook) would be built each step."""
    from src.training.device import precision_tools
    from src.training.gradients import backward_pass

    task = task_for(tmp_path)
    batch = build_data(make_config(tmp_path).data).splits["train"]
    backward = backward_pass(task.training_step, task, *precision_tools("32", torch.device("cpu")), None)
    backward(batch, 0)
    weight = next(task.parameters())
    fired = []
    weight.view_as(weight).grad_fn.next_functions[0][0].register_hook(lambda *grads: fired.append(True))
    for _ in range(3):
        backward(batch, 0)
    assert fired == [True] * 3
    # What the kept graph holds is spent: the activations its backward needed are gone with the pass.
    activations = []
    task.model.layers[2].register_forward_hook(lambda module, inputs, output: activations.append(weakref.ref(output)))
    backward(batch, 0)
    assert [activation() for activation in activations] == [None]


def test_the_tasks_model_is_its_registered_submodule_and_the_ensemble_in_its_solo_view(tmp_path):
    task = task_for(tmp_path, "trainer.seeds=3")
    assert task.model is task._modules["model"] and [name for name, _ in task.named_children()] == ["model"]
    view = task.solo_view()
    assert type(view.model).__name__ == "Ensemble" and task.model is not view.model
    replacement = nn.Linear(2, 1)
    task.model = replacement
    assert task.model is replacement and set(task.state_dict()) == {"model.weight", "model.bias"}
