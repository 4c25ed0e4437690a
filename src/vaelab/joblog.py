"""What a job tells its user: printed on the console as it is, and written to the job's log file.

Hydra's job logging sends Python log records to ``<run dir>/train.log`` (``evaluate.log``, ...),
and a SLURM or nohup user reads that file, not the console. vaelab's own lines (the config tree,
one line per epoch, the end summary, the error line) are prints, so they reach the file here: each
goes to the root logger's file handlers only. Its console handler would print the line a second
time, prefixed with a timestamp.
"""

from __future__ import annotations

import logging
import sys

_LOGGER = "vaelab"


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
