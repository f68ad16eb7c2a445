"""CNN, RNN and GAN: shapes, composition with activations and optimizers, learning, GAN metrics."""

import json
import re

import pytest
import torch
import yaml

from src import REPO_ROOT
from src.errors import UserError
from src.models.cnn import CNN
from src.models.gan import GAN
from src.models.rnn import RNN
from src.tasks.adversarial import mode_metrics
from tests.conftest import run_cli, run_training

ACTIVATIONS = sorted(path.stem for path in (REPO_ROOT / "conf" / "activation").glob("*.yaml"))
OPTIMIZERS = sorted(path.stem for path in (REPO_ROOT / "conf" / "optimizer").glob("*.yaml"))
FAMILIES = {
    "cnn": ["model=cnn", "data=digits", "data.layout=image"],
    "rnn": ["model=rnn", "data=digits", "data.layout=sequence"],
    "gan": ["model=gan", "data=ring", "data.n_samples=600"],
}
ONE_STEP = ["trainer.max_steps=1", "logger=none"]


@pytest.mark.parametrize("shape", [(1, 7, 9), (3, 5, 5), (2, 13, 1), (1, 8, 8)])
def test_cnn_infers_its_flat_size_on_odd_images(shape):
    model = CNN(shape, 10, torch.nn.ReLU, channels=[4, 6], hidden=[8])
    assert model(torch.randn(3, *shape)).shape == (3, 10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_shapes_on_odd_sequences(cell, bidirectional):
    model = RNN((13, 3), 5, cell=cell, hidden_size=7, num_layers=2, bidirectional=bidirectional, dropout=0.1)
    assert model(torch.randn(4, 13, 3)).shape == (4, 5)


def test_rnn_reads_the_last_state():
    model = RNN((6, 2), 1, cell="gru", hidden_size=5).eval()
    x = torch.randn(3, 6, 2)
    changed = x.clone()
    changed[:, -1] += 1.0  # the last step matters ...
    assert not torch.allclose(model(x), model(changed))


def test_gan_shapes():
    gan = GAN((1, 8, 8), 1, torch.nn.ReLU, latent_dim=5, output_activation="tanh")
    images = gan.generator(torch.randn(4, 5))
    assert images.shape == (4, 1, 8, 8) and images.abs().max() <= 1
    assert gan.discriminator(images).shape == (4, 1)


def test_the_generator_may_have_its_own_activation(tmp_path):
    gan = GAN((2,), 1, torch.nn.LeakyReLU, generator_activation=torch.nn.ReLU)
    activations = {name: {type(m) for m in part.modules()} & {torch.nn.ReLU, torch.nn.LeakyReLU} for name, part in gan.named_children()}
    assert activations == {"generator": {torch.nn.ReLU}, "discriminator": {torch.nn.LeakyReLU}}
    with pytest.raises(UserError, match=r"^model: TypeError: ReLU.__init__\(\) got an unexpected keyword argument .nope.$"):
        run_training(tmp_path, *FAMILIES["gan"], "model.generator_activation={_target_: torch.nn.ReLU, _partial_: true, nope: 1}", *ONE_STEP)


@pytest.mark.parametrize("family", ["cnn", "gan"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_family_composes_with_every_activation(tmp_path, family, activation):
    metrics = run_training(tmp_path, *FAMILIES[family], f"activation={activation}", *ONE_STEP)
    assert metrics["step"] == 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_family_composes_with_every_optimizer(tmp_path, family, optimizer):
    batch = [] if optimizer in ("gd", "sgd") else ["optimizer.batch_size=32"]
    metrics = run_training(tmp_path, *FAMILIES[family], f"optimizer={optimizer}", *batch, *ONE_STEP)
    assert metrics["step"] == 1


@pytest.mark.parametrize("family", ["cnn", "rnn"])
def test_a_few_steps_reduce_the_loss(tmp_path, family):
    args = [*FAMILIES[family], "optimizer=adam", "optimizer.lr=0.003", "logger=none", "trainer.val_every_n_epochs=1"]
    start = run_training(tmp_path / "start", *args, "trainer.max_steps=1")
    later = run_training(tmp_path / "later", *args, "trainer.max_steps=40")
    assert later["train/loss"] < 0.7 * start["train/loss"]


def test_gan_steps_move_the_generator_towards_the_data(tmp_path):
    args = ["experiment=gan_ring", "logger=none", "data.n_samples=2000", "scheduler=none",
            "optimizer.lr=0.0003", "task.r1_gamma=0", "model.generator_activation=null", "callbacks=none"]
    # the early phase is quicker without R1, at a lower rate and with a leaky generator
    start = run_training(tmp_path / "start", *args, "trainer.max_steps=1")
    later = run_training(tmp_path / "later", *args, "trainer.max_steps=400")
    assert start["val/modes_covered"] <= 2
    assert later["val/modes_covered"] >= 6 and later["val/high_quality"] > start["val/high_quality"]


def test_images_for_a_model_of_vectors_and_vectors_for_a_cnn_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"^model='cnn': needs image data shaped C×H×W; these inputs are shaped \(2,\)"):
        run_training(tmp_path, "model=cnn", *ONE_STEP)
    with pytest.raises(UserError, match=r"^model='rnn': needs sequences shaped T×F or pictures shaped C×H×W \(read row by row\); "
                                        r"these inputs are shaped \(64,\)"):
        run_training(tmp_path, "model=rnn", "data=digits", *ONE_STEP)


def test_the_rnn_reads_a_picture_row_by_row_as_it_reads_the_rows_given_as_a_sequence(tmp_path):
    # Unstandardized, the digits as 1×8×8 pictures and as 8 rows of 8 pixels hold the same numbers.
    args = ["model=rnn", "data=digits", "data.standardize=false", "optimizer=adam", "trainer.max_steps=6", "logger=none"]
    rows = run_training(tmp_path / "rows", *args, "data.layout=sequence")
    pictures = run_training(tmp_path / "pictures", *args, "data.layout=image")
    for name in ("train/loss", "val/loss", "test/loss", "test/acc"):
        assert pictures[name] == pytest.approx(rows[name], rel=1e-6)
    model = RNN((3, 5, 4), 2, hidden_size=6)  # 3 channels: step t reads row t of each channel, 3·4 values
    x = torch.randn(7, 3, 5, 4)
    assert torch.equal(model(x), model(torch.cat([x[:, 0], x[:, 1], x[:, 2]], dim=-1)))


@pytest.mark.parametrize(("data", "steps", "values"), [("mnist", 28, 28), ("cifar10", 32, 96)])
def test_the_rnn_trains_on_published_pictures_a_row_a_step(tmp_path, data, steps, values):
    metrics = run_training(tmp_path, "model=rnn", f"data={data}", "model.hidden_size=16", "trainer.max_steps=3", "logger=none")
    weights = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["model"]
    assert weights["model.rnn.weight_ih_l0"].shape == (4 * 16, values) and metrics["step"] == 3
    seen = []
    model = RNN((1 if data == "mnist" else 3, steps, steps), 10, hidden_size=16)
    model.rnn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    model(torch.zeros(2, 1 if data == "mnist" else 3, steps, steps))
    assert seen == [(2, steps, values)]


RING = torch.tensor([[2 * torch.cos(torch.tensor(2 * torch.pi * k / 8)), 2 * torch.sin(torch.tensor(2 * torch.pi * k / 8))] for k in range(8)])


def test_gan_metrics_all_samples_at_one_mode():
    samples = RING[3].repeat(2500, 1) + 0.01 * torch.randn(2500, 2)
    metrics = mode_metrics(samples, RING, 0.02)
    assert metrics["modes_covered"] == 1 and metrics["high_quality"] == 1.0


def test_gan_metrics_exact_mode_centres():
    metrics = mode_metrics(RING.repeat(300, 1), RING, 0.02)
    assert metrics["modes_covered"] == 8 and metrics["high_quality"] == 1.0


def test_gan_metrics_far_away_points():
    metrics = mode_metrics(torch.full((2500, 2), 10.0), RING, 0.02)
    assert metrics["modes_covered"] == 0 and metrics["high_quality"] == 0.0


def test_gan_metrics_half_good_samples():
    samples = torch.cat([RING[:4].repeat(10, 1), RING[:4].repeat(10, 1) + 0.07])  # 0.07·√2 > 3 std
    metrics = mode_metrics(samples, RING, 0.02)
    assert metrics["modes_covered"] == 4 and metrics["high_quality"] == 0.5


def test_reverse_kl_of_hand_made_samples():
    log8 = torch.log(torch.tensor(8.0))
    assert mode_metrics(RING[3].repeat(100, 1), RING, 0.02)["reverse_kl"] == pytest.approx(float(log8))  # one mode has them all
    assert mode_metrics(RING.repeat(50, 1), RING, 0.02)["reverse_kl"] == pytest.approx(0.0, abs=1e-6)  # each its share
    # Half on mode 0, half on mode 1 (of 8): p = (1/2, 1/2, 0, …) → KL = log(8/2); far-away samples do not count.
    samples = torch.cat([RING[0].repeat(30, 1), RING[1].repeat(30, 1), torch.full((500, 2), 10.0)])
    assert mode_metrics(samples, RING, 0.02)["reverse_kl"] == pytest.approx(float(torch.log(torch.tensor(4.0))))
    # One share of 3/4 and one of 1/4: 3/4·log(8·3/4) + 1/4·log(8/4).
    samples = torch.cat([RING[2].repeat(3, 1), RING[5].repeat(1, 1)])
    expected = 0.75 * torch.log(torch.tensor(6.0)) + 0.25 * torch.log(torch.tensor(2.0))
    assert mode_metrics(samples, RING, 0.02)["reverse_kl"] == pytest.approx(float(expected))
    assert mode_metrics(torch.full((10, 2), 10.0), RING, 0.02)["reverse_kl"] == pytest.approx(float(log8))  # none of quality
    stacked = mode_metrics(torch.stack([RING.repeat(5, 1), RING[:1].repeat(40, 1)]), RING, 0.02)["reverse_kl"]
    assert stacked.shape == (2,) and stacked[0] == pytest.approx(0.0, abs=1e-6) and stacked[1] == pytest.approx(float(log8))


def test_a_packing_discriminator_judges_consecutive_samples_together():
    from src.models.gan import GAN

    plain = GAN((2,), 1, torch.nn.ReLU, discriminator_hidden=[8])
    assert plain.discriminator(torch.zeros(6, 2)).shape == (6, 1)  # pack=1: today's GAN, one verdict per sample
    packed = GAN((2,), 1, torch.nn.ReLU, discriminator_hidden=[8], pack=3)
    samples = torch.randn(7, 2)
    verdicts = packed.discriminator(samples)
    assert verdicts.shape == (2, 1)  # 7 samples: two packs of three, the seventh left out
    judge = packed.discriminator.judge
    assert torch.allclose(verdicts[1], judge(samples[3:6].reshape(1, 6))[0])
    assert torch.allclose(packed.discriminator(samples[:2]), judge(samples[[0, 1, 0]].reshape(1, 6)))  # too few: cycled
    images = GAN((1, 4, 4), 1, torch.nn.ReLU, discriminator_hidden=[8], pack=2)
    assert images.discriminator(torch.randn(3, 5, 1, 4, 4)).shape == (3, 2, 1)  # leading dimensions kept (stacked members)


@pytest.mark.parametrize("pack", [1, 2])
def test_the_r1_penalty_adds_half_gamma_times_the_squared_gradient_on_real_samples(pack):
    """A linear judge's gradient is its weight w for every verdict: the penalty is γ/2·‖w‖² (per pack)."""
    from src.data.spec import DataSpec
    from src.tasks.adversarial import Adversarial

    gan = GAN((2,), 1, torch.nn.ReLU, discriminator_hidden=[8], pack=pack)
    judge = torch.nn.Linear(2 * pack, 1)
    if pack == 1:
        gan.discriminator = judge
    else:
        gan.discriminator.judge = judge
    spec = DataSpec(name="points", target_type="classification", num_classes=1, input_shape=(2,))
    plain, penalized = Adversarial(gan, spec), Adversarial(gan, spec, r1_gamma=3.0)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    difference = penalized._discriminator_loss(real, fake, penalize=True) - plain._discriminator_loss(real, fake)
    assert difference.item() == pytest.approx(1.5 * judge.weight.pow(2).sum().item(), rel=1e-5)
    assert real.grad is None and not real.requires_grad  # the caller's batch is left as it was
    with pytest.raises(UserError, match=r"task.r1_gamma"):
        Adversarial(gan, spec, r1_gamma=-1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under trainer.precision=bf16-mixed on the CPU
        real_score, squared_norms = penalized._r1(real)
        assert penalized.model.discriminator(fake).dtype == torch.bfloat16
    assert real_score.dtype == torch.float32  # in 16 bits ‖w‖² would be off by ~1e-3 (w rounded to 8 bits)
    assert squared_norms.item() == pytest.approx(judge.weight.pow(2).sum().item(), rel=1e-6)


@pytest.mark.slow
def test_one_multirun_gives_the_packing_row_for_each_pack(tmp_path):
    """The README's `-m model.pack=1,2,3,4 experiment=gan_grid` (here with small networks and few steps)."""
    result = run_cli("src.train", "-m", "experiment=gan_grid", "model.pack=1,2,3,4", "model.generator_hidden=[16]",
                     "model.discriminator_hidden=[16]", "task.eval_samples=100", "trainer.max_epochs=null", "trainer.max_steps=4",
                     "logger=none", f"paths.log_dir={tmp_path}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    packs = {}
    for job in tmp_path.rglob("metrics.json"):
        config = yaml.safe_load((job.parent / "config.yaml").read_text())
        packs[config["model"]["pack"]] = json.loads(job.read_text())
    assert sorted(packs) == [1, 2, 3, 4]
    for metrics in packs.values():
        assert {"val/modes_covered", "val/high_quality", "val/reverse_kl"} <= set(metrics) and metrics["step"] == 4


def test_the_loop_has_no_model_specific_branch():
    source = (REPO_ROOT / "src" / "training" / "trainer.py").read_text().lower()
    for word in ("cnn", "rnn", "lstm", "gru", "gan", "conv", "generator", "discriminator", "mlp", "logreg"):
        assert not re.search(rf"\b{word}\b", source), word
    assert not re.search(r"isinstance\([^)]*model|hasattr\(", source)  # no asking what the model is
