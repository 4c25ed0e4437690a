"""The OmegaConf resolvers our YAML files use, registered in one place.

Every entry point (train, evaluate, report) calls :func:`register` before Hydra composes a config;
registering twice is harmless (``replace=True``).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from vaelab.training.runtime import job_threads

# the shipped configuration: src/vaelab/conf in a checkout, site-packages/vaelab/conf when installed
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def project_root() -> Path:
    """Where ``outputs/`` and ``data/`` go by default: the git checkout this package runs from
    (``src/vaelab/..``), or, for an installed package, the folder the command was typed in."""
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "vaelab").is_dir():
        return checkout
    return Path.cwd()


def gpus_per_node(accelerator: str, devices: object) -> int:
    """GPUs a SLURM job asks for: none when the trainer runs on the CPU (a CPU node refuses any GPU
    request: "Invalid generic resource (gres) specification"), else one per Lightning device
    (``auto`` too: on a cluster it means the GPUs of the partition)."""
    if str(accelerator) == "cpu":
        return 0
    return int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1


def register() -> None:
    """Register ``vaelab.repo_root``, ``vaelab.basename``, ``vaelab.job_threads`` and ``vaelab.gpus_per_node``."""
    OmegaConf.register_new_resolver("vaelab.repo_root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("vaelab.basename", lambda p: os.path.basename(os.path.normpath(str(p))), replace=True)
    OmegaConf.register_new_resolver("vaelab.job_threads", job_threads, replace=True)
    OmegaConf.register_new_resolver("vaelab.gpus_per_node", gpus_per_node, replace=True)
