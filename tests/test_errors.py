"""Bad input: one clear line naming the key or file, a non-zero exit, no traceback, nothing damaged."""

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from src import REPO_ROOT
from src.build import not_importable
from src.errors import ConfigError, UserError
from src.torch_settings import check_torch_settings
from tests.conftest import run_cli, run_training

ONE_STEP = ["trainer.max_steps=1", "logger=none"]
CSV_OK = "a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))


def a_list(*args, **settings) -> list:
    """A function as a ``_target_``: only what it returns shows that it builds the wrong kind of object."""
    return list(args)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=0"], r"^optimizer\.lr=0: must be a number in \(0, 1e\+06\]$"),
        (["optimizer.lr=-1"], r"^optimizer\.lr=-1: must be a number in \(0, 1e\+06\]$"),
        (["optimizer.lr=abc"], r"^optimizer\.lr='abc': must be a number in \(0, 1e\+06\]$"),
        (["optimizer=minibatch", "optimizer.batch_size=0"], r"^optimizer\.batch_size=0: must be a positive integer"),
        (["model=mlp", "model.hidden=[]"], r"^model\.hidden=\[\]: must be a non-empty list of positive integers"),
        (["model=mlp", "model.hidden=[4,0]"], r"^model\.hidden=\[4, 0\]: must be a non-empty list"),
        (["model.init=orthogonal"], r"^model\.init='orthogonal': must be one of default, normal, xavier, he$"),
        (["model.init=normal", "model.init_std=-1"], r"^model\.init_std=-1: must be a number ≥ 0$"),
        (["data=ring", "model=gan", "model.generator_hidden=[0]"], r"^model\.generator_hidden=\[0\]: must be a non-empty list of positive"),
        (["data=ring", "model=gan", "model.latent_dim=0"], r"^model\.latent_dim=0: must be an integer in \[1, 4,096\]$"),
        (["data=digits", "data.layout=image", "model=cnn", "model.kernel_size=[3,0]"], r"^model\.kernel_size=\[3, 0\]: must be a positive integer or"),
        (["data=digits", "data.layout=image", "model=cnn", "model.padding=-1"], r"^model\.padding=-1: must be a non-negative integer or one of same, valid$"),
        (["data=digits", "data.layout=image", "model=cnn", "model.pool=0"], r"^model\.pool=0: must be a positive integer$"),
        (["data=sine", "model=rnn", "model.num_layers=0"], r"^model\.num_layers=0: must be an integer in \[1, 64\]$"),
        (["model._target_=builtins.dict"], r"^model\._target_: builds a dict, not a torch\.nn\.Module$"),
        (["model._target_=builtins.dict", "trainer.seeds=2"], r"^model\._target_: builds a dict, not a torch\.nn\.Module$"),
        (["data._target_=builtins.dict"], r"^data\._target_: builds a dict, not a src\.data\.dataset\.Dataset$"),
        (["task._target_=builtins.dict"], r"^task\._target_: builds a dict, not a src\.tasks\.task\.Task$"),
        (["trainer._target_=builtins.dict"], r"^trainer\._target_: builds a dict, not a src\.training\.trainer\.Trainer$"),
        (["callbacks=ema", "callbacks.ema._target_=builtins.dict"], r"^callbacks\.ema\._target_: builds a dict, not a src\.training\.callbacks\.Callback$"),
        (["optimizer._target_=builtins.dict"], r"^optimizer\._target_: builds a dict, not a torch\.optim\.Optimizer$"),
        (["optimizer._target_=torch.nn.Linear"], r"^optimizer\._target_: builds a Linear, not a torch\.optim\.Optimizer$"),
        (["optimizer._target_=tests.test_errors.a_list"], r"^optimizer\._target_: builds a list, not a torch\.optim\.Optimizer$"),
        (["scheduler=step", "scheduler._target_=builtins.list"], r"^scheduler\._target_: builds a list, not a torch\.optim\.lr_scheduler\.LRScheduler$"),
        (["scheduler=step", "scheduler._target_=tests.test_errors.a_list"], r"^scheduler\._target_: builds a list, not a torch\.optim\.lr_scheduler\.LRScheduler$"),
        (["activation._target_=builtins.dict"], r"^activation\._target_: builds a dict, not a torch\.nn\.Module$"),
        (["optimizer._target_=torch.optim.Adamm"], r"^optimizer\._target_='torch\.optim\.Adamm': torch\.optim has no Adamm; did you mean torch\.optim\.Adam\?$"),
        (["model._target_=src.models.mlp.MLPP"], r"^model\._target_='src\.models\.mlp\.MLPP': src\.models\.mlp has no MLPP; did you mean src\.models\.mlp\.MLP\?$"),
        (["callbacks=ema", "callbacks.ema._target_=nosuch.Ema"], r"^callbacks\.ema\._target_='nosuch\.Ema': no module named nosuch$"),
        # It names a checkpoint file: a name too long for one ended the run in OSError (File name too long).
        (["callbacks=ema", f"callbacks.ema.name={'x' * 300}"], r"\.name='x+': must be a name of letters, digits and _ \(at most 64\)$"),
        (["trainer._target_=tests.test_errors.NoSuch"], r"^trainer\._target_='tests\.test_errors\.NoSuch': tests\.test_errors has no NoSuch$"),
        (["activation._target_=tests.test_errors.a_list"], r"^activation\._target_: builds a list, not a torch\.nn\.Module$"),
        (["trainer.max_epochs=-3"], r"^trainer\.max_epochs=-3: must be a positive integer or null$"),
        (["trainer.max_steps=0"], r"^trainer\.max_steps=0: must be a positive integer or null$"),
        (["trainer.precision=16-mixed"], r"^trainer\.precision='16-mixed': mixed precision in float16 needs CUDA; this run is on cpu: use bf16-mixed or 32$"),
        (["trainer.precision=64"], r"^trainer\.precision=64: must be one of 32, bf16-mixed, 16-mixed$"),
        (["trainer.matmul_precision=low"], r"^trainer\.matmul_precision='low': must be one of highest, high, medium$"),
        (["trainer.deterministic=maybe"], r"^trainer\.deterministic='maybe': must be true, false or warn$"),
        (["trainer.sync_batchnorm=1"], r"^trainer\.sync_batchnorm=1: must be true or false$"),
        (["data.val_fraction=0.99", "data.test_fraction=0.9"], r"^data\.val_fraction \+ data\.test_fraction=1\.89: must be below 1$"),
        (["data.val_fraction=1.5"], r"^data\.val_fraction=1\.5: must be a number in \[0, 1\)$"),
        # sklearn's stratified split, in the config's words
        (["data=blobs", "data.n_samples=5"], r"^data\.test_fraction=0\.2: a split that keeps each class's share of data blobs's 5 rows needs two rows of every class; class 2 has one"),
        (["data=blobs", "data.n_samples=12", "data.test_fraction=0.1"], r"^data\.test_fraction=0\.1: leaves 2 of data blobs's 12 rows in its split, but .* each of the 3 classes there$"),
        (["data=digits", "data.val_fraction=0.001"], r"^data\.val_fraction=0\.001: leaves 2 of data digits's 1437 rows in its split"),
        (["data=blobs", "data.n_samples=40", "data.test_fraction=0.95", "data.val_fraction=0"], r"^data\.test_fraction=0\.95: leaves 2 of data blobs's 40 rows in the rest"),
        # torch's optimizers and schedulers: their settings' rules (src/torch_settings.py) and our schedules'
        (["optimizer=adam", "optimizer.betas=[0.9]"], r"^optimizer\.betas=\[0\.9\]: must be two numbers in \[0, 1\)$"),
        (["optimizer=momentum", "optimizer.momentum=1.5"], r"^optimizer\.momentum=1\.5: must be a number in \[0, 1\)$"),
        (["scheduler=cosine", "scheduler.T_max=0"], r"^scheduler\.T_max=0: must be a positive integer or null$"),
        (["scheduler=exponential", "scheduler.gamma=-1"], r"^scheduler\.gamma=-1: must be a number > 0$"),
        (["scheduler=inverse_time", "scheduler.decay=-1"], r"^scheduler\.decay=-1: must be a number ≥ 0$"),
        (["scheduler=warmup_cosine", "scheduler.min_lr_ratio=2"], r"^scheduler\.min_lr_ratio=2: must be a number in \[0, 1\]$"),
        (["ckpt_path=/no/such/last.ckpt"], r"^ckpt_path='/no/such/last\.ckpt': no such checkpoint file$"),
        (["trainer.monitor=val/f1"], r"^trainer\.monitor='val/f1': not a logged metric"),
    ],
)
def test_bad_config_value(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        run_training(tmp_path, *ONE_STEP, *overrides)


def test_a_logger_without_the_logger_methods_is_refused_naming_its_target(tmp_path):
    with pytest.raises(UserError, match=r"^logger\.csv\._target_: builds a dict, not a src\.training\.logger\.Logger$"):
        run_training(tmp_path, "trainer.max_steps=1", "logger.csv._target_=builtins.dict")


def test_the_rules_of_torch_settings_leave_a_users_own_classes_alone():
    rmsprop = {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01, "alpha": 5.0}
    with pytest.raises(ConfigError, match=r"^optimizer\.alpha=5\.0: must be a number in \[0, 1\]$"):
        check_torch_settings("optimizer", OmegaConf.create(rmsprop))
    check_torch_settings("optimizer", OmegaConf.create(rmsprop | {"_target_": "my_lab.optim.Lion"}))  # its alpha, its rules


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is present")
def test_cuda_requested_without_cuda(tmp_path):
    with pytest.raises(UserError, match=r"^trainer\.device='cuda': CUDA is not available"):
        run_training(tmp_path, *ONE_STEP, "trainer.device=cuda")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", "label", r"data\.csv: the file is empty"),
        ("a,b,label\n", "label", r"data\.csv: only a header, no data rows"),
        ("a,b,label\n1,2,0\n3,4\n", "label", r"data\.csv line 3: 2 fields, but the header has 3"),
        ("a,b,label\n1,2,0\n3,x,1\n", "label", r"data\.csv line 3, column 'b': 'x' is not a number"),
        ("a,b,label\n1,2,0\n3,nan,1\n", "label", r"data\.csv line 3, column 'b': 'nan' is not a finite number"),
        ("a,b,label\n1,inf,0\n3,4,1\n", "label", r"data\.csv line 2, column 'b': 'inf' is not a finite number"),
        ("a,b,label\n1,x,0\nnan,2,1\n", "label", r"data\.csv line 2, column 'b': 'x' is not a number"),  # row by row
        ("a,b,label\n1,2,0\n3,4,1\n", "y", r"^data\.target='y': no such column in .*data\.csv \(columns: a, b, label\)"),
        ("a,b,label\n1,2,0\n3,4,0\n", "label", r"column 'label': holds a single class \('0'\)"),
    ],
    ids=["empty", "header-only", "ragged", "non-numeric", "nan", "inf", "first-bad-cell", "no-target", "single-class"],
)
def test_bad_csv(tmp_path, csv_file, text, target, message):
    path = csv_file(text)
    with pytest.raises(UserError, match=message):
        run_training(tmp_path / "run", *ONE_STEP, "data=csv", f"data.path={path}", f"data.target={target}")


def test_a_csv_delimiter_is_one_character_and_a_command_line_writes_a_tab_as_backslash_t(tmp_path, csv_file):
    path = csv_file(CSV_OK.replace(",", "\t"), "data.tsv")
    with pytest.raises(UserError, match=r"^data\.delimiter='ab': must be one character \(\\t: a tab\)$"):
        run_training(tmp_path / "a", *ONE_STEP, "data=csv", f"data.path={path}", "data.target=label", "data.delimiter=ab")
    metrics = run_training(tmp_path / "b", *ONE_STEP, "data=csv", f"data.path={path}", "data.target=label", "data.delimiter=\\t")
    assert metrics["step"] == 1  # read as three columns: the header's a, b and label
    path = csv_file(CSV_OK.replace(",", ";"), "data.csv")  # Hydra reads a semicolon only in quotes
    metrics = run_training(tmp_path / "c", *ONE_STEP, "data=csv", f"data.path={path}", "data.target=label", 'data.delimiter=";"')
    assert metrics["step"] == 1


@pytest.mark.parametrize(
    "override, first_line",
    [
        ("data.delimiter=;", """error: data.delimiter=;: Hydra's override grammar cannot read it (a bracket not closed, or a character it takes only in quotes: 'data.delimiter=";"')"""),
        ("model.hidden=[4,", """error: model.hidden=[4,: Hydra's override grammar cannot read it (a bracket not closed, or a character it takes only in quotes: 'model.hidden="[4,"')"""),
    ],
)
def test_an_override_hydra_cannot_read_gets_one_line_saying_how_to_write_it(tmp_path, override, first_line):
    result = run_cli("src.train", "data=csv", override, f"paths.log_dir={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == first_line and "See https://hydra.cc/docs" in result.stderr  # Hydra's own text below


def test_missing_csv_file(tmp_path):
    with pytest.raises(UserError, match=r"^data\.path='.*nope\.csv': file not found$"):
        run_training(tmp_path, *ONE_STEP, "data=csv", f"data.path={tmp_path / 'nope.csv'}", "data.target=y")


def test_checkpoint_of_another_shape_is_refused_and_left_intact(tmp_path):
    run_training(tmp_path / "small", *ONE_STEP)
    checkpoint = tmp_path / "small" / "checkpoints" / "last.ckpt"
    before = checkpoint.read_bytes()
    with pytest.raises(UserError, match=r"^ckpt_path='.*last\.ckpt': does not match this model \(model\.layers\.1\.weight has shape \(4, 2\) in the checkpoint, \(8, 2\) in this model\)$"):
        run_training(tmp_path / "big", *ONE_STEP, "model.hidden=[8]", f"ckpt_path={checkpoint}")
    assert checkpoint.read_bytes() == before


def test_truncated_checkpoint_names_the_file(tmp_path):
    run_training(tmp_path / "run", *ONE_STEP)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()[:300])
    with pytest.raises(UserError, match=r"broken\.ckpt: not a readable checkpoint \(truncated or corrupt"):
        run_training(tmp_path / "again", *ONE_STEP, f"ckpt_path={broken}")


def test_random_bytes_and_every_truncation_of_a_checkpoint_are_refused_in_one_line(tmp_path):
    import random

    from src.training.checkpoint import load_checkpoint

    run_training(tmp_path / "run", *ONE_STEP)
    whole = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    rng = random.Random(0)
    contents = [rng.randbytes(rng.randrange(1, 4096)) for _ in range(200)]
    contents += [whole[:cut] for cut in range(0, len(whole) - 1, max(1, len(whole) // 300))]
    contents += [b"PK\x03\x04" + rng.randbytes(500), whole[:100] + rng.randbytes(len(whole) - 100)]  # a zip header; a damaged body
    broken = tmp_path / "broken.ckpt"
    for content in contents:
        broken.write_bytes(content)
        with pytest.raises(UserError) as error:
            load_checkpoint(broken)
        assert len(str(error.value).splitlines()) == 1 and str(error.value).startswith(str(broken))
    broken.write_bytes(contents[0])
    result = run_cli("src.train", *ONE_STEP, f"ckpt_path={broken}", f"paths.log_dir={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {broken}: ")


def test_a_run_folder_or_another_file_given_as_checkpoint_gets_one_line_saying_what_it_is(tmp_path):
    from src.training.checkpoint import load_checkpoint

    run_training(tmp_path / "run", *ONE_STEP)
    with pytest.raises(UserError) as error:
        load_checkpoint(tmp_path / "run")
    assert str(error.value) == f"ckpt_path='{tmp_path / 'run'}': a folder, not a checkpoint file; in it: checkpoints/best.ckpt, checkpoints/last.ckpt"
    with pytest.raises(UserError) as error:
        load_checkpoint("")  # `ckpt_path=` typed without a value
    assert str(error.value) == "ckpt_path='': empty; give a checkpoint file (<run>/checkpoints/last.ckpt)"
    table, empty = tmp_path / "new.csv", tmp_path / "empty.ckpt"
    table.write_text("x1,x2\n0.1,0.2\n")
    empty.touch()
    for path, what in ((table, "begins b'x1,x2\\n0.1,0.2\\n'"), (empty, "is empty")):
        with pytest.raises(UserError) as error:
            load_checkpoint(path)
        assert str(error.value) == f"{path}: not a checkpoint file (torch.save writes a zip archive; this file {what})"


def test_a_pickled_object_in_a_checkpoint_is_refused_and_never_run(tmp_path):
    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "payload": Payload()}, evil)
    with pytest.raises(UserError, match=r"evil\.ckpt: refused, it holds more than tensors and plain data"):
        run_training(tmp_path / "run", *ONE_STEP, f"ckpt_path={evil}")
    assert not marker.exists()


CLI_CASES = {
    "lr": (["optimizer.lr=-1"], "error: optimizer.lr=-1: must be a number in (0, 1e+06]"),
    "csv": (["data=csv", "data.path=/no/such.csv", "data.target=y"], "error: data.path='/no/such.csv': file not found"),
    "ckpt": (["ckpt_path=/no/last.ckpt"], "error: ckpt_path='/no/last.ckpt': no such checkpoint file"),
}


def test_cli_prints_one_line_exits_non_zero_without_traceback(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "src.train", *args, f"paths.log_dir={tmp_path}"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, (args, _) in CLI_CASES.items()
    }
    processes["unknown"] = subprocess.Popen(
        [sys.executable, "-m", "src.train", "model=perceptron"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode != 0, name
        assert "Traceback" not in out + err, name
        if name == "unknown":  # Hydra lists the valid options
            assert "Could not find 'model/perceptron'" in err and "logreg" in err and "mlp" in err
        else:
            assert err.strip().splitlines() == [CLI_CASES[name][1]], name


@pytest.mark.parametrize(
    "module, args, first_line",
    [
        ("src.train", ["optimizer.lrr=1"], "error: optimizer.lrr is not a key of optimizer (keys: lr, batch_size); did you mean optimizer.lr?"),
        ("src.train", ["model=mlp", "model.hiden=[3]"], "error: model.hiden is not a key of model (keys: hidden, activation, dropout, batch_norm, init, init_std); did you mean model.hidden?"),
        ("src.train", ["optimizer=adam", "optimizer.betas=[0.5,0.9]", "trainer.max_stepz=3"], "error: trainer.max_stepz is not a key of trainer (keys: "),
        ("src.train", ["activation=relu", "activation.inplace=true"], "error: activation.inplace is not a key of activation (it has none)"),
        ("src.train", ["activation=nosuch"], "error: activation=nosuch: no such option; options: elu, gelu, leaky_relu, relu, sigmoid, silu, tanh"),
        ("src.train", ["data=planar", "experiment=nosuch"], "error: experiment=nosuch: no such option; options: cnn_cifar10, cnn_digits, cnn_fashion_mnist, "),
        ("src.train", ["nosuch.key=1"], "error: nosuch is not a key of the config (keys: name, ckpt_path, init_from, init_member, optimized_metric, data, augment, task, "),
        ("src.evaluate", ["splt=val"], "error: splt is not a key of the config (keys: ckpt_path, split, device, eval_batch_size); did you mean split?"),
    ],
)
def test_unknown_keys_and_options_get_one_readable_line_before_hydras_text(tmp_path, module, args, first_line):
    result = run_cli(module, *args, f"paths.log_dir={tmp_path}" if module == "src.train" else "split=test")
    assert result.returncode == 1  # Hydra's own exit code, and its own text below our line
    lines = result.stderr.splitlines()
    assert lines[0].startswith(first_line) and "Traceback" not in result.stderr
    assert any(line.startswith(("Could not override", "In 'train': Could not find", "In 'evaluate'")) for line in lines[1:])


def test_hydra_full_error_shows_the_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "optimizer.lr=-1", f"paths.log_dir={tmp_path}"],
        cwd=REPO_ROOT, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "optimizer.lr=-1" in result.stderr


# (the run that wrote the checkpoint, the run that resumes from it, what the refusal names)
MISFITS = {
    "data set": (["data=moons"], ["data=circles"], "data set: moons in the checkpoint, circles in this run"),
    "input shape": (["data=digits", "model=mlp"], ["data=digits", "data.layout=image", "model=mlp"], "data input shape: 64 in the checkpoint, 1, 8, 8 in this run"),
    "target type": (["data=sine", "model=mlp"], ["data=sine", "model=mlp", "task=forecast"], "task: src.tasks.auto.follow_the_data in the checkpoint, src.tasks.forecast.Forecast in this run"),
    "model": (["model=logreg"], ["model=mlp", "model.hidden=[4]"], "model: src.models.logreg.LogisticRegression in the checkpoint, src.models.mlp.MLP in this run"),
    "model shape": (["model=mlp", "model.hidden=[4]"], ["model=mlp", "model.hidden=[5]"], "does not match this model (model.layers.1.weight has shape (4, 2) in the checkpoint, (5, 2) in this model)"),
    "activation": (["activation=tanh"], ["activation=relu"], "activation: torch.nn.Tanh in the checkpoint, torch.nn.ReLU in this run"),
    "optimizer": (["optimizer=gd"], ["optimizer=adam"], "optimizer: SGD in the checkpoint, Adam in this run"),
    "optimizer setting": (["optimizer=momentum"], ["optimizer=momentum", "optimizer.momentum=0.5"], "optimizer.momentum: 0.9 in the checkpoint, 0.5 in this run"),
    "learning rate": (["optimizer=adam"], ["optimizer=adam", "optimizer.lr=0.5"], "optimizer.lr: 0.001 in the checkpoint, 0.5 in this run"),
    "scheduler": (["scheduler=none"], ["scheduler=cosine"], "scheduler: none in the checkpoint, CosineAnnealingLR in this run"),
    "scheduler kind": (["scheduler=step"], ["scheduler=exponential"], "scheduler: StepLR in the checkpoint, ExponentialLR in this run"),
    "GAN against a classifier": (["data=ring", "model=gan"], ["data=ring", "model=mlp"], "model: src.models.gan.GAN in the checkpoint, src.models.mlp.MLP in this run"),
}


@pytest.mark.parametrize("case", MISFITS)
def test_a_checkpoint_of_another_kind_of_run_is_refused_before_the_first_step(tmp_path, case):
    written_by, resumed_by, difference = MISFITS[case]
    run_training(tmp_path / "first", *ONE_STEP, *written_by)
    checkpoint = tmp_path / "first" / "checkpoints" / "last.ckpt"
    before = checkpoint.read_bytes()
    with pytest.raises(UserError) as error:
        run_training(tmp_path / "second", *ONE_STEP, *resumed_by, f"ckpt_path={checkpoint}")
    message = str(error.value)
    assert message.startswith(f"ckpt_path={str(checkpoint)!r}: ") and difference in message and len(message.splitlines()) == 1
    assert checkpoint.read_bytes() == before and not (tmp_path / "second" / "checkpoints").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["activation=leaky_relu", "activation.negative_slope=abc"], "activation.negative_slope='abc': must be a number"),
        (["activation=elu", "activation.alpha=nan"], "activation.alpha=nan: must be a number"),
        (["activation=relu", "+activation.inplace=0.5"], "activation.inplace=0.5: must be true or false"),
        (["scheduler=step", "+scheduler.last_epoch=abc"], "scheduler.last_epoch='abc': must be a number"),
        (["optimizer=adam", "optimizer.betas=[1.5,0.9]"], "optimizer.betas=[1.5, 0.9]: must be two numbers in [0, 1)"),
        (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size=0: must be a positive integer"),
        (["scheduler=step", "scheduler.gamma=nan"], "scheduler.gamma=nan: must be a number > 0"),
        (["scheduler=step", "scheduler.step_size=null"], "scheduler.step_size=None: must be a positive integer"),
        (["scheduler=cosine", "scheduler.eta_min=nan"], "scheduler.eta_min=nan: must be a number ≥ 0"),
        (["scheduler=plateau", "+scheduler.cooldown=nan"], "scheduler.cooldown=nan: must be a number"),
        (["data=digits", "data.layout=sequence", "model=rnn", "model.bidirectional=0"], "model RNN does not fit data digits (inputs of shape (8, 8)): TypeError: lstm() received an invalid combination of arguments"),
        (["data=grid", "model=gan", "data.std=1e39"], "data.std=1e+39: must be a number in [0, 1e+06]"),
        (["optimizer=adam", "optimizer.lr=3e37"], "optimizer.lr=3e+37: must be a number in (0, 1e+06]"),
        (["logger=tensorboard", "logger.tensorboard.histogram_every_n_checks=abc"], "logger.tensorboard.histogram_every_n_checks='abc': must be a non-negative integer or null"),
    ],
)
def test_settings_torch_checks_late_or_never_are_refused_before_training(tmp_path, overrides, message):
    """Found by fuzzing every key: these reached torch as a TypeError at the first step, or trained on NaN."""
    with pytest.raises(UserError) as error:
        run_training(tmp_path, *ONE_STEP, *overrides)
    assert str(error.value).startswith(message) and len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+task.foo=1"], "task: TypeError: follow_the_data() got an unexpected keyword argument 'foo'"),
        (["data=ring", "model=gan", "+task.foo=1"], "task: TypeError: Adversarial.__init__() got an unexpected keyword argument 'foo'"),
        (["+trainer.foo=1"], "trainer: TypeError: Trainer.__init__() got an unexpected keyword argument 'foo'"),
        (["+optimizer.foo=1"], "optimizer: TypeError: SGD.__init__() got an unexpected keyword argument 'foo'"),
        (["+model.foo=1", "trainer.seeds=2"], "model: TypeError: MLP.__init__() got an unexpected keyword argument 'foo'"),
        (["+model.foo=1"], "model: TypeError: MLP.__init__() got an unexpected keyword argument 'foo'"),
    ],
)
def test_a_key_added_with_plus_that_its_group_does_not_take_gets_one_line(tmp_path, overrides, message):
    """``+group.key=value`` passes Hydra's own key check; the group's target refuses it (the task's did with a traceback)."""
    with pytest.raises(UserError) as error:
        run_training(tmp_path, *ONE_STEP, *overrides)
    assert str(error.value) == message


def test_a_scheduler_of_torch_with_a_list_setting_is_accepted(tmp_path):
    metrics = run_training(
        tmp_path, "logger=none", "trainer.max_steps=5", "scheduler=step", "scheduler._target_=torch.optim.lr_scheduler.MultiStepLR",
        "~scheduler.step_size", "+scheduler.milestones=[2,4]",
    )
    assert metrics["step"] == 5 and metrics["train/lr"] == pytest.approx(1.2 * 0.5 * 0.5)


def test_a_target_that_names_nothing_says_which_part_is_missing_or_why_its_module_fails(tmp_path, monkeypatch):
    (tmp_path / "needs_a_package.py").write_text("import nosuchdependency\n")
    (tmp_path / "fails_as_it_imports.py").write_text("raise RuntimeError('no driver here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not_importable("needs_a_package.Model") == "importing needs_a_package fails: ModuleNotFoundError: No module named 'nosuchdependency'"
    assert not_importable("fails_as_it_imports.Model") == "importing fails_as_it_imports fails: RuntimeError: no driver here"
    assert not_importable("torch.nn.Tanh.forwardd") == "torch.nn.Tanh has no forwardd; did you mean torch.nn.Tanh.forward?"
    assert not_importable("src.models.nosuch.Model") == "src.models has no nosuch"
