"""torch.compile, channels-last, and the CUDA path (tests marked gpu skip without CUDA)."""

import os

import pytest
import torch
from sklearn.datasets import load_digits

from src.errors import ConfigError
from src.evaluate import evaluate
from src.predict import predict
from src.tasks.classification import BinaryClassification
from src.training.callbacks import Callback
from src.training.checkpoint import load_checkpoint
from src.training.device import matmul_precision
from tests.conftest import run_training

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

NUMERICS_SEEN: list[tuple] = []


def numerics() -> tuple:
    """Torch's global numerics: matmul precision, TF32 matmuls allowed, anomaly detection, deterministic
    algorithms (and warn only), cuDNN's benchmark, the cuBLAS workspace setting."""
    return (
        torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32, torch.is_anomaly_enabled(),
        torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


class RecordNumerics(Callback):
    def _record(self, *_) -> None:
        NUMERICS_SEEN.append(numerics())

    on_fit_start = on_check = on_fit_end = on_teardown = _record


@pytest.mark.parametrize(
    "overrides, during",
    [
        ([], ("highest", False, False, False, False, True, None)),
        (["trainer.matmul_precision=high", "trainer.detect_anomaly=true"], ("high", True, True, False, False, True, None)),
        (["trainer.deterministic=true"], ("highest", False, False, True, False, False, ":4096:8")),
        (["trainer.deterministic=warn"], ("highest", False, False, True, True, False, ":4096:8")),
    ],
)
def test_the_runs_numerics_hold_for_the_whole_run_then_are_put_back(tmp_path, monkeypatch, overrides, during):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # as a user's script may have set it
    NUMERICS_SEEN.clear()
    before = numerics()
    run_training(tmp_path, "trainer.max_steps=150", "logger=none", f"+callbacks.numerics._target_={__name__}.RecordNumerics", *overrides)
    assert len(NUMERICS_SEEN) == 5 and set(NUMERICS_SEEN) == {during}  # start, 2 checks, end, teardown
    assert numerics() == before


def test_an_operation_without_a_deterministic_implementation_is_named_in_one_line(tmp_path, monkeypatch):
    def step(task, batch, index):  # what torch raises on CUDA for, e.g., adaptive pooling's backward
        raise RuntimeError("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but you set "
                           "'torch.use_deterministic_algorithms(True)'. You can turn off determinism just for this operation, ...")

    monkeypatch.setattr(BinaryClassification, "training_step", step)
    with pytest.raises(ConfigError) as refusal:
        run_training(tmp_path, "trainer.max_steps=3", "logger=none", "trainer.deterministic=true")
    assert str(refusal.value) == (
        "trainer.deterministic=True: adaptive_avg_pool2d_backward_cuda has no deterministic implementation; "
        "trainer.deterministic=warn runs it with a warning"
    )


@pytest.mark.slow
def test_compiled_model_trains_to_the_same_numbers_and_checkpoints_keep_their_keys(tmp_path):
    args = ["model=mlp", "trainer.max_steps=100", "logger=none", "trainer.device=cpu"]
    eager = run_training(tmp_path / "eager", *args)
    compiled = run_training(tmp_path / "compiled", *args, "trainer.compile=true")
    assert compiled["train/loss"] == pytest.approx(eager["train/loss"], rel=1e-4)
    keys = set(load_checkpoint(tmp_path / "compiled" / "checkpoints" / "last.ckpt")["model"])
    assert keys == set(load_checkpoint(tmp_path / "eager" / "checkpoints" / "last.ckpt")["model"])


def test_channels_last_cnn_matches_the_default_layout(tmp_path):
    args = ["experiment=cnn_digits", "trainer.max_epochs=2", "logger=none", "trainer.device=cpu"]
    default = run_training(tmp_path / "default", *args, "trainer.channels_last=false")
    channels_last = run_training(tmp_path / "cl", *args, "trainer.channels_last=true")
    assert channels_last["val/loss"] == pytest.approx(default["val/loss"], rel=1e-3)


def test_channels_last_with_stacked_seeds_matches_the_default_layout(tmp_path):
    """Stacked members' convolution weights are 5-D, which Module.to(memory_format=...) refuses."""
    args = ["experiment=cnn_digits", "trainer.max_epochs=1", "trainer.seeds=2", "logger=none", "trainer.device=cpu"]
    default = run_training(tmp_path / "default", *args, "trainer.channels_last=false")
    channels_last = run_training(tmp_path / "cl", *args, "trainer.channels_last=true")
    assert channels_last["val/loss"] == pytest.approx(default["val/loss"], rel=1e-3)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_cuda_training_in_each_precision(tmp_path, precision):
    metrics = run_training(
        tmp_path, "data=digits", "model=mlp", "optimizer=adam", "trainer.max_epochs=5", "trainer.max_steps=null",
        "trainer.device=cuda", f"trainer.precision={precision}", "logger=none",
    )
    assert metrics["val/acc"] > 0.9


CONV_OUTPUTS: set[torch.dtype] = set()


class RecordConvOutputs(Callback):
    """The dtypes the first convolution's outputs have in training (checks score in eval mode: not recorded)."""

    def on_fit_start(self, trainer) -> None:
        conv = next(module for module in trainer.task.model.modules() if isinstance(module, torch.nn.Conv2d))
        conv.register_forward_hook(lambda module, inputs, output: CONV_OUTPUTS.add(output.dtype) if module.training else None)


def test_bf16_mixed_on_the_cpu_trains_the_cnn_in_bfloat16_to_the_float32_accuracy(tmp_path):
    args = ["experiment=cnn_digits", "trainer.max_epochs=3", "logger=none", "trainer.device=cpu", f"+callbacks.convs._target_={__name__}.RecordConvOutputs"]
    CONV_OUTPUTS.clear()
    full = run_training(tmp_path / "32", *args)
    assert CONV_OUTPUTS == {torch.float32}
    CONV_OUTPUTS.clear()
    mixed = run_training(tmp_path / "bf16", *args, "trainer.precision=bf16-mixed")
    assert CONV_OUTPUTS == {torch.bfloat16}
    assert mixed["val/acc"] > 0.9 and mixed["val/acc"] == pytest.approx(full["val/acc"], abs=0.03)


@pytest.mark.parametrize(
    "device, capability, setting, rank, noted",
    [("cuda", (9, 0), "highest", "0", True), ("cuda", (8, 0), "highest", "0", True), ("cuda", (7, 5), "highest", "0", False),
     ("cuda", (9, 0), "high", "0", False), ("cuda", (9, 0), "highest", "1", False), ("cpu", None, "highest", "0", False)],
)
def test_a_gpu_with_tf32_tensor_cores_gets_one_line_naming_the_setting_at_full_precision(monkeypatch, capsys, device, capability, setting, rank, noted):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)  # no GPU needed to ask
    monkeypatch.setenv("RANK", rank)
    with matmul_precision(setting, torch.device(device)):
        pass
    note = "note: this GPU multiplies float32 matrices several times faster in TF32: trainer.matmul_precision=high\n"
    assert capsys.readouterr().out == (note if noted else "")


@pytest.mark.gpu
@cuda
def test_cuda_tf32_matmuls_train_as_full_float32_does(tmp_path):
    args = ["data=digits", "model=mlp", "optimizer=adam", "trainer.max_epochs=5", "trainer.max_steps=null", "trainer.device=cuda", "logger=none"]
    full = run_training(tmp_path / "highest", *args)
    tf32 = run_training(tmp_path / "high", *args, "trainer.matmul_precision=high")
    assert tf32["val/acc"] > 0.9 and tf32["val/loss"] == pytest.approx(full["val/loss"], rel=0.05)


@pytest.mark.gpu
@cuda
def test_cuda_runs_with_deterministic_algorithms_end_equal_bit_for_bit(tmp_path):
    args = ["experiment=cnn_digits", "trainer.max_epochs=2", "trainer.device=cuda", "trainer.deterministic=true", "logger=none"]
    first, second = (run_training(tmp_path / name, *args) for name in ("first", "second"))
    weights = [load_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["model"] for name in ("first", "second")]
    assert first["val/loss"] == second["val/loss"]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


@pytest.mark.gpu
@cuda
def test_cuda_auto_device_and_exact_resume(tmp_path):
    args = ["data=moons", "model=mlp", "optimizer=adam", "trainer.max_epochs=6", "trainer.max_steps=null", "logger=none"]
    whole = run_training(tmp_path / "whole", *args)
    run_training(tmp_path / "part", *args, "trainer.max_steps=9")
    resumed = run_training(tmp_path / "rest", *args, f"ckpt_path={tmp_path / 'part' / 'checkpoints' / 'last.ckpt'}")
    assert resumed["val/loss"] == pytest.approx(whole["val/loss"], rel=1e-5)


@pytest.mark.gpu
@cuda
def test_cnn_on_cuda_with_channels_last_and_compile(tmp_path):
    metrics = run_training(
        tmp_path, "experiment=cnn_digits", "trainer.device=cuda", "trainer.compile=true", "trainer.precision=bf16-mixed",
        "logger=none",
    )
    assert metrics["test/acc"] >= 0.97


@pytest.mark.gpu
@cuda
def test_rnn_reads_channels_last_pictures_on_cuda_row_by_row(tmp_path):
    # On CUDA the digits as 1×8×8 pictures are channels-last; the LSTM reads their rows as rnn_digits reads sequences.
    metrics = run_training(tmp_path, "experiment=rnn_digits", "data.layout=image", "trainer.device=cuda", "logger=none")
    assert metrics["test/acc"] >= 0.95


@pytest.mark.gpu
@cuda
def test_evaluate_and_predict_on_cuda_give_the_cpus_numbers(tmp_path):
    run_training(tmp_path / "run", "experiment=cnn_digits", "trainer.max_epochs=2", "logger=none")  # written from the GPU
    checkpoint = str(tmp_path / "run" / "checkpoints" / "best.ckpt")
    on_cpu, on_gpu = evaluate(checkpoint, device="cpu"), evaluate(checkpoint, device="cuda")
    assert on_gpu["test/loss"] == pytest.approx(on_cpu["test/loss"], rel=1e-4) and on_gpu["test/acc"] == pytest.approx(on_cpu["test/acc"], abs=0.003)
    rows = tmp_path / "digits.csv"
    rows.write_text("".join(",".join(str(int(v)) for v in row) + "\n" for row in load_digits().data[:50]))
    for device in ("cpu", "cuda"):
        predict(checkpoint, str(rows), str(tmp_path / f"{device}.csv"), device=device)
    cpu, gpu = ([line.rsplit(",", 2)[1:] for line in (tmp_path / f"{device}.csv").read_text().splitlines()[1:]] for device in ("cpu", "cuda"))
    assert [c for c, _ in gpu] == [c for c, _ in cpu] and [float(p) for _, p in gpu] == pytest.approx([float(p) for _, p in cpu], abs=1e-4)
