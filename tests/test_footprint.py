"""A model, or a training step, too large for the memory is refused in one line before it takes the memory (the kernel would kill it)."""

import io
import math

import pytest
import torch
from torch import nn

import src.build
import src.models.footprint
from src.build import build_training
from src.errors import UserError
from src.models.footprint import available_memory, refuse_what_cannot_fit, saved_bytes
from tests.conftest import make_config, run_training


# 10¹⁴ hidden units on the planar data: 2·10¹⁴ weights in the first layer, 800 TB, more than any address space holds
HUGE = "model.hidden=[100000000000000]"


def test_a_model_of_a_hundred_trillion_hidden_units_is_refused_before_it_is_built(tmp_path):
    with pytest.raises(UserError) as error:
        run_training(tmp_path, HUGE, "logger=none")
    message = str(error.value)
    assert message.startswith("model: its 400,000,000,000,001 parameters need 3200.0 TB for their weights and gradients alone") and "\n" not in message


def tensor_bytes(tensors):
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_model_is_refused_exactly_when_its_members_weights_and_gradients_exceed_each_processs_share(tmp_path, monkeypatch, processes):
    config = make_config(tmp_path, "model=mlp", "model.batch_norm=true", "trainer.seeds=3", "logger=none")
    _, task, _, _ = build_training(config)
    needed = tensor_bytes(task.model.parameters()) * 2 + tensor_bytes(task.model.buffers())  # 3 members' weights, gradients, statistics
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))  # torchrun's processes on this machine share its memory
    monkeypatch.setattr(src.build, "refuse_a_step_that_cannot_fit", lambda *arguments: None)  # the step's check: tested below
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: needed * processes)
    build_training(config)
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: needed * processes - 1)
    with pytest.raises(UserError) as error:
        build_training(config)
    parameters = sum(parameter.numel() for parameter in task.model.parameters())
    assert str(error.value) == (
        f"model: its {parameters:,} parameters (3 seeds, trainer.seeds) need {needed / 1e3:.1f} kB for their weights and gradients "
        f"alone, and {(needed * processes - 1) // processes / 1e3:.1f} kB of memory is available to this process: make the model smaller"
    )


def test_without_gradients_only_the_weights_are_counted_and_a_model_the_meta_device_cannot_build_is_left_to_its_build(monkeypatch):
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: 4 * 6)  # a Linear(2, 2): 6 float32 values
    refuse_what_cannot_fit(lambda: nn.Linear(2, 2), 1, gradients=False)
    with pytest.raises(UserError, match="for their weights alone"):
        refuse_what_cannot_fit(lambda: nn.Linear(2, 3), 1, gradients=False)
    refuse_what_cannot_fit(lambda: nn.Linear(2, int(torch.ones(()).item() * 10**9)), 1, gradients=True)  # reads a value


def test_the_available_memory_is_what_the_kernel_can_hand_out_and_the_free_swap(monkeypatch):
    available = available_memory()
    assert available is None or 0 < available < 2**50
    meminfo = "MemTotal:       24684100 kB\nMemAvailable:       1000 kB\nSwapTotal:  2048 kB\nSwapFree:         24 kB\n"
    monkeypatch.setattr(src.models.footprint, "open", lambda path: io.StringIO(meminfo), raising=False)
    assert available_memory() == 1024 * 1024
    meminfo = "MemTotal:       24684100 kB\n"  # a kernel older than 3.14: no MemAvailable, no check
    assert available_memory() is None


def test_a_model_whose_build_fails_to_allocate_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: None)  # no reading: the real build's own failure
    with pytest.raises(UserError) as error:
        run_training(tmp_path, HUGE, "logger=none")
    assert str(error.value) == "model: out of memory (tried to allocate 800000000000000 bytes)"


def test_what_a_forward_keeps_for_the_backward_pass_is_counted_once_without_the_weights_and_inputs():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    # tanh keeps its output (2 rows × 8 float32), which the last layer keeps too; addmm keeps its weight and its input
    assert saved_bytes(model.train(), torch.ones(2, 4)) == 2 * 8 * 4 and model.training


def row_bytes(model, x):
    return (saved_bytes(model, x[:4]) - saved_bytes(model, x[:2])) / 2


def test_a_whole_batch_step_too_large_for_the_memory_is_refused_naming_the_batch_size_and_one_that_fits(tmp_path, monkeypatch):
    config = make_config(tmp_path, "data=digits", "data.layout=image", "model=cnn", "logger=none")  # gd: the whole split a step
    data, task, _, _ = build_training(config)
    rows = data.size("train")
    per_row = row_bytes(task.model, data.splits["train"][0])
    gradients = sum(parameter.numel() * 4 for parameter in task.model.parameters())
    needed = math.ceil(per_row * rows) + gradients
    monkeypatch.setattr(src.build, "refuse_what_cannot_fit", lambda *arguments: None)  # the weights' check: above
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: needed)
    build_training(config)
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: needed // 3)
    with pytest.raises(UserError) as error:
        build_training(config)
    message = str(error.value)
    assert message.startswith(f"optimizer.batch_size=null (the whole split, {rows:,} rows a forward pass): a training step needs ~") and "\n" not in message
    suggested = int(message.split("set optimizer.batch_size to ")[1].split(" or less")[0].replace(",", ""))
    assert rows // 8 < suggested < rows  # a third of the memory: a power of two under a third of the rows
    build_training(make_config(tmp_path, "data=digits", "data.layout=image", "model=cnn", "logger=none", f"optimizer.batch_size={suggested}"))
    build_training(make_config(tmp_path, "data=digits", "data.layout=image", "model=cnn", "logger=none", "trainer.accumulate_grad_batches=4"))


def test_under_torchrun_a_step_is_judged_by_each_processs_share_of_the_batch_and_of_the_memory(tmp_path, monkeypatch):
    config = make_config(tmp_path, "data=digits", "data.layout=image", "model=cnn", "logger=none", "optimizer.batch_size=501")
    data, task, _, _ = build_training(config)
    per_row = row_bytes(task.model, data.splits["train"][0])
    needed = math.ceil(per_row * 251) + sum(parameter.numel() * 4 for parameter in task.model.parameters())  # 251 of each batch's 501 rows
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # both on this machine
    monkeypatch.setattr(src.build, "refuse_what_cannot_fit", lambda *arguments: None)
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: 2 * needed)
    build_training(config)
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: 2 * needed - 2)
    with pytest.raises(UserError, match=r"^optimizer.batch_size=501 \(251 rows a forward pass\): a training step needs"):
        build_training(config)


def test_a_step_in_bfloat16_is_judged_by_what_it_keeps_in_bfloat16(tmp_path, monkeypatch):
    job = ["data=digits", "data.layout=image", "model=cnn", "model.channels=[64,128]", "logger=none"]
    data, task, _, _ = build_training(make_config(tmp_path, *job))
    x = data.splits["train"][0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert saved_bytes(task.model, x[:2]) > 2 * row_bytes(task.model, x)  # the weights' bfloat16 copies: not a row's
        in_bfloat16 = row_bytes(task.model, x)
    assert in_bfloat16 < 0.6 * row_bytes(task.model, x)
    gradients = sum(parameter.numel() * 4 for parameter in task.model.parameters())
    monkeypatch.setattr(src.build, "refuse_what_cannot_fit", lambda *arguments: None)
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: math.ceil(in_bfloat16 * data.size("train")) + gradients)
    with pytest.raises(UserError, match="^optimizer.batch_size=null"):
        build_training(make_config(tmp_path, *job))
    build_training(make_config(tmp_path, *job, "trainer.precision=bf16-mixed"))


def test_a_containers_memory_limit_leaves_what_it_leaves_its_page_cache_counted_as_free(tmp_path, monkeypatch):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    for folder, files in ((v2, {"memory.max": "2000000\n", "memory.current": "1500000\n", "memory.stat": "anon 1100000\nfile 300000\n"}),
                          (v1, {"memory.limit_in_bytes": "1000000\n", "memory.usage_in_bytes": "400000\n", "memory.stat": "cache 100000\ntotal_cache 100000\n"})):
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    meminfo = "MemAvailable:   20000000 kB\nSwapFree:   0 kB\n"  # 20 GB on the host
    monkeypatch.setattr(src.models.footprint, "open", lambda path: io.StringIO(meminfo), raising=False)
    cgroups = {"v2": (v2, "memory.max", "memory.current", "file"), "v1": (v1, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache")}
    monkeypatch.setattr(src.models.footprint, "CGROUPS", (cgroups["v2"], cgroups["v1"]))
    assert available_memory() == 2_000_000 - 1_500_000 + 300_000
    (v2 / "memory.max").write_text("max\n")  # no limit: the host's
    assert available_memory() == 20_000_000 * 1024
    monkeypatch.setattr(src.models.footprint, "CGROUPS", (cgroups["v1"],))
    assert available_memory() == 1_000_000 - 400_000 + 100_000
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert available_memory() == 20_000_000 * 1024
    monkeypatch.setattr(src.models.footprint, "CGROUPS", ((tmp_path / "none", "memory.max", "memory.current", "file"),))
    assert available_memory() == 20_000_000 * 1024
