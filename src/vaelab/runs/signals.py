"""SIGTERM and SIGINT (Ctrl-C) for a training job and for the sweep process that launched it.

A job stops whatever moment the signal comes: during Lightning's fit, Lightning's own handling
ends the fit at the next step (SIGTERM) or at once (Ctrl-C); before it (imports, data loading,
building the trainer) :class:`JobSignals` records the signal and the job stops at its next check, so
it still records ``interrupted`` instead of dying with ``running`` in its ``status.json``. A signal
after the fit lets the job finish its test and record ``completed``. A repeated signal (a second
Ctrl-C, or the sweep's forwarded copy of one the job already had from the terminal) is ignored
while the job stops.

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
    """Within ``with JobSignals() as signals:``, the first SIGTERM or SIGINT is recorded in
    ``signals.received``; later ones are ignored. During Lightning's fit a SIGINT raises
    ``KeyboardInterrupt`` at once (Lightning ends the fit on it), and a SIGTERM is left to
    Lightning's own handler (installed then, it calls this one). Outside the fit the signal is only
    recorded: raising inside whatever library call is running (Hydra instantiating the trainer, say)
    can leave that library's state broken and turn the stop into a crash; the job stops at its next
    :meth:`check` instead, the last one as the fit starts (:meth:`callback`). A no-op outside the
    main thread, where Python cannot install handlers."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.fitting = False
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
        if self.fitting and signum == signal.SIGINT:
            raise KeyboardInterrupt(self.received)

    def check(self) -> None:
        """Stop the job (``KeyboardInterrupt``) if a signal came since it started."""
        if self.received is not None:
            raise KeyboardInterrupt(self.received)

    def callback(self) -> Any:
        """A Lightning callback: checks as the fit starts (a signal that came while Lightning set
        up, before its own handler) and marks the fit's span for SIGINT."""
        from pytorch_lightning import Callback

        signals = self

        class SignalsDuringFit(Callback):
            def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
                signals.fitting = True
                signals.check()

            def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
                signals.fitting = False

            def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
                signals.fitting = False

        return SignalsDuringFit()


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
