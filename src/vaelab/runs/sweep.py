"""A Hydra callback that ends every multirun with a summary of its jobs.

It lists, per job, its status and where its metrics, best checkpoint and W&B run went, the jobs
refused or never started too, and the counts; unless every job completed it says which did not
and makes the sweep exit non-zero.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vaelab.errors import signal_exit_code
from vaelab.runs.layout import (
    COMPLETED,
    HYDRA_OVERRIDES,
    HYDRA_RECORD,
    METRICS,
    MULTIRUN_RECORD,
    PRUNED,
    STATUS,
    WANDB_DIR,
    expected_jobs,
    read_json,
)
from vaelab.runs.lock import job_status


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep (those holding a ``status.json``), in job order."""
    dirs = [p.parent for p in sweep_dir.glob(f"*/{STATUS}")]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


# the running multirun's scratch folder, made by SweepSummary and named in the environment the
# launcher's workers inherit (not a setting): refused/<job> holds a refused job's error line,
# stopped the signal that stopped the sweep, jobs/<pid> a running job's process, collects that
# the sweep's process (pid in owner) forwards signals to its jobs and prints the summary itself
SCRATCH_ENV = "VAELAB_SWEEP_SCRATCH"


def _scratch(part: str = "") -> Path | None:
    folder = os.environ.get(SCRATCH_ENV)
    return Path(folder) / part if folder and Path(folder).is_dir() else None


def stop_jobs(signal_name: str) -> list[int]:
    """Stop the running multirun (jobs not yet started will not start) and return the pids of its
    running jobs, for the sweep's process to forward ``signal_name`` to."""
    folder = _scratch()
    if folder is None:
        return []
    (folder / "stopped").write_text(signal_name + "\n")
    return [int(p.name) for p in (folder / "jobs").glob("*") if p.name.isdigit() and int(p.name) != os.getpid()]


def stopped_by() -> str | None:
    """The signal that stopped the running multirun, if one did (None outside a multirun)."""
    marker = _scratch("stopped")
    return marker.read_text().strip() if marker is not None and marker.is_file() else None


def in_sweep_process() -> bool:
    """Whether this job runs in the sweep's own process (Hydra's basic launcher, the Optuna sweeper
    on it): an interrupted job there ends the sweep itself."""
    owner = _scratch("owner")
    return owner is not None and owner.read_text().strip() == str(os.getpid())


def sweep_collects_interrupts() -> bool:
    """Whether this job runs in a worker of a sweep whose own process forwards signals to its jobs
    and prints the summary (the joblib launcher): an interrupted job then just returns."""
    marker = _scratch("collects")
    return marker is not None and marker.is_file() and not in_sweep_process()


def collect_interrupts() -> None:
    """Called by a launcher whose process forwards signals to its jobs (:func:`sweep_collects_interrupts`)."""
    folder = _scratch()
    if folder is not None:
        (folder / "collects").touch()


@contextmanager
def job_process() -> Iterator[str | None]:
    """Register this process as a running job of the multirun for the time of the block (so a
    signal to the sweep reaches it); yields the signal that already stopped the sweep, if any:
    such a job must not start. Registered first, checked second, so that a signal that comes
    in between still finds this job."""
    folder = _scratch("jobs")
    if folder is None:
        yield None
        return
    folder.mkdir(exist_ok=True)
    mine = folder / str(os.getpid())
    mine.touch()
    try:
        yield stopped_by()
    finally:
        mine.unlink(missing_ok=True)


def end_stopped_sweep(sweep_dir: Path, signal_name: str, config: DictConfig | None = None) -> NoReturn:
    """A signal stopped the sweep: print its summary and exit with the shell's code for the signal."""
    summarize_sweep(sweep_dir, config)
    print(f"error: the sweep was stopped by {signal_name}; continue it with resume=true and hydra.sweep.dir={sweep_dir}", file=sys.stderr, flush=True)
    _remove_scratch()
    sys.exit(signal_exit_code(signal_name))


def _remove_scratch() -> None:
    folder = _scratch()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    os.environ.pop(SCRATCH_ENV, None)


class SweepSummary(Callback):
    """Print the job table after a multirun; exit 1 unless every job of it completed.

    Refused jobs (their run dir holds another run, or is locked) write nothing into their run dir,
    so they tell this callback through a temporary folder of its own (:func:`record_refusal`),
    the multirun's scratch folder (``SCRATCH_ENV``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SCRATCH_ENV] = tempfile.mkdtemp(prefix="vaelab-sweep-")
        (Path(os.environ[SCRATCH_ENV]) / "owner").write_text(f"{os.getpid()}\n")
        (Path(os.environ[SCRATCH_ENV]) / "refused").mkdir()
        # Hydra rewrites multirun.yaml before any job can refuse: kept to restore if every job does
        record = Path(str(config.hydra.sweep.dir)) / MULTIRUN_RECORD
        self._record = record.read_bytes() if record.is_file() else None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        bad = summarize_sweep(sweep_dir, config)
        folder = _scratch("refused")
        refused = len(list(folder.iterdir())) if folder is not None else 0
        if refused and refused == job_count(config) and getattr(self, "_record", None) is not None:
            (sweep_dir / MULTIRUN_RECORD).write_bytes(self._record)  # nothing ran: the sweep's record stays its own
        _remove_scratch()
        if bad:
            sys.exit(1)


def summarize_sweep(sweep_dir: Path, config: DictConfig | None = None) -> list[str]:
    """:func:`print_summary` with this multirun's refusals and its expected job count (from
    ``config``, else the sweep dir's multirun.yaml): also what an interrupted job prints before the
    sweep stops."""
    folder = _scratch("refused")
    refused = {p.name: p.read_text().strip() for p in folder.iterdir()} if folder is not None else {}
    if config is None and (sweep_dir / MULTIRUN_RECORD).is_file():
        config = OmegaConf.load(sweep_dir / MULTIRUN_RECORD)
    return print_summary(sweep_dir, refused, job_count(config) if config is not None else None)


def record_refusal(job: str, message: str) -> None:
    """Tell the running multirun's summary that job ``job`` was refused (a no-op outside one)."""
    folder = _scratch("refused")
    if folder is not None:
        (folder / str(job)).write_text(message + "\n")


def job_count(config: DictConfig) -> int | None:
    """How many jobs the multirun's command line asked for (:func:`vaelab.runs.layout.expected_jobs`,
    the one reading of it); None for other sweepers (Optuna decides as it goes)."""
    jobs = expected_jobs(config)
    return len(jobs) if jobs is not None else None


def print_summary(sweep_dir: Path, refused: dict[str, str] | None = None, expected: int | None = None) -> list[str]:
    """Print one block per job of ``sweep_dir`` (status, numbers, where its files are), refused and
    never-started jobs included, then the counts; returns the jobs that did not complete (pruned
    trials of a search did: their pruner ended them), after an ``error:`` line naming them."""
    refused = refused or {}
    jobs = {p.name: p for p in job_dirs(sweep_dir)}
    names = sorted({*jobs, *refused, *(str(i) for i in range(expected or 0))}, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
    counts: dict[str, int] = {}
    bad = []
    print(f"\nsweep {sweep_dir}: {len(names)} job(s)", flush=True)
    for name in names:
        if name in refused:
            state, line = "refused", f"  {name}: REFUSED {refused[name]}"
        elif name not in jobs:
            state, line = "not started", f"  {name}: NOT STARTED (re-run the sweep with resume=true to run it)"
        else:
            state = job_status(jobs[name]).get("status", "unknown")
            line = describe_job(jobs[name], prefix=f"  {name}: ")
        counts[state] = counts.get(state, 0) + 1
        if state not in (COMPLETED, PRUNED):  # a pruned trial ended as its search meant it to
            bad.append(name)
        print(line, flush=True)
    print("  " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: kv[0] != COMPLETED)), flush=True)
    if bad:
        print(f"error: {len(bad)} of {len(names)} job(s) did not complete: {', '.join(bad)} (see their status.json)", file=sys.stderr, flush=True)
    return bad


def describe_job(job: Path, prefix: str = "") -> str:
    """What became of one run: its settings, minimal val/loss with its epoch and stop reason, test
    loss, and where its metrics, best checkpoint and W&B run are. The end of every run prints it,
    and a multirun's summary prints it per job."""
    status = job_status(job)
    state = status.get("status", "unknown")
    if state not in (COMPLETED, PRUNED) or not (job / METRICS).is_file():
        return f"{prefix}{state.upper()} {status.get('error', '')}".rstrip()
    if state == PRUNED:
        prefix += f"PRUNED {status.get('reason', 'by the search pruner')}: "
    m = read_json(job / METRICS)
    wandb_runs = sorted(str(p) for p in (job / WANDB_DIR).glob("*run-*") if p.is_dir())
    overrides = job / HYDRA_RECORD / HYDRA_OVERRIDES
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
