"""Running Lightning's fit and reading what came of it: the epoch history and its minimum, why the
fit stopped, whether a signal ended it (so the run can be recorded as interrupted and resumed), the
training time of earlier sessions, and the best checkpoint to test."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelab.errors import warn

# what testing the best checkpoint reports; NaN each for a run that was not tested
TEST_KEYS = ("test/loss", "test/nelbo", "test/recon", "test/kl")


@dataclass
class FitResult:
    """What a fit left, read before the best checkpoint is tested: testing restores that
    checkpoint's history (which ends at the best epoch) and its clock (an earlier one)."""

    signal: str | None  # the signal that interrupted the fit; None when it ran to its end
    history: list[dict[str, float]]  # one row per epoch, the whole run's (resumed sessions included)
    stop_reason: str  # vaelab.training.callbacks.stop_reason
    earlier_s: float  # training seconds of the sessions before this one (a resumed run), from last.ckpt
    best_ckpt: str  # the checkpoint of the minimal val/loss; "" when none was saved


def summarize(history: list[dict[str, float]]) -> tuple[float, int]:
    """(minimal validation loss, the epoch it was reached at, 1-based) from the epoch history."""
    finite = [row for row in history if math.isfinite(row["val/loss"])]
    if not finite:
        return math.nan, 0
    best = min(finite, key=lambda row: row["val/loss"])
    return best["val/loss"], int(best["epoch"])


def trainer_plugins() -> list[Any]:
    """The trainer's plugins: checkpoints written atomically, and under SLURM its environment with
    Lightning's auto-requeue off. SLURM (and submitit, which submitted the job) own requeueing: a
    requeued job resumes from its run dir's last.ckpt (vaelab.runs.claim); Lightning's own
    auto-requeue would answer the same signals with a second requeue and a checkpoint of its own
    (docs/cluster.md)."""
    import os

    from vaelab.training.checkpoint import AtomicCheckpointIO

    plugins: list[Any] = [AtomicCheckpointIO()]
    if "SLURM_JOB_ID" in os.environ:
        from pytorch_lightning.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def fit(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None, clock: Any, checkpoints: Path) -> FitResult:
    """``trainer.fit`` (:func:`fit_or_interrupt`), then what came of it. ``clock``: the run's
    Lightning ``Timer`` callback, which keeps the training time of every session in the checkpoints.
    Rank 0 removes stale best checkpoints from ``checkpoints`` (the run dir's folder of them)."""
    from vaelab.training.callbacks import stop_reason
    from vaelab.training.checkpoint import remove_stale_best

    signal_name = fit_or_interrupt(trainer, module, datamodule, ckpt_path)
    history = list(module.history)
    reason = stop_reason(trainer, history)
    earlier_s = _earlier_sessions_s(clock)
    best = trainer.checkpoint_callback
    ckpt = best.best_model_path if best else ""
    # the best checkpoints' names: the callback's filename up to its first field (best-*.ckpt);
    # a name that starts with a field has no prefix of its own, and nothing is removed
    prefix = str(best.filename or "").split("{")[0] if best else ""
    if ckpt and prefix and trainer.is_global_zero:
        remove_stale_best(checkpoints, ckpt, f"{prefix}*{best.FILE_EXTENSION}")
    return FitResult(signal=signal_name, history=history, stop_reason=reason, earlier_s=earlier_s, best_ckpt=ckpt)


def _earlier_sessions_s(clock: Any) -> float:
    """Seconds of training before this session: the Timer's total (restored by fit from last.ckpt)
    minus this session's span (``time.monotonic()`` seconds, as the Timer's)."""
    trained_s = clock.time_elapsed("train")
    started, ended = clock.start_time("train"), clock.end_time("train")
    session_s = ((ended or time.monotonic()) - started) if started is not None else 0.0
    return max(trained_s - session_s, 0.0)


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
