"""vaelab's joblib launcher: the plugin's ``JoblibLauncher``, with signals handled as a sweep needs.

The plugin leaves SIGTERM and Ctrl-C to Python's defaults: the sweep's process dies at once (or
prints joblib's ``KeyboardInterrupt`` traceback), its loky workers train on as orphans, and a job
killed before Lightning's handler is up keeps ``running`` in its ``status.json``. Here the sweep's
process stops the jobs not yet started, forwards the signal to the running ones, waits for them to
record ``interrupted``, prints the sweep's summary and exits with the signal's status (130 or 143).
The logic is in :mod:`vaelab.runs.signals` and :mod:`vaelab.runs.sweep`;
``hydra/launcher=joblib`` points ``_target_`` at this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as _PluginJoblibLauncher

from vaelab.errors import warn
from vaelab.runs.signals import forwarding_signals
from vaelab.runs.sweep import collect_interrupts, end_stopped_sweep, stop_jobs


class JoblibLauncher(_PluginJoblibLauncher):
    """The plugin's joblib launcher; a signal to the sweep reaches every running job and ends the
    sweep with its summary."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        assert self.config is not None
        collect_interrupts()
        with forwarding_signals(stop_jobs) as received:
            try:
                runs = super().launch(job_overrides, initial_job_idx)
            except BaseException as exc:
                if not received:
                    raise
                # e.g. a worker the signal reached between two jobs: it died, and joblib says so
                warn(f"while the sweep stopped: {type(exc).__name__}: {exc}")
        if received:
            end_stopped_sweep(Path(str(self.config.hydra.sweep.dir)), received[0], self.config)
        return runs
