"""Ctrl-C and SIGTERM during training: finish the step, save, stop."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Protocol


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run saved a checkpoint and stopped."""

    def __init__(self, signal_name: str, checkpoint: Path, step: int) -> None:
        super().__init__(f"{signal_name} at step {step}: checkpoint saved to {checkpoint}")
        self.signal_name, self.checkpoint, self.step = signal_name, checkpoint, step


class _Stoppable(Protocol):
    interrupted_by: str | None


class StopOnSignals:
    """While training, SIGINT and SIGTERM set ``loop.interrupted_by``; the loop stops after the current step."""

    def __init__(self, loop: _Stoppable) -> None:
        self.loop = loop
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.loop.interrupted_by = signal.Signals(signum).name

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
