"""Running Lightning's fit and reading what came of it: the minimum of the epoch history, and
whether a signal ended the fit (so the run can be recorded as interrupted and resumed)."""

from __future__ import annotations

import math
from typing import Any

from vaelab.errors import warn


def summarize(history: list[dict[str, float]]) -> tuple[float, int]:
    """(minimal validation loss, the epoch it was reached at, 1-based) from the epoch history."""
    finite = [row for row in history if math.isfinite(row["val/loss"])]
    if not finite:
        return math.nan, 0
    best = min(finite, key=lambda row: row["val/loss"])
    return best["val/loss"], int(best["epoch"])


def fit_or_interrupt(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None) -> str | None:
    """``trainer.fit``; returns None when it ran to its end, or the signal that interrupted it.

    Lightning ends a fit on SIGTERM with ``SIGTERMException`` and on Ctrl-C (SIGINT) with
    ``sys.exit(1)``, both ``SystemExit``: we catch those (only when Lightning marked the fit
    interrupted) so the run can record its state and exit non-zero with one line.
    """
    from pytorch_lightning.trainer.states import TrainerStatus
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    try:
        # a resumed run's last.ckpt: unpickled by the weights-only loader (vaelab.training.checkpoint)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit as exc:
        if trainer.state.status != TrainerStatus.INTERRUPTED:
            raise
        return "SIGTERM" if isinstance(exc, SIGTERMException) else "SIGINT"
    except ConnectionError as exc:
        # SLURM signals every process of a job: its SIGTERM (requeue, preemption, time limit) also
        # stops the W&B service process, and the logger's next call fails. The signal is the cause.
        if not trainer.received_sigterm:
            raise
        warn(f"the SIGTERM also stopped W&B's service ({type(exc).__name__}: {exc}); this session's last rows may be missing from W&B")
        return "SIGTERM"
    return None
