"""SIGTERM and SIGINT (Ctrl-C) for a training job and for the sweep process that launched it.

A job stops at whatever moment the signal comes: during Lightning's fit, Lightning's own handling
ends the fit at the next step (SIGTERM) or at once (Ctrl-C); before or after it (imports, data
loading, testing the best checkpoint) :class:`JobSignals` turns the signal into a
``KeyboardInterrupt``, so the job still records ``interrupted`` instead of dying with ``running``
in its ``status.json``. A repeated signal (a second Ctrl-C, or the sweep's forwarded copy of one the
job already had from the terminal) is ignored while the job stops.

A sweep whose jobs run in other processes (the joblib launcher) catches the signal in
:func:`forwarding_signals`, stops the jobs not yet started and forwards the signal to the running
ones; it then waits for them, so their ``status.json`` and the sweep's summary are written, and no
worker is left behind.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class JobSignals:
    """Within ``with JobSignals() as signals:``, the first SIGTERM or SIGINT raises
    ``KeyboardInterrupt`` unless Lightning's handler is the one installed (Lightning calls this one
    after its own, which stops the fit at the next step); ``signals.received`` names it. Later
    signals are ignored. A no-op outside the main thread, where Python cannot install handlers."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> JobSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping
        self.received = signal.Signals(signum).name
        if signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) != self._on_signal:
            return  # Lightning's handler is installed and called this one: it ends the fit or test itself
        raise KeyboardInterrupt(self.received)


@contextmanager
def forwarding_signals(on_first: Callable[[str], list[int]]) -> Iterator[list[str]]:
    """Within the block, SIGTERM and SIGINT do not stop this process: the first one calls
    ``on_first(signal name)``, which stops the sweep and returns the pids of its running jobs, and
    the same signal goes to each of them; the yielded list then holds the signal's name. Later
    signals go to the jobs too (a job ignores repeats)."""
    received: list[str] = []
    targets: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not received:
            received.append(signal.Signals(signum).name)
            targets.extend(on_first(received[0]))
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # that job has already ended
                pass

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
