"""Print the sbatch script that ``hydra/launcher=submitit_slurm`` would submit, without a cluster.

It composes the training config with the given overrides (as ``python -m vaelab.train -m`` does),
maps ``hydra.launcher`` to submitit parameters exactly as the hydra-submitit-launcher plugin does,
and renders the file with submitit's own ``SlurmExecutor`` for a job array of ``--jobs`` tasks.

    python tests/slurm/slurm_script.py --jobs 4 hydra.launcher.partition=gpu trainer=ddp

Nothing is submitted; the paths in the script point at the sweep dir the overrides give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


def sbatch_text(overrides: list[str], jobs: int) -> str:
    """The sbatch file submitit writes for a sweep of ``jobs`` jobs with these overrides."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmExecutor

    from vaelab.config.resolvers import register
    from vaelab.paths import CONF_DIR

    register()  # the vaelab.* resolvers of the YAML files

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # hydra.job.name: what `python -m vaelab.train` names its jobs
        cfg = compose(config_name="train", overrides=["hydra/launcher=submitit_slurm", "hydra.job.name=train", *overrides], return_hydra_config=True)
    # the ${now:...} in the sweep dir needs Hydra's resolvers; a fixed sweep dir can be passed in
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    folder = params.pop("submitit_folder")
    max_num_timeout = params.pop("max_num_timeout")
    # as hydra_plugins.hydra_submitit_launcher.submitit_launcher.BaseSubmititLauncher.launch
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    auto_params = {k if k in base else f"slurm_{k}": v for k, v in params.items()}
    # SlurmExecutor refuses to start where `srun` is missing (affinity() <= 0): say it is there,
    # since nothing is submitted
    with mock.patch.object(SlurmExecutor, "affinity", classmethod(lambda cls: 1)):
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=max_num_timeout)
        executor.update_parameters(**auto_params)
        slurm: SlurmExecutor = executor._executor
        # as SlurmExecutor._internal_process_submissions does for a job array
        array = SlurmExecutor(slurm.folder, slurm.max_num_timeout)
        array.update_parameters(**slurm.parameters)
    if jobs > 1:
        array.parameters["map_count"] = jobs
    return array._make_submission_file_text(slurm._submitit_command_str, uid="example")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=4, help="jobs in the sweep (the job array's size)")
    p.add_argument("overrides", nargs="*", help="training config overrides, e.g. hydra.launcher.partition=gpu")
    args = p.parse_args()
    print(sbatch_text(args.overrides, args.jobs))


if __name__ == "__main__":
    main()
