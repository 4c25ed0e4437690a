"""vaelab's SLURM launcher: the submitit plugin's ``SlurmLauncher``, with

- an sbatch refusal as one ``error:`` line naming the ``hydra.launcher.*`` key to change (exit 2,
  no job submitted; the logic is in :mod:`hydra_plugins.vaelab_launcher.sbatch`);
- a job that left the queue without a result (``scancel``, a node failure) noticed even where the
  cluster keeps no accounting: submitit reads job states from ``sacct`` only, and where ``sacct``
  fails it waits for such a job forever, warning "Bypassing sacct error" every few minutes. Here
  ``squeue`` answers then; the sweep waits for its other jobs and ends with its summary (exit 1).

It lives here because Hydra only instantiates launchers from the ``hydra_plugins`` package;
``hydra/launcher=submitit_slurm`` points ``_target_`` at this class.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginSlurmLauncher
from submitit.slurm.slurm import SlurmInfoWatcher

from hydra_plugins.vaelab_launcher.sbatch import is_refusal, quiet_sbatch, refusal_error
from vaelab.config.validate import exit_with
from vaelab.errors import warn

# seconds between two squeue calls: submitit asks for a job's state every second while it waits
SQUEUE_EVERY_S = 10.0


class _SacctRefusals(logging.Filter):
    """Drops submitit's "Bypassing sacct error" warnings (one every few seconds, then minutes,
    while it waits) after saying once that the states come from squeue instead."""

    said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if not self.said:
            self.said = True
            warn(f"sacct failed ({record.getMessage().split('error ', 1)[-1].split(', status')[0]}): job states come from squeue")
        return False


class QueueWatcher(SlurmInfoWatcher):
    """submitit's watcher, falling back on ``squeue`` for a job ``sacct`` knows nothing of: a job
    ``squeue`` no longer lists has ended (state ``LEFT_QUEUE``)."""

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s=delay_s)
        self.job_ids: list[str] = []
        self._queue: set[str] = set()
        self._queue_time = float("-inf")

    def register_job(self, job_id: str) -> None:
        super().register_job(job_id)
        if job_id not in self.job_ids:
            self.job_ids.append(job_id)

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        state = super().get_state(job_id, mode=mode)
        if state != "UNKNOWN":
            return state
        if mode == "force" or time.monotonic() - self._queue_time > SQUEUE_EVERY_S:
            listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
            if listed.returncode != 0:  # neither sacct nor squeue: submitit's own behaviour (wait)
                return state
            self._queue, self._queue_time = set(listed.stdout.split()), time.monotonic()
        return state if job_id in self._queue else "LEFT_QUEUE"

    def wait_all(self) -> None:
        """Wait until every job this sweep submitted has ended."""
        while not all(self.is_done(j) for j in self.job_ids):
            time.sleep(2)


class SlurmLauncher(_PluginSlurmLauncher):
    """The plugin's SLURM launcher; a refused submission ends the sweep with one line (exit 2), a
    job that ended without a result with the sweep's summary (exit 1)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from submitit.core.utils import FailedJobError, UncompletedJobError
        from submitit.slurm.slurm import SlurmJob

        from vaelab.runs.sweep import summarize_sweep

        assert self.config is not None
        watcher = QueueWatcher()
        logging.getLogger("submitit").addFilter(_SacctRefusals())
        SlurmJob.watcher = watcher  # submitit's documented place for it: a class attribute of its job class
        try:
            with quiet_sbatch():
                return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as err:
            if is_refusal(str(err)):
                exit_with(refusal_error(str(err)))
            failure: Exception = err
        except UncompletedJobError as err:
            failure = err
        # a job ended without returning (cancelled, killed, crashed outside Python): its status.json
        # says how far it came; the other jobs run on, and the summary waits for them
        warn(f"{' '.join(str(failure).splitlines()[:2])}; waiting for the sweep's other jobs")
        watcher.wait_all()
        if summarize_sweep(Path(str(self.config.hydra.sweep.dir)), self.config):
            sys.exit(1)
        return []
