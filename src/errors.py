"""User mistakes become one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: a config value, a data file, a checkpoint."""


class ConfigError(UserError):
    """A config key holds a value that is not allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}={value!r}: {allowed}")


def report_user_errors(fn: Callable[[], T]) -> T:
    """Run ``fn``; a UserError prints one line and exits (HYDRA_FULL_ERROR=1 shows the traceback)."""
    try:
        return fn()
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
