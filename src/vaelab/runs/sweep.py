"""A Hydra callback that ends every multirun with a summary of its jobs.

It lists, per job, its status and where its metrics, best checkpoint and W&B run went; when a job
failed it says which and why, and makes the sweep exit non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vaelab.runs.layout import COMPLETED, HYDRA_RECORD, METRICS, STATUS, read_json


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep (those holding a ``status.json``), in job order."""
    dirs = [p.parent for p in sweep_dir.glob(f"*/{STATUS}")]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


class SweepSummary(Callback):
    """Print the job table after a multirun; exit 1 if any job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if print_summary(Path(str(config.hydra.sweep.dir))):
            sys.exit(1)


def print_summary(sweep_dir: Path) -> list[Path]:
    """Print one block per job of ``sweep_dir`` (status, numbers, where its files are); returns
    the jobs that did not complete, after an ``error:`` line naming them."""
    jobs = job_dirs(sweep_dir)
    failed = []
    print(f"\nsweep {sweep_dir}: {len(jobs)} job(s)", flush=True)
    for job in jobs:
        state = read_json(job / STATUS).get("status", "unknown")
        if state != COMPLETED:
            failed.append(job)
        print(describe_job(job, prefix=f"  {job.name}: "), flush=True)
    if failed:
        what = "failed" if {read_json(j / STATUS).get("status") for j in failed} <= {"failed"} else "did not complete"
        print(
            f"error: {len(failed)} of {len(jobs)} job(s) {what}: {', '.join(j.name for j in failed)} (see their status.json)",
            file=sys.stderr,
            flush=True,
        )
    return failed


def describe_job(job: Path, prefix: str = "") -> str:
    """What became of one run: its settings, minimal val/loss with its epoch and stop reason, test
    loss, and where its metrics, best checkpoint and W&B run are. The end of every run prints it,
    and a multirun's summary prints it per job."""
    status = read_json(job / STATUS)
    state = status.get("status", "unknown")
    if state != COMPLETED:
        return f"{prefix}{state.upper()} {status.get('error', '')}".rstrip()
    m = read_json(job / METRICS)
    wandb_runs = sorted(str(p) for p in (job / "wandb").glob("*run-*") if p.is_dir())
    overrides = job / HYDRA_RECORD / "overrides.yaml"
    # the job's own command-line values (an Optuna trial's parameters, a sweep's values)
    typed = " ".join(str(o) for o in (OmegaConf.load(overrides) if overrides.is_file() else []))
    return (
        f"{prefix}latent_dim={m.get('latent_dim')} seed={m.get('seed')} kl={m.get('kl')} "
        f"val_loss_min={m.get('val_loss_min', float('nan')):.3f} (epoch {m.get('val_loss_min_epoch')} of {m.get('epochs')}, "
        f"cap {m.get('max_epochs')}, stopped by {m.get('stop_reason', 'unknown')}) "
        f"test_loss={m.get('test_loss', float('nan')):.3f}\n"
        f"      command line: {typed or '(defaults)'}\n"
        f"      run dir: {job}\n"
        f"      metrics: {job / METRICS}\n"
        f"      best checkpoint: {m.get('best_ckpt')}\n"
        f"      W&B run: {', '.join(wandb_runs) or 'none (logger not wandb)'}"
    )
