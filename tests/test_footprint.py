"""A model too large for the memory is refused in one line before its weights take any (the kernel would kill it)."""

import pytest
import torch
from torch import nn

import src.models.footprint
from src.build import build_training
from src.errors import UserError
from src.models.footprint import available_memory, refuse_what_cannot_fit
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


def test_the_available_memory_is_read_from_the_kernel():
    available = available_memory()
    assert available is None or 0 < available < 2**50


def test_a_model_whose_build_fails_to_allocate_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(src.models.footprint, "available_memory", lambda: None)  # no reading: the real build's own failure
    with pytest.raises(UserError) as error:
        run_training(tmp_path, HUGE, "logger=none")
    assert str(error.value) == "model: out of memory (tried to allocate 800000000000000 bytes)"
