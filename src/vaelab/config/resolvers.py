"""The OmegaConf resolvers our YAML files use, registered in one place.

Every entry point (train, evaluate, report) calls :func:`register` before Hydra composes a config;
registering twice is harmless (``replace=True``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from omegaconf import OmegaConf

from vaelab.paths import project_root


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which SLURM and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def job_threads(launcher: Any) -> int | None:
    """Default torch threads of one job, from the Hydra launcher config that runs it.

    joblib runs ``n_jobs`` jobs at once on this machine: each gets ``cores // n_jobs`` threads
    (at least 1; ``n_jobs=-1`` means one job per core). submitit gives each job ``cpus_per_task``
    cores. Any other launcher runs one job at a time: None (torch's default, all cores).
    """
    get = launcher.get if hasattr(launcher, "get") else (lambda k, d=None: d)
    target = str(get("_target_", ""))
    if "joblib" in target:
        n_jobs = int(get("n_jobs", 1) or 1)
        cores = usable_cores()
        jobs = cores if n_jobs < 0 else min(n_jobs, cores)
        return max(1, cores // max(1, jobs))
    if get("cpus_per_task", None):  # submitit's launchers (and ours built on its SLURM one)
        return int(get("cpus_per_task"))
    return None


def gpus_per_node(accelerator: str, devices: object) -> int:
    """GPUs a SLURM job asks for: none when the trainer runs on the CPU (a CPU node refuses any GPU
    request: "Invalid generic resource (gres) specification"), else one per Lightning device
    (``auto`` too: on a cluster it means the GPUs of the partition)."""
    if str(accelerator) == "cpu":
        return 0
    return int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1


def steps_per_call(grouped: int, limit_train_batches: Any, fast_dev_run: Any) -> int:
    """Training batches per ``training_step`` call under the speed path: ``grouped``, or 1 when the
    run counts its training batches (``trainer.limit_train_batches`` an int, or ``fast_dev_run``).

    Lightning counts one call as one batch, so with 8 batches a call, ``limit_train_batches=10``
    would train 80; one batch a call keeps every limit a count of batches under both speeds, with
    the same numbers (a short debugging run does not need the speed path's saving)."""
    counts_batches = isinstance(limit_train_batches, int) and not isinstance(limit_train_batches, bool)
    return 1 if counts_batches or fast_dev_run else int(grouped)


def optuna_storage(sweep_dir: str) -> str:
    """``sqlite:///<sweep dir>/optuna.db``, the folder made first: Optuna opens the file before
    Hydra makes the sweep dir."""
    folder = os.path.abspath(str(sweep_dir))
    os.makedirs(folder, exist_ok=True)
    return f"sqlite:///{os.path.join(folder, 'optuna.db')}"


def register() -> None:
    """Register ``vaelab.repo_root``, ``vaelab.basename``, ``vaelab.job_threads``, ``vaelab.gpus_per_node``
    ``vaelab.terminal`` (whether standard output is a terminal: a progress bar, else lines),
    ``vaelab.optuna_storage`` and ``vaelab.steps_per_call``."""
    OmegaConf.register_new_resolver("vaelab.repo_root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("vaelab.basename", lambda p: os.path.basename(os.path.normpath(str(p))), replace=True)
    OmegaConf.register_new_resolver("vaelab.job_threads", job_threads, replace=True)
    OmegaConf.register_new_resolver("vaelab.gpus_per_node", gpus_per_node, replace=True)
    OmegaConf.register_new_resolver("vaelab.terminal", lambda: sys.stdout.isatty(), replace=True)
    OmegaConf.register_new_resolver("vaelab.optuna_storage", optuna_storage, replace=True)
    OmegaConf.register_new_resolver("vaelab.steps_per_call", steps_per_call, replace=True)
