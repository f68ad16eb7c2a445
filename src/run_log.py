"""The run's messages: on the console and, under ``python -m src.train``, in ``<run>/train.log``.

Hydra's job logging (``conf/hydra/job_logging/run_log.yaml``) gives the ``nnlab`` logger both
handlers. Used without Hydra (a notebook, a test), the logger still prints to the console.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("nnlab")

#: ``log.info(..., extra=FILE_ONLY)``: for train.log only (the console shows a progress bar instead).
FILE_ONLY = {"console": False}


class ConsoleHandler(logging.Handler):
    """Information to stdout, warnings and errors to stderr: the streams are looked up at each message,
    so redirections (pytest's capture, the held stderr of ``src.cli``) apply."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console", True) is False:
            return
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never end a run
            self.handleError(record)


if not log.handlers:
    log.addHandler(ConsoleHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
