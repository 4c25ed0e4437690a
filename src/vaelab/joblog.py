"""What a job tells its user: printed on the console as it is, and written to the job's log file.

Hydra's job logging sends Python log records to ``<run dir>/train.log`` (``evaluate.log``, ...),
and a SLURM or nohup user reads that file, not the console. vaelab's own lines (the config tree,
one line per epoch, the end summary, the error line) are prints, so they reach the file here: each
goes to the root logger's file handlers only. Its console handler would print the line a second
time, prefixed with a timestamp.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import IO, Any

from vaelab.errors import warn

_LOGGER = "vaelab"


class RunLogFile(logging.FileHandler):
    """Hydra's job log file, ``<run dir>/train.log`` (``conf/hydra/default.yaml`` names this class
    in place of ``logging.FileHandler``): appended to, and never through a symbolic link.

    A run dir may come from elsewhere (a colleague's copy, a sweep folder others can write to): a
    ``train.log`` there that links to another file would have every line of the run appended to
    that file. The file is opened with ``O_NOFOLLOW`` at the first line written (not when Hydra
    configures logging, before the run dir is claimed); a link is not opened, and its lines are
    dropped with one warning. Claiming the run dir refuses a link in it with one error line
    (:func:`vaelab.runs.claim.claim`), before a line is written."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None, delay: bool = True, errors: str | None = None) -> None:
        super().__init__(filename, mode, encoding, delay=True, errors=errors)  # always delayed: see above
        self._refused = False

    def _open(self) -> IO[Any] | None:  # type: ignore[override]
        append = not self.mode.startswith("w")
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
        try:
            fd = os.open(self.baseFilename, flags, 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            if not self._refused:
                self._refused = True
                warn(f"{self.baseFilename} is a symbolic link: the job log is not written through it")
            return None  # FileHandler.emit writes nothing while its stream is None
        return os.fdopen(fd, "a" if append else "w", encoding=self.encoding, errors=self.errors)


def to_log_file(text: str, level: int = logging.INFO) -> None:
    """Write ``text`` (one line or a block) to the job's log file(s), not to the console."""
    root = logging.getLogger()
    record = logging.getLogger(_LOGGER).makeRecord(_LOGGER, level, __file__, 0, text, None, None)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def say(text: str, error: bool = False) -> None:
    """Print ``text`` on stdout (stderr for an ``error``) and write it to the job's log file."""
    print(text, file=sys.stderr if error else sys.stdout, flush=True)
    to_log_file(text, logging.ERROR if error else logging.INFO)
