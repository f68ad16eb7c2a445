"""Entry points under Hydra: when Hydra refuses a command line, one line a person reads comes first.

Hydra's own text (unknown key: "Could not override ... Key 'lrr' is not in struct ..."; unknown
option: the search path and every option) stays below it, with Hydra's exit code. Until a run
starts, what goes to stderr is held back, so that line can be printed before Hydra's.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any, Callable, TextIO

from src import REPO_ROOT, commands_imported


class _HeldStderr:
    """Collects writes until released; everything else behaves like the real stream."""

    def __init__(self, real: TextIO) -> None:
        self.real, self.parts = real, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_held: _HeldStderr | None = None


def release_stderr() -> None:
    """Called as a run starts (by a Hydra callback): from here on, stderr is written straight through."""
    global _held
    if _held is not None:
        sys.stderr = _held.real
        sys.stderr.write("".join(_held.parts))
        sys.stderr.flush()
        _held = None


def run(main: Callable[[], Any], config_name: str) -> None:
    """Run a ``@hydra.main`` function; if Hydra exits before the run starts, explain the command line first."""
    global _held
    commands_imported()
    _held = _HeldStderr(sys.stderr)
    sys.stderr = _held
    try:
        main()
    except SystemExit as stop:
        if _held is not None and stop.code not in (0, None):
            line = explain_refusal(sys.argv[1:], config_name)
            if line:
                _held.real.write(f"error: {line}\n")
        raise
    finally:
        release_stderr()


def explain_refusal(args: list[str], config_name: str) -> str | None:
    """The first override on the command line that Hydra cannot read, or that names no option of its group or no key
    of the config."""
    try:
        return _first_refused(args, config_name)
    except Exception:  # noqa: BLE001 - an explanation is a courtesy; Hydra's own text follows in any case
        return None


def _first_refused(args: list[str], config_name: str) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException
    from omegaconf import DictConfig

    parser, args = OverridesParser.create(), [arg for arg in args if not arg.startswith("-")]
    for arg in args:
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            key, _, value = arg.partition("=")
            return f"{arg}: Hydra's override grammar cannot read it (a bracket not closed, or a character it takes only in quotes: '{key}=\"{value}\"')"
    overrides = parser.parse_overrides(args)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        search = [o.input_line for o in overrides if o.key_or_group == "hydra.searchpath"]
        good_choices = list(search)
        keys = []
        for override in overrides:
            name = override.key_or_group
            if override.is_add() or override.is_delete() or name.startswith("hydra"):
                continue
            options = loader.get_group_options(name)
            if not options:
                keys.append(override)
                continue
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
            for value in values:
                if value is not None and str(value) not in options:
                    return f"{name}={value}: no such option; options: {', '.join(options)}"
            good_choices.append(override.input_line)
        config = compose(config_name, overrides=good_choices)
    for override in keys:
        *parents, leaf = override.key_or_group.split(".")
        node: Any = config
        for depth, part in enumerate(parents):
            if not isinstance(node, DictConfig) or part not in node:
                return _not_a_key(".".join(parents[: depth + 1]), node, ".".join(parents[:depth]))
            node = node[part]
        if isinstance(node, DictConfig) and leaf not in node:
            return _not_a_key(override.key_or_group, node, ".".join(parents))
    return None


def _not_a_key(key: str, parent: Any, parent_name: str) -> str:
    from omegaconf import DictConfig

    known = [str(k) for k in parent.keys() if not str(k).startswith("_")] if isinstance(parent, DictConfig) else []
    where = parent_name or "the config"
    prefix = f"{parent_name}." if parent_name else ""
    leaf = key.rsplit(".", 1)[-1]
    line = f"{key} is not a key of {where} ({'keys: ' + ', '.join(known) if known else 'it has none'})"
    close = difflib.get_close_matches(leaf, known, n=1)
    return f"{line}; did you mean {prefix}{close[0]}?" if close else line
