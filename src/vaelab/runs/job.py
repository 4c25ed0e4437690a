"""A training job's life in one place (what ``task_wrapper`` is to lightning-hydra-template).

:func:`run_job` wraps the training function: it checks the job (:mod:`vaelab.runs.preflight`),
claims and locks its run dir (:mod:`vaelab.runs.claim`), writes ``status.json`` (``running``, then
``completed``, ``failed``, ``interrupted`` or ``pruned``), turns SIGTERM and Ctrl-C into an
``interrupted`` job (:mod:`vaelab.runs.signals`), keeps a multirun's bookkeeping (refused jobs, a
stopped sweep: :mod:`vaelab.runs.sweep`), finishes the W&B run and releases the lock whatever
happened, and ends every failure the same way (:func:`end_with_error`). The training function only
trains; it records its start and end with :func:`record_start` and :func:`record_end`, and its
numbers are assembled once, by :func:`run_metrics`.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vaelab.config.printing import print_config_tree
from vaelab.config.validate import exit_with, is_multirun
from vaelab.errors import RunInterrupted, UserError, warn
from vaelab.joblog import say
from vaelab.runs import wandb_run
from vaelab.runs.claim import Claim, claim, process_rank, write_hydra_record
from vaelab.runs.layout import (
    CHECKPOINTS,
    COMPLETED,
    FAILED,
    INTERRUPTED,
    LAST_CKPT,
    METRICS,
    PRUNED,
    RUN_INFO,
    RUNNING,
    STATUS,
    Metrics,
    read_json,
    write_json,
)
from vaelab.runs.preflight import refusal
from vaelab.runs.pruning import record_pruned
from vaelab.runs.signals import JobSignals
from vaelab.runs.sweep import describe_job, end_stopped_sweep, in_sweep_process, job_process, record_refusal, sweep_collects_interrupts
from vaelab.training.fitting import FitResult, summarize

# the training function run_job wraps: (config, resume this run dir?, the job's signals) -> its numbers
Train = Callable[[DictConfig, bool, JobSignals], Metrics]


def end_with_error(error: BaseException) -> None:
    """The one ending of a failed job or command, single run or multirun. A single run ends the
    process: a :class:`UserError` as one ``error:`` line and exit code 2, anything else raised again
    with its traceback. A multirun job says the same on stderr and returns, so that the sweep goes
    on (its summary lists the job and exits non-zero); the caller returns None to the sweeper."""
    if not is_multirun():
        if isinstance(error, UserError):
            exit_with(error)
        raise error
    if isinstance(error, UserError):
        print(f"error: {error}", file=sys.stderr, flush=True)
    else:
        traceback.print_exception(error)


def run_job(cfg: DictConfig, train: Train) -> float | None:
    """One training job from a composed config: check it, claim the run dir, ``train``, record the
    status. Returns the sweepers' objective (None for a failed job). A refused or failed job ends
    through :func:`end_with_error`; SIGTERM and Ctrl-C before or during training end it as
    ``interrupted`` (exit 143 or 130, or the sweep's summary); after training it finishes its test
    as ``completed``."""
    with JobSignals() as signals, job_process() as stopped:
        if stopped:  # the sweep was stopped while this job waited in the launcher's queue
            print(f"not started: the sweep was stopped by {stopped}", flush=True)
            return None
        invalid = refusal(cfg)  # a multirun job's (a single run's exits): recorded once the run dir is known to be this job's
        taken = _claim(cfg, invalid)
        if taken is None:
            return None
        failed = True  # how the W&B run is finished: failed unless the job returns
        try:
            result = _run(cfg, train, signals, taken, invalid)
            failed = False
            return result
        except (RunInterrupted, KeyboardInterrupt, SystemExit) as exc:
            if isinstance(exc, SystemExit) and signals.received is None:
                raise  # not a signal: e.g. Lightning's own exit on a DDP failure
            return _interrupted(Path(cfg.paths.output_dir), signals, exc)
        except UserError as err:
            _fail(cfg, str(err))
            end_with_error(err)
        except Exception as exc:
            _fail(cfg, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            end_with_error(exc)
        finally:
            wandb_run.finish(failed)
            taken.release()
        return None


def _claim(cfg: DictConfig, invalid: UserError | None) -> Claim | None:
    """Make and claim the run dir; None for a refused multirun job (a single run exits). Nothing of
    a refused run dir is touched: it may belong to another run."""
    out_dir = Path(cfg.paths.output_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = OmegaConf.to_container(cfg, resolve=True) if invalid is None else {}
        return claim(out_dir, resolved, bool(cfg.get("resume")), is_multirun())
    except UserError as err:
        if is_multirun():
            record_refusal(str(HydraConfig.get().job.num), str(invalid or err))
        end_with_error(invalid or err)
        return None


def _run(cfg: DictConfig, train: Train, signals: JobSignals, taken: Claim, invalid: UserError | None) -> float | None:
    """The claimed job: keep a completed one, else train (afresh or resumed) and record its status."""
    out_dir = Path(cfg.paths.output_dir)
    if taken.action != "keep" and process_rank() == 0:
        write_hydra_record(out_dir, cfg)
    if invalid is not None:
        raise invalid
    if taken.action == "keep":
        kept = read_json(out_dir / METRICS)
        print(f"kept {out_dir}: completed before (val_loss_min {kept.get('val_loss_min')})", flush=True)
        return kept.get("val_loss_min")
    if taken.action == "resume":
        print(f"resuming {out_dir} from {out_dir / CHECKPOINTS / LAST_CKPT}", flush=True)
    if cfg.get("print_config") and process_rank() == 0:
        print_config_tree(cfg)
    _write_status(out_dir, {"status": RUNNING})
    metrics = train(cfg, taken.action == "resume", signals)
    if metrics.stop_reason == PRUNED:  # a search's pruner stopped it: status.json says so, the sweeper tells the study
        return record_pruned(out_dir, metrics)
    _write_status(out_dir, {"status": COMPLETED})
    if not is_multirun() and process_rank() == 0:  # a multirun's summary prints this for every job
        say(describe_job(out_dir, prefix="run: "))
    # the sweepers' objective; a diverged run (no finite validation loss) counts as failed, like
    # a crashed one: None makes the Optuna sweeper record a FAIL trial and go on (NaN would stop it)
    best = float(getattr(metrics, str(cfg.get("optimized_metric") or "val_loss_min")))
    return best if math.isfinite(best) else None


def _interrupted(out_dir: Path, signals: JobSignals, exc: BaseException) -> None:
    """A signal stopped the job: ``interrupted`` in its status.json and one error line, then the
    shell's exit code for the signal; in a multirun the sweep stops (the sweep's own process prints
    its summary), or the job returns to the worker of a sweep that collects its interrupted jobs."""
    err = RunInterrupted(signals.received or (exc.signal if isinstance(exc, RunInterrupted) else "SIGINT"), out_dir)
    _write_status(out_dir, {"status": INTERRUPTED, "signal": err.signal, "error": str(err)})
    print(f"error: {err}", file=sys.stderr, flush=True)
    if is_multirun() and in_sweep_process():  # the remaining jobs do not start
        end_stopped_sweep(Path(str(HydraConfig.get().sweep.dir)), err.signal)
    if is_multirun() and sweep_collects_interrupts():
        return None  # the sweep's process, which forwarded the signal, prints the summary
    sys.exit(err.exit_code)


def _write_status(out_dir: Path, payload: dict[str, Any]) -> None:
    """status.json, written by rank 0 alone: under DDP every rank runs this task, and two atomic
    writes of one file race (one rename finds the other's temp file gone)."""
    if process_rank() == 0:
        write_json(out_dir / STATUS, payload)


def _fail(cfg: DictConfig, message: str, trace: str | None = None) -> None:
    """Mark the job failed in its run dir and, for a W&B logger, in W&B (a run of its own when the
    job failed before its run started), and finish its W&B run before the error is told."""
    try:
        _write_status(Path(cfg.paths.output_dir), {"status": FAILED, "error": message, **({"traceback": trace} if trace else {})})
    except UserError as err:  # e.g. a full disk: the error line of the failure itself still follows
        warn(f"{err}")
    wandb_run.record_failure(OmegaConf.select(cfg, "logger.wandb"), message, is_multirun())
    wandb_run.finish(failed=True)


# ------------------------------------------------------------------------------- the job's record
def record_start(cfg: DictConfig, loggers: list[Any], init_from: dict[str, Any] | None) -> dict[str, Any]:
    """Write ``run_info.json`` (the resolved config, provenance, every installed package, the source
    of ``ckpt_path``'s weights) and give the loggers the run's settings; returns those settings
    (the resolved config with its ``provenance``)."""
    from vaelab.runs.provenance import environment, provenance

    info = provenance()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    env = {"environment": environment()}  # every installed package: run_info.json only, not the loggers' configs
    write_json(Path(cfg.paths.output_dir) / RUN_INFO, {"config": resolved, **info, **env, **({"init_from": init_from} if init_from else {})})
    settings = {**resolved, "provenance": info}
    for logger in loggers:
        logger.log_hyperparams(settings)
    return settings


def run_metrics(cfg: DictConfig, fit: FitResult, test: dict[str, float], settings: dict[str, Any], started: float) -> Metrics:
    """The :class:`Metrics` record of a run, the one place it is assembled: the run's settings from
    ``cfg``, its numbers from the fit (:class:`~vaelab.training.fitting.FitResult`) and the test of
    its best checkpoint, its provenance from ``settings`` (:func:`record_start`). It lives in runs/,
    beside the job that writes it, because it joins the run-dir contract (runs/layout) with the
    fit's results, and training/ may not import runs/. ``started``: this session's
    ``time.perf_counter()`` at its start; the wall time adds the earlier sessions' training time."""
    val_min, val_epoch = summarize(fit.history)
    info = settings["provenance"]
    return Metrics(
        latent_dim=int(cfg.model.latent_dim),
        seed=int(cfg.seed),
        kl=str(cfg.model.kl),
        net=str(cfg.model.net),
        dataset=str(cfg.data.dataset),
        recon=str(cfg.model.recon),
        beta=float(cfg.model.beta),
        binarize=str(cfg.data.binarize),
        epochs=len(fit.history),
        max_epochs=int(cfg.trainer.max_epochs),
        stop_reason=fit.stop_reason,
        val_loss_min=val_min,
        val_loss_min_epoch=val_epoch,
        test_loss=float(test["test/loss"]),
        test_nelbo=float(test["test/nelbo"]),
        test_recon=float(test["test/recon"]),
        test_kl=float(test["test/kl"]),
        best_ckpt=fit.best_ckpt or None,
        wall_time_s=round(fit.earlier_s + time.perf_counter() - started, 3),
        git_commit=info["git_commit"],
        vaelab_version=info["vaelab_version"],
        history=fit.history,
    )


def record_end(out_dir: Path, metrics: Metrics, loggers: list[Any], settings: dict[str, Any], interrupted: bool) -> None:
    """Rank 0's record of the run's end: ``metrics.json``, the loggers' summary (and TensorBoard's
    HParams session, for a run that was not interrupted) and the ``stopped:`` line."""
    from vaelab.runs.loggers import log_hparams_session

    write_json(out_dir / METRICS, metrics.to_json())
    val_min, val_epoch = metrics.val_loss_min, metrics.val_loss_min_epoch
    summary = {"val/loss_best": val_min, "val/loss_min_epoch": val_epoch, "test/loss": metrics.test_loss, "test/nelbo": metrics.test_nelbo,
               "stop_reason": metrics.stop_reason, "epochs": metrics.epochs}  # fmt: skip
    wandb_run.update_summary(loggers, summary, interrupted=interrupted)
    if not interrupted:
        log_hparams_session(loggers, settings, val_min, val_epoch)
    say(
        f"stopped: {metrics.stop_reason} after {metrics.epochs} epoch(s) (cap {metrics.max_epochs}); "
        f"minimal val/loss {val_min:.4f} at epoch {val_epoch}"
    )
