"""Every option of every config group composes, builds and trains a step."""

import json
import os
import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from src import REPO_ROOT
from tests.conftest import DATA_FILES, make_config, run_training

GROUPS = ["data", "model", "activation", "optimizer", "scheduler", "trainer", "logger", "experiment", "debug"]
ONE_STEP = ["trainer.max_steps=1", "trainer.max_epochs=null"]


def options(group):
    return sorted(path.stem for path in (REPO_ROOT / "conf" / group).glob("*.yaml"))


# Models that need a certain shape of input are tried on data of that shape.
FITTING_DATA = {
    "cnn": ["data=digits", "data.layout=image"],
    "rnn": ["data=digits", "data.layout=sequence"],
    "gan": ["data=ring", "data.n_samples=500"],
}

CASES = [(group, option) for group in GROUPS for option in options(group)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_trains_one_step(tmp_path, csv_file, group, option):
    overrides = [f"{group}={option}", *(FITTING_DATA.get(option, []) if group == "model" else [])]
    if (group, option) == ("data", "csv"):
        rows = "\n".join(f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}" for i in range(40))
        path = csv_file("a,b,label\n" + rows + "\n")
        overrides += [f"data.path={path}", "data.target=label"]
    if group == "data":
        overrides += DATA_FILES.get(option, [])
    if group in ("experiment", "debug"):
        overrides += ["trainer.max_steps=1", "trainer.max_epochs=1"]
    else:
        overrides += ONE_STEP
    if group != "logger":
        overrides.append("logger=none")
    metrics = run_training(tmp_path / "run", *overrides)
    assert metrics["step"] == 1
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["step"] == 1 and any(name.startswith("train/step_") for name in saved)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_group_options_reach_the_right_components(tmp_path):
    config = make_config(tmp_path, "model=mlp", "optimizer=minibatch", "activation=leaky_relu", "model.hidden=[8,3]")
    assert config.optimizer.batch_size == 64
    assert config.model.activation.negative_slope == 0.001
    assert list(config.model.hidden) == [8, 3]


def test_default_job_is_the_notes_two_layer_network(tmp_path):
    config = make_config(tmp_path)
    assert config.data._target_.endswith("planar_flower") and config.data.val_fraction == 0
    assert list(config.model.hidden) == [4] and config.model.activation._target_ == "torch.nn.Tanh"
    assert config.model.init == "normal" and config.model.init_std == 0.01
    assert config.optimizer._target_ == "torch.optim.SGD" and config.optimizer.lr == 1.2
    assert config.optimizer.batch_size is None and config.trainer.max_steps == 10000


def test_config_text_is_omegaconfs_own(tmp_path):
    """config.yaml and TensorBoard's config text come from libyaml's emitter: the same text OmegaConf writes."""
    from omegaconf import OmegaConf

    from src.build import plain_config
    from src.config_text import config_yaml

    for experiment in options("experiment"):
        resolved = plain_config(make_config(tmp_path, f"experiment={experiment}"))
        assert config_yaml(resolved) == OmegaConf.to_yaml(resolved), experiment
    # Strings that read as other types keep their quotes; text in other scripts, blocks and empty values as they are.
    tricky = {"a": ["1e5", "nan", "inf", "yes", "off", "null", "~", "1_000", "0x1F", "3", "-2.5", "", " 1 "],
              "b": {"name": "Ünïcode ✓", "lines": "one\ntwo\n", "n": None, "t": True, "f": 1e-3, "big": 10**20, "nested": [[1, 2], {}]}}
    assert config_yaml(tricky) == OmegaConf.to_yaml(tricky)
    assert OmegaConf.to_container(OmegaConf.create(config_yaml(tricky))) == tricky  # and OmegaConf reads it back unchanged


def test_a_config_is_emitted_once_and_its_text_follows_each_change_of_value_type_or_order(monkeypatch):
    import yaml
    from omegaconf import OmegaConf

    from src import config_text

    emitted, dump = [], yaml.dump
    monkeypatch.setattr(yaml, "dump", lambda *args, **kwargs: emitted.append(1) or dump(*args, **kwargs))
    config = {"trainer": {"max_steps": 100}, "name": "train"}
    assert config_text.config_yaml(config) == config_text.config_yaml(dict(config)) and len(emitted) == 1  # config.yaml, then TensorBoard's
    # 1, True and 1.0 are equal in Python, not in yaml; key order shows in the text.
    for changed in ({"a": 1}, {"a": True}, {"a": 1.0}, {"a": "1"}, {"a": 1}, {"a": 1, "b": 2}, {"b": 2, "a": 1}):
        assert config_text.config_yaml(changed) == OmegaConf.to_yaml(changed)


def readme_commands() -> list[tuple[str, list[str]]]:
    """Each `python -m src.train|src.lr_find ...` in the README's code blocks and inline code, as the shell
    would pass its arguments (the lines with <placeholders> left out)."""
    text = (REPO_ROOT / "README.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    lines += re.findall(r"`((?:\.venv/bin/)?python -m src\.\w+ [^`]*)`", text)
    commands = []
    for line in lines:
        found = re.search(r"python -m src\.(train|lr_find)\b(.*)", line.split(" #")[0])
        if found and "<" not in found.group(2):
            commands.append((found.group(1), [arg for arg in shlex.split(os.path.expandvars(found.group(2))) if arg != "-m"]))
    return commands


# All but the README's guide to adding one's own model, data and task: those files are the reader's to write.
README_COMMANDS = [(entry, args) for entry, args in readme_commands() if "model=my_model" not in args]


@pytest.mark.parametrize(("entry", "args"), README_COMMANDS, ids=[" ".join([entry, *args]) for entry, args in README_COMMANDS])
def test_every_command_in_the_readme_composes(tmp_path, entry, args):
    """Hydra reads its overrides, and each names an option or key that exists (a sweep by its first value)."""
    overrides = []
    for override in OverridesParser.create().parse_overrides(args):
        first = next(iter(override.sweep_string_iterator())) if override.is_sweep_override() else None
        overrides.append(override.input_line if first is None else f"{override.get_key_element()}={first}")
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        compose(entry, overrides=overrides, return_hydra_config=True)
