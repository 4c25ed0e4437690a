"""vaelab's SLURM launcher: the submitit plugin's ``SlurmLauncher``, with an sbatch refusal as one
``error:`` line naming the ``hydra.launcher.*`` key to change (exit 2, no job submitted). It lives
here because Hydra only instantiates launchers from the ``hydra_plugins`` package; the logic is in
:mod:`vaelab.config.sbatch`. ``hydra/launcher=submitit_slurm`` points ``_target_`` at this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _PluginSlurmLauncher

from vaelab.config.sbatch import is_refusal, quiet_sbatch, refusal_error
from vaelab.config.validate import exit_with


class SlurmLauncher(_PluginSlurmLauncher):
    """The plugin's SLURM launcher; a refused submission ends the sweep with one line (exit 2)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from submitit.core.utils import FailedJobError

        try:
            with quiet_sbatch():
                return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as err:
            if not is_refusal(str(err)):
                raise
            exit_with(refusal_error(str(err)))
