"""User mistakes become one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import math
import os
import sys
from pathlib import PurePath
from typing import Any, Callable, Sequence, TypeVar

from src.run_log import log

T = TypeVar("T")

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: a config value, a data file, a checkpoint."""


def in_one_line(error: Exception) -> str:
    """An exception as ``TypeName: its message``, its lines joined: for errors of libraries that span several."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def setting(key: str, value: Any) -> str:
    """``key=value`` as an error line begins, the value quoted when it is text (a path as its text)."""
    shown = str(value) if isinstance(value, PurePath) else value
    return f"{key}={shown!r}"


class ConfigError(UserError):
    """A config key holds a value that is not allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{setting(key, value)}: {allowed}")


def report_user_errors(fn: Callable[[], T]) -> T:
    """Run ``fn``; a UserError prints one line and exits (HYDRA_FULL_ERROR=1 shows the traceback)."""
    try:
        return fn()
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        from src.training import distributed  # here: it imports this module

        line = f"error: {error}"
        if not isinstance(error, ConfigError) or distributed.is_main_process():  # torchrun's ranks share one config: told once
            log.error(line)
        distributed.tell_torchrun(line)
        sys.exit(EXIT_USER_ERROR)


class Rule:
    """What a config value may be, in words: rules combine with ``|`` (``positive_int | null``)."""

    def __init__(self, accepts: Callable[[Any], bool], what: str, plural: str | None = None) -> None:
        self.accepts, self.what = accepts, what
        self.plural = plural or f"{what.removeprefix('a ').removeprefix('an ')}s"  # for lists of them

    def __or__(self, other: "Rule") -> "Rule":
        return Rule(lambda value: self.accepts(value) or other.accepts(value), f"{self.what} or {other.what}")


def check(key: str, value: T, rule: Rule) -> T:
    """``value`` if ``rule`` accepts it; else a ConfigError naming ``key``, the value and what is allowed."""
    if not rule.accepts(value):
        raise ConfigError(key, value, f"must be {rule.what}")
    return value


def check_arguments(prefix: str, values: dict[str, Any], rules: dict[str, Rule]) -> None:
    """Check each argument named in ``rules``; errors name it ``<prefix>.<argument>`` as the config does."""
    for name, rule in rules.items():
        check(f"{prefix}.{name}", values[name], rule)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def one_of(*options: Any) -> Rule:
    return Rule(lambda value: any(value == option and type(value) is type(option) for option in options), f"one of {', '.join(map(str, options))}")


def number(low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number in a range, e.g. ``number(0, low_open=True)`` for > 0 or ``number(0, 1, high_open=True)`` for [0, 1)."""
    if high == math.inf:
        what = f"a number > {low:g}" if low_open else f"a number ≥ {low:g}" if low > -math.inf else "a number"
    else:
        what = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return Rule(
        lambda v: _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high), what
    )


integer = Rule(_is_int, "an integer")
positive_int = Rule(lambda value: _is_int(value) and value >= 1, "a positive integer")
non_negative_int = Rule(lambda value: _is_int(value) and value >= 0, "a non-negative integer")
positive_number = number(0, low_open=True)
null = Rule(lambda value: value is None, "null")
auto = Rule(lambda value: value == "auto", "auto")
boolean = Rule(lambda value: isinstance(value, bool), "true or false")
#: numpy's seeds are 32-bit; K stacked members take seed .. seed+K-1.
random_seed = Rule(lambda value: _is_int(value) and 0 <= value < 2**32 - 1024, "an integer in [0, 2³² − 1024)", "integers in [0, 2³² − 1024)")


def count(low: int = 1, high: int = 10**7) -> Rule:
    """A number of things (rows, classes, steps of a sequence), bounded so a typo cannot fill the memory."""
    return Rule(lambda value: _is_int(value) and low <= value <= high, f"an integer in [{low}, {high:,}]")


def nonempty_list_of(rule: Rule) -> Rule:
    """A list, a tuple or OmegaConf's ListConfig (any sequence but a string) of values that ``rule`` accepts."""
    return Rule(
        lambda value: isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0 and all(rule.accepts(v) for v in value),
        f"a non-empty list of {rule.plural}",
    )


def built_as(key: str, built: Any, kind: type, accepts: Callable[[Any], bool] | None = None) -> Any:
    """``built`` if it is a ``kind`` (for a Protocol: if ``accepts`` it); else one line naming ``key`` and ``kind``."""
    if not (accepts(built) if accepts else isinstance(built, kind)):
        raise wrong_kind(key, type(built), kind)
    return built


def wrong_kind(key: str, built: type, kind: type) -> UserError:
    return UserError(f"{key}: builds a {built.__name__}, not a {_public_name(kind)}")


def _public_name(kind: type) -> str:
    """``kind`` as users import it: torch.nn.Module, not torch.nn.modules.module.Module where it is defined."""
    parts = kind.__module__.split(".")
    for end in range(1, len(parts)):
        module = ".".join(parts[:end])
        if getattr(sys.modules.get(module), kind.__name__, None) is kind:
            return f"{module}.{kind.__name__}"
    return f"{kind.__module__}.{kind.__name__}"
