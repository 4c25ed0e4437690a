"""Training entry point: ``python -m vaelab.train [overrides]`` (console script ``vaelab-train``).

Composes the Hydra config (``conf/train.yaml``), validates it, trains with Lightning, tests the
best checkpoint and writes ``metrics.json`` in the run dir. Returns the minimal validation loss so
that Hydra sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from vaelab.config import resolvers
from vaelab.config.printing import print_config_tree
from vaelab.config.validate import check_overrides, exit_with, is_multirun
from vaelab.errors import RunInterrupted, UserError, warn
from vaelab.joblog import say
from vaelab.runs import wandb_run
from vaelab.runs.claim import claim, process_rank, write_hydra_record
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
from vaelab.runs.loggers import instantiate_logger, log_hparams_session
from vaelab.runs.preflight import refusal
from vaelab.runs.pruning import record_pruned, search_pruning
from vaelab.runs.reading import init_weights
from vaelab.runs.signals import JobSignals
from vaelab.runs.sweep import describe_job, end_stopped_sweep, in_sweep_process, job_process, record_refusal, sweep_collects_interrupts
from vaelab.runs.wandb_run import finish, update_summary
from vaelab.training.fitting import fit_or_interrupt, summarize
from vaelab.training.runtime import ignore_known_warnings

resolvers.register()
ignore_known_warnings()


def train(cfg: DictConfig, resume: bool = False, signals: JobSignals | None = None) -> Metrics:
    """Fit, test the best checkpoint, and return the metrics written to ``metrics.json``.

    ``resume``: continue this run dir's ``last.ckpt`` (weights, optimiser, epoch, history, early
    stopping). ``cfg.ckpt_path`` instead starts a new run from another checkpoint's weights only:
    a fresh history, its source recorded in ``run_info.json``."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ProgressBar, Timer

    from vaelab.runs.provenance import environment, provenance
    from vaelab.training.callbacks import stop_reason
    from vaelab.training.checkpoint import AtomicCheckpointIO, RunDirRelocation, read_checkpoint, remove_stale_best
    from vaelab.training.runtime import configure_torch, silence_third_party_noise

    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    configure_torch(cfg.get("threads"))
    if OmegaConf.select(cfg, "extras.ignore_warnings", default=False):
        silence_third_party_noise()
        if OmegaConf.select(cfg, "logger.wandb") is not None:
            wandb_run.quiet()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    ckpt_path = str(out_dir / CHECKPOINTS / LAST_CKPT) if resume else None
    shape = (cfg.model.latent_dim, list(cfg.model.hidden), str(cfg.model.net))
    if ckpt_path:  # read safely and checked here; fit then restores it (weights_only, fitting.py)
        read_checkpoint(ckpt_path, *shape, key=None)
    source = read_checkpoint(cfg.ckpt_path, *shape) if cfg.get("ckpt_path") else None

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    init_from = init_weights(module, source) if source and not resume else None
    # the Timer keeps the run's training time in every checkpoint, so a resumed run's wall time
    # counts all its sessions
    clock = Timer(interval="epoch")
    # not choices either: the run's clock, and checkpoint paths that follow a copied or moved run dir
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + [clock, RunDirRelocation(out_dir / CHECKPOINTS)]
    callbacks += ([signals.callback()] if signals is not None else []) + search_pruning()  # pruning: an Optuna search's pruner, if any
    if not cfg.trainer.get("enable_progress_bar"):  # Lightning refuses a bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = [instantiate_logger(name, c, out_dir) for name, c in (cfg.get("logger") or {}).items()]
    plugins: list[Any] = [AtomicCheckpointIO()]
    if "SLURM_JOB_ID" in os.environ:
        from pytorch_lightning.plugins.environments import SLURMEnvironment

        # SLURM (and submitit, which submitted the job) own requeueing: a requeued job resumes from
        # its run dir's last.ckpt (vaelab.runs.claim). Lightning's own auto-requeue would answer the
        # same signals with a second requeue and a checkpoint of its own: off (docs/cluster.md)
        plugins.append(SLURMEnvironment(auto_requeue=False))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins)

    info = provenance()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    env = {"environment": environment()}  # every installed package: run_info.json only, not the loggers' configs
    write_json(out_dir / RUN_INFO, {"config": resolved, **info, **env, **({"init_from": init_from} if init_from else {})})
    settings = {**resolved, "provenance": info}
    for logger in loggers:
        logger.log_hyperparams(settings)

    if signals is not None:
        signals.check()  # a signal while the run was set up: stop before the fit
    signal_name = fit_or_interrupt(trainer, module, datamodule, ckpt_path)
    # the whole run's history: testing the best checkpoint below loads that checkpoint's history,
    # which ends at the best epoch
    history = list(module.history)
    reason = stop_reason(trainer, history)
    # training seconds of the sessions before this one (restored by fit from last.ckpt): read now,
    # because testing the best checkpoint below restores the clock of that (earlier) checkpoint
    trained_s = clock.time_elapsed("train")
    started, ended = clock.start_time("train"), clock.end_time("train")  # time.monotonic() seconds, as Timer's
    session_s = ((ended or time.monotonic()) - started) if started is not None else 0.0
    before_s = max(trained_s - session_s, 0.0)

    ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if ckpt and trainer.is_global_zero:
        remove_stale_best(out_dir / CHECKPOINTS, ckpt)
    if signal_name or reason == PRUNED:  # no test on an interrupted run (its numbers come after `resume=true`) or a pruned trial
        test = {k: math.nan for k in ("test/loss", "test/nelbo", "test/recon", "test/kl")}
    else:
        test = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt or None, verbose=False, weights_only=True)[0]
    val_min, val_epoch = summarize(history)
    metrics = Metrics(
        latent_dim=int(cfg.model.latent_dim),
        seed=int(cfg.seed),
        kl=str(cfg.model.kl),
        net=str(cfg.model.net),
        dataset=str(cfg.data.dataset),
        recon=str(cfg.model.recon),
        beta=float(cfg.model.beta),
        binarize=str(cfg.data.binarize),
        epochs=len(history),
        max_epochs=int(cfg.trainer.max_epochs),
        stop_reason=reason,
        val_loss_min=val_min,
        val_loss_min_epoch=val_epoch,
        test_loss=float(test["test/loss"]),
        test_nelbo=float(test["test/nelbo"]),
        test_recon=float(test["test/recon"]),
        test_kl=float(test["test/kl"]),
        best_ckpt=ckpt or None,
        wall_time_s=round(before_s + time.perf_counter() - start, 3),
        git_commit=info["git_commit"],
        vaelab_version=info["vaelab_version"],
        history=history,
    )
    if trainer.is_global_zero:
        write_json(out_dir / METRICS, metrics.to_json())
        summary = {"val/loss_best": val_min, "val/loss_min_epoch": val_epoch, "test/loss": metrics.test_loss, "test/nelbo": metrics.test_nelbo,
                   "stop_reason": reason, "epochs": len(history)}  # fmt: skip
        update_summary(loggers, summary, interrupted=bool(signal_name))
        if not signal_name:
            log_hparams_session(loggers, settings, val_min, val_epoch)
        say(f"stopped: {reason} after {len(history)} epoch(s) (cap {cfg.trainer.max_epochs}); minimal val/loss {val_min:.4f} at epoch {val_epoch}")
    if signal_name:
        raise RunInterrupted(signal_name, out_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://vaelab.conf", config_name="train")
def run(cfg: DictConfig) -> float | None:
    """Hydra task: one training job (:func:`train_task`)."""
    return train_task(cfg)


def train_task(cfg: DictConfig) -> float | None:
    """One training job, from a composed config: check it, claim the run dir, train, record the
    status. Returns the sweepers' objective (None for a failed job). User errors become one line;
    in a single run they exit (``SystemExit``) non-zero, in a multirun the job is marked failed in
    its run dir and the sweep goes on (the sweep summary reports it and exits non-zero). SIGTERM and
    Ctrl-C before or during training end the job as ``interrupted``; after training it finishes
    its test as ``completed`` (:mod:`vaelab.runs.signals`).

    The Hydra task of ``vaelab.train``; tests call it in process on a config composed with
    ``hydra.compose`` (``HydraConfig`` set, ``paths.output_dir`` a temp dir)."""
    ignore_known_warnings()  # again: a launcher's worker process runs this function without importing this module
    with JobSignals() as signals, job_process() as stopped:
        if stopped:  # the sweep was stopped while this job waited in the launcher's queue
            print(f"not started: the sweep was stopped by {stopped}", flush=True)
            return None
        return _job(cfg, signals)


def _job(cfg: DictConfig, signals: JobSignals) -> float | None:
    out_dir = Path(cfg.paths.output_dir)
    status = out_dir / STATUS
    failed = True
    invalid = refusal(cfg)  # a multirun job's (a single run's exits): recorded below, once the run dir is known to be this job's
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = OmegaConf.to_container(cfg, resolve=True) if invalid is None else {}
        taken = claim(out_dir, resolved, bool(cfg.get("resume")), is_multirun())
    except UserError as err:  # nothing of this run dir was touched: it may belong to another run
        failed = False
        if not is_multirun():
            exit_with(invalid or err)
        print(f"error: {invalid or err}", file=sys.stderr, flush=True)
        record_refusal(str(HydraConfig.get().job.num), str(invalid or err))
        return None
    try:
        if taken.action != "keep" and process_rank() == 0:
            write_hydra_record(out_dir, cfg)
        if invalid is not None:
            raise invalid
        if taken.action == "keep":
            failed = False
            kept = read_json(out_dir / METRICS)
            print(f"kept {out_dir}: completed before (val_loss_min {kept.get('val_loss_min')})", flush=True)
            return kept.get("val_loss_min")
        if taken.action == "resume":
            print(f"resuming {out_dir} from {out_dir / CHECKPOINTS / LAST_CKPT}", flush=True)
        if cfg.get("print_config") and process_rank() == 0:
            print_config_tree(cfg)
        _write_status(status, {"status": RUNNING})
        metrics = train(cfg, resume=taken.action == "resume", signals=signals)
        failed = False
        if metrics.stop_reason == PRUNED:  # a search's pruner stopped it: status.json says so, the sweeper tells the study
            return record_pruned(out_dir, metrics)
        _write_status(status, {"status": COMPLETED})
        if not is_multirun() and process_rank() == 0:  # a multirun's summary prints this for every job
            say(describe_job(out_dir, prefix="run: "))
        # the sweepers' objective; a diverged run (no finite validation loss) counts as failed, like
        # a crashed one: None makes the Optuna sweeper record a FAIL trial and go on (NaN would stop it)
        best = float(getattr(metrics, str(cfg.get("optimized_metric") or "val_loss_min")))
        return best if math.isfinite(best) else None
    except (RunInterrupted, KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and signals.received is None:
            raise  # not a signal: e.g. Lightning's own exit on a DDP failure
        err = RunInterrupted(signals.received or (exc.signal if isinstance(exc, RunInterrupted) else "SIGINT"), out_dir)
        _write_status(status, {"status": INTERRUPTED, "signal": err.signal, "error": str(err)})
        print(f"error: {err}", file=sys.stderr, flush=True)
        if is_multirun() and in_sweep_process():  # the remaining jobs do not start
            end_stopped_sweep(Path(str(HydraConfig.get().sweep.dir)), err.signal)
        if is_multirun() and sweep_collects_interrupts():
            return None  # the sweep's process, which forwarded the signal, prints the summary
        sys.exit(err.exit_code)
    except UserError as err:
        _record_failure(cfg, status, str(err))
        if not is_multirun():
            finish(failed=True)
            exit_with(err)
        print(f"error: {err}", file=sys.stderr, flush=True)
        return None
    except Exception as exc:
        _record_failure(cfg, status, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        if not is_multirun():
            raise
        traceback.print_exc()
        return None
    finally:
        finish(failed)
        taken.release()


def _write_status(status: Path, payload: dict[str, Any]) -> None:
    """status.json, written by rank 0 alone: under DDP every rank runs this task, and two atomic
    writes of one file race (one rename finds the other's temp file gone)."""
    if process_rank() == 0:
        write_json(status, payload)


def _record_failure(cfg: DictConfig, status: Path, message: str, trace: str | None = None) -> None:
    """Mark the job failed in its run dir and, for a W&B logger, in W&B (a run of its own when the
    job failed before its run started)."""
    try:
        _write_status(status, {"status": FAILED, "error": message, **({"traceback": trace} if trace else {})})
    except UserError as err:  # e.g. a full disk: the error line of the failure itself still follows
        warn(f"{err}")
    wandb_run.record_failure(OmegaConf.select(cfg, "logger.wandb"), message, is_multirun())


def main() -> None:
    """Console entry point: check the command line, then hand over to Hydra."""
    check_overrides(sys.argv[1:], config_name="train")
    run()


if __name__ == "__main__":
    main()
