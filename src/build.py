"""Turn the composed config into objects: data, task (with its model), optimizer, scheduler, loggers, callbacks."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import re
from typing import Any, Callable

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LRScheduler

from src.data.datamodule import DataModule
from src.data.dataset import Dataset
from src.data.spec import DataSpec
from src.errors import ConfigError, Rule, UserError, boolean, built_as, in_one_line, check, integer, null, number, one_of, positive_int, setting, wrong_kind
from src.models.footprint import refuse_a_step_that_cannot_fit, refuse_what_cannot_fit
from src.models.members import member_state, stack
from src.training import distributed
from src.training.checkpoint import load_checkpoint, load_weights, state_mismatch
from src.training.device import allocation_failure, precision_tools, resolve_device
from src.training.gradients import accumulated_sizes
from src.tasks.task import OptimizerFactory, Task
from src.torch_settings import check_torch_settings
from src.training.schedules import INTERVALS, build_scheduler
from src.training.seeds import member_seeds, seed_everything

SPLIT_KEYS = ("val_fraction", "test_fraction", "standardize", "split_seed", "split_shuffle", "limit_train_rows", "on_device")


def build(group: str, config: DictConfig | dict, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with a user's mistake surfacing as one line instead of a wrapped traceback."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        unknown = re.match(r"Error locating target '([^']+)'", str(error))
        if unknown:
            key = re.search(r"full_key: (\S+)", str(error))
            raise ConfigError(f"{key.group(1) if key else group}._target_", unknown.group(1), not_importable(unknown.group(1))) from None
        raise UserError(" ".join(str(error).split())) from None


def not_importable(path: str) -> str:
    """Why ``path`` (``package.module.Name``) names nothing: the first part that is not there, and a close name."""
    parts, owner = path.split("."), None
    for depth, part in enumerate(parts):
        if owner is not None and hasattr(owner, part):
            owner = getattr(owner, part)
            continue
        module = ".".join(parts[: depth + 1])
        if owner is None or inspect.ismodule(owner):  # the part may be a module not imported yet
            try:
                owner = importlib.import_module(module)
                continue
            except Exception as error:  # noqa: BLE001 - a module that is there but fails as it imports: its own words
                if not (isinstance(error, ModuleNotFoundError) and error.name == module):
                    return f"importing {module} fails: {in_one_line(error)}"
        if owner is None:
            return f"no module named {part}"
        where = ".".join(parts[:depth])
        close = difflib.get_close_matches(part, [name for name in dir(owner) if not name.startswith("_")], n=1)
        return f"{where} has no {part}" + (f"; did you mean {where}.{close[0]}?" if close else "")
    return "cannot be imported"


def building(key: str, factory: Callable, kind: type) -> Callable:
    """``factory`` (a ``_partial_: true`` target), unless it would build a class other than a ``kind``: refused
    before it is called, which would fail with the wrong class's own words (``dict(params, lr=0.1)``)."""
    target = factory.func if isinstance(factory, functools.partial) else None
    if isinstance(target, type) and not issubclass(target, kind):
        raise wrong_kind(key, target, kind)
    return factory


def build_data(config: DictConfig, augment: DictConfig | None = None) -> DataModule:
    source = {key: value for key, value in config.items() if key not in SPLIT_KEYS}
    split = {key: config[key] for key in SPLIT_KEYS if key in config}
    data = DataModule(built_as("data._target_", build("data", source), Dataset), **split)
    if augment is not None:
        if not isinstance(augment, DictConfig) or "_target_" not in augment:
            raise ConfigError("augment", augment, "must be an option of the augment group (augment=none for none)")
        if len(data.spec.input_shape) != 3:
            raise ConfigError("augment", augment.get("_target_"), f"needs pictures (C×H×W); {data.name} is shaped {data.spec.input_shape}")
        data.augment = build("augment", augment)
    return data


def build_task(config: DictConfig, data: DataSpec, training: bool = False) -> Task:
    """The task group's choice (``conf/task/``), given a factory for the model at the output size it asks for.

    With ``trainer.seeds`` > 1 the model is K members stacked into one (``src/models/members.py``),
    each drawn from its own seed exactly as a run of that seed alone draws it. For ``training``, a model
    too large for the CPU's memory is refused before it is built (``src/models/footprint.py``).
    """
    seeds = member_seeds(config.trainer.seed, config.trainer.get("seeds", 1))

    def make_model(output_size: int) -> torch.nn.Module:
        make = build_partial("model", config.model, torch.nn.Module)  # Hydra's instantiate once, not once per member
        if training:
            refuse_what_cannot_fit(lambda: make(input_shape=data.input_shape, output_size=output_size), len(seeds), _trains_on_cpu(config))
        if len(seeds) == 1:
            return make(input_shape=data.input_shape, output_size=output_size)
        members, random_states = [], []
        for seed in seeds:
            seed_everything(seed)
            members.append(make(input_shape=data.input_shape, output_size=output_size))
            random_states.append(torch.get_rng_state())  # where a run of this seed alone goes on drawing from
        model = stack(members)
        model.members, model.seeds, model.member_random_states = len(seeds), seeds, random_states
        return model

    return build_partial("task", config.task, Task)(model=make_model, spec=data)


def build_partial(group: str, config: DictConfig, kind: type) -> Callable:
    """``group``'s target with its settings, waiting for the run's own arguments; it must build a ``kind``. A call
    its target refuses (a key it does not take, added with ``+``) ends in one line naming the group.

    Cheaper than passing those arguments to ``build``: Hydra merges them into a copy of the config first
    (~2.5 ms for the trainer's)."""
    return _refusing_in_one_line(group, build(group, config, _partial_=True), kind)


def build_training(config: DictConfig) -> tuple[DataModule, Task, OptimizerFactory, int | None]:
    """What a run of ``trainer.seed`` starts from, drawn in its order: the data, the task with its model (its
    weights those of ``init_from``'s checkpoint, when given), the optimizer factory and the batch size."""
    seed_everything(config.trainer.seed)
    data = build_data(config.data, config.get("augment"))
    if config.get("activation") is not None:
        check_activation(config.activation)
    task = build_task(config, data.spec, training=True)
    # A resume (an interrupted fine-tuning run resumed with its own overrides, as it prints them) takes its
    # weights from its own checkpoint instead.
    if config.get("init_member") is not None and config.get("init_from") is None:
        raise ConfigError("init_member", config.init_member, "chooses the seed of init_from's checkpoint to start from, but init_from is not set")
    if config.get("init_from") is not None and config.get("ckpt_path") is None:
        start_from_weights(task, config.init_from, config.get("init_member"))
    make_optimizer, batch_size = build_optimizer(config.optimizer)
    if _trains_on_cpu(config):
        _refuse_a_step_that_cannot_fit(task, data, batch_size, config.trainer)
    return data, task, make_optimizer, batch_size


def _trains_on_cpu(config: DictConfig) -> bool:
    device = config.trainer.get("device", "auto")
    return device in ("auto", "cpu") and resolve_device(device).type == "cpu"


def _refuse_a_step_that_cannot_fit(task: Task, data: DataModule, batch_size: int | None, trainer: DictConfig) -> None:
    """``footprint.refuse_a_step_that_cannot_fit`` for a forward pass of this run's steps, in its precision."""
    split, accumulate, precision = data.size("train"), trainer.get("accumulate_grad_batches", 1), str(trainer.get("precision", "32"))
    if split < 4 or precision not in ("32", "bf16-mixed"):  # too few rows to matter; another precision is the trainer's to refuse
        return
    batch, part = accumulated_sizes(batch_size, accumulate if isinstance(accumulate, int) and accumulate >= 1 else 1, split)
    rows = min(part or batch or split, split)  # the rows of one forward pass, as the trainer splits them
    processes = distributed.world()[1]
    x, _ = next(data.batches("train", None, members=task.members))
    two_rows, four_rows = (x[:, :n] if task.members > 1 else x[:n] for n in (2, 4))
    autocast, _ = precision_tools(precision, torch.device("cpu"))
    refuse_a_step_that_cannot_fit(task.model, two_rows, four_rows, autocast, -(-rows // processes), processes, batch_size)


def start_from_weights(task: Task, init_from: Any, member: Any = None) -> None:
    """A new run from a checkpoint's model weights (fine-tuning, a warm start): the optimizer, the schedule and the
    step count start afresh, and the data may be another with the same shapes. One model's weights (or one
    ``member`` of a run of several seeds) start every member of a run of several seeds."""
    if not isinstance(init_from, str):
        raise ConfigError("init_from", init_from, "must be a checkpoint file (<run>/checkpoints/best.ckpt)")
    checkpoint = load_checkpoint(init_from, "init_from")
    seeds = _checkpoint_seeds(checkpoint)
    if member is not None:
        weights = member_weights(checkpoint["model"], seeds, member, "init_member")
    elif len(seeds) > 1 and len(seeds) != task.members:
        raise UserError(
            f"{setting('init_from', init_from)}: holds the models of {len(seeds)} seeds ({', '.join(map(str, seeds))}) and this run "
            f"trains {task.members}: start from one of them with init_member=<seed>"
        )
    else:
        weights = checkpoint["model"]
    if task.members > 1 and not state_mismatch({name: tensor[0] for name, tensor in task.state_dict().items()}, weights):
        weights = {name: tensor.expand(task.members, *tensor.shape).clone() for name, tensor in weights.items()}
    load_weights(task, weights, f"{setting('init_from', init_from)}: does not match this model")


def _checkpoint_seeds(checkpoint: dict[str, Any]) -> list[int]:
    """The seeds of the run that wrote ``checkpoint``; one (a placeholder) when it does not say."""
    trainer = checkpoint.get("config", {}).get("trainer", {})
    return member_seeds(trainer.get("seed", 0), trainer.get("seeds", 1))


def member_weights(weights: dict[str, Any], seeds: list[int], member: Any, key: str) -> dict[str, Any]:
    """The weights of seed ``member`` of a run of ``seeds`` (a run of one seed: its weights as they are)."""
    check(key, member, integer)
    if member not in seeds:
        raise ConfigError(key, member, f"not a seed of this run; its seeds: {', '.join(map(str, seeds))}")
    return member_state(weights, seeds.index(member)) if len(seeds) > 1 else weights


def build_all(group: str, config: DictConfig | None, interface: type, **kwargs: Any) -> list[Any]:
    """A group that may hold several objects (loggers, callbacks): the ``_target_`` at its top, or each entry's.
    An object with none of the methods of ``interface`` (``Logger``, ``Callback``) is a wrong ``_target_``.

    An option without one (``logger=none``) builds nothing, even when an experiment tunes its keys.
    """
    if not config:
        return []
    entries = {group: config} if "_target_" in config else {
        f"{group}.{name}": entry for name, entry in config.items() if isinstance(entry, DictConfig) and "_target_" in entry
    }
    methods = [name for name, value in vars(interface).items() if callable(value) and not name.startswith("_")]

    def implements(built: Any) -> bool:
        return any(callable(getattr(built, method, None)) for method in methods)

    return [built_as(f"{key}._target_", build(key, entry, **kwargs), interface, implements) for key, entry in entries.items()]


def build_optimizer(config: DictConfig) -> tuple[OptimizerFactory, int | None]:
    """The optimizer factory (it gets the parameters later) and the batch size (None: whole batch)."""
    check("optimizer.lr", config.get("lr"), number(0, 1e6, low_open=True))  # beyond, a step overflows float32
    batch_size = check("optimizer.batch_size", config.get("batch_size"), positive_int | Rule(lambda v: v is None, "null (the whole data set)"))
    check_torch_settings("optimizer", config)
    factory = build("optimizer", {key: value for key, value in config.items() if key != "batch_size"})
    return _refusing_in_one_line("optimizer", factory, torch.optim.Optimizer), batch_size


def _refusing_in_one_line(group: str, factory: Callable, kind: type) -> Callable:
    """A factory that must build a ``kind`` (a class target is judged now, a function's by what it returns),
    whose own checks (torch's ``Invalid beta parameter``, ...) end in a UserError naming the group."""
    building(f"{group}._target_", factory, kind)

    def make(*args: Any, **kwargs: Any) -> Any:
        try:
            built = factory(*args, **kwargs)
        except (TypeError, ValueError, IndexError, KeyError, RuntimeError) as error:
            raise _one_line(group, error) from None
        return built_as(f"{group}._target_", built, kind)

    return make


def _one_line(group: str, error: Exception) -> UserError:
    return UserError(f"{group}: {allocation_failure(error) or in_one_line(error)}")


def check_activation(config: DictConfig) -> None:
    """The activation group's options are torch modules, tried once on a small tensor."""

    def attempt() -> None:
        _refusing_in_one_line("activation", build("activation", config), torch.nn.Module)()(torch.linspace(-2, 2, 5))

    _try_out("activation", config, number() | boolean | null, attempt)


def _try_out(group: str, config: DictConfig, rule: Rule, attempt: Callable[[], Any]) -> None:
    """For a group whose options are torch's classes, whose own checks come late (at the first step) or
    not at all (a NaN setting): each setting must pass ``rule`` (a boolean or a number where its parameter
    defaults to one), and ``attempt`` must not raise."""
    typed = _rules_of_defaults(config.get("_target_"))
    for key, value in config.items():
        if not str(key).startswith("_"):
            check(f"{group}.{key}", value, typed.get(key, rule))
    try:
        attempt()
    except (TypeError, ValueError, RuntimeError, ArithmeticError) as error:
        raise _one_line(group, error) from None


def _rules_of_defaults(target: Any) -> dict[str, Rule]:
    """``boolean`` or a finite ``number()`` for each parameter of ``target`` whose default is one."""
    try:
        parameters = inspect.signature(get_object(str(target))).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):  # building the target says what is wrong with it
        return {}
    return {p.name: boolean if isinstance(p.default, bool) else number() for p in parameters if isinstance(p.default, (bool, int, float))}


def build_scheduler_factory(config: DictConfig | None) -> Callable | None:
    if config is None:
        return None
    if not isinstance(config, DictConfig) or "_target_" not in config:
        raise ConfigError("scheduler", config, "must be an option of the scheduler group (scheduler=none for none)")
    check("scheduler.interval", config.get("interval", "epoch"), one_of(*INTERVALS))
    check_torch_settings("scheduler", config)
    factory = building("scheduler._target_", build("scheduler", config), LRScheduler)
    # Any type torch's schedulers take (milestones lists, mode strings), but no NaN or infinity.
    finite = Rule(lambda value: not isinstance(value, float) or math.isfinite(value), "finite")
    _try_out("scheduler", config, finite, lambda: _two_steps_of(factory))
    return factory


def _two_steps_of(make_scheduler: Callable) -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    # A planned span that a real pct_start cannot cut into an empty OneCycle phase (at 10 steps, 0.1 did).
    scheduler = build_scheduler(make_scheduler, optimizer, 1009, 1009)
    for _ in range(2):
        optimizer.step()
        scheduler.step(1.0) if scheduler.interval == "check" else scheduler.step()


def build_from_checkpoint(path: str, member: int | None = None) -> tuple[Task, DataSpec, DictConfig]:
    """The trained task, rebuilt from the config and data description its checkpoint holds.

    A run of several seeds gives its stacked members (``task.solo_view()`` is their ensemble), or
    with ``member=<seed>`` that seed's model alone.
    """
    checkpoint, where = load_checkpoint(path), setting("ckpt_path", path)
    if "config" not in checkpoint or "data" not in checkpoint:
        raise UserError(f"{where}: holds no config or data description to rebuild the model from")
    config = OmegaConf.create(checkpoint["config"])
    if not isinstance(config.get("task"), DictConfig):
        raise UserError(f"{where}: written by an earlier version (its task is a name, not a config); retrain it")
    spec = DataSpec.from_state(checkpoint["data"])
    weights = checkpoint["model"]
    if member is not None:
        weights = member_weights(weights, _checkpoint_seeds(checkpoint), member, "member")
        config.trainer.seeds, config.trainer.seed = 1, member
    task = build_task(config, spec)
    load_weights(task, weights, f"{where}: does not match the model its config describes")
    return task.eval(), spec, config


def plain_config(config: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node, for checkpoints and the HParams tab."""
    return {key: value for key, value in OmegaConf.to_container(config, resolve=True).items() if key != "hydra"}
