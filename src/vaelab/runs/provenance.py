"""Where a number came from: git commit, dirty work tree, package versions, machine."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from vaelab.paths import checkout_root

PACKAGES = ("vaelab", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "wandb")


def _git(*args: str) -> str | None:
    """A git command run in the checkout this package runs from; None outside a checkout."""
    root = checkout_root()
    if root is None:
        return None
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """The checked-out commit of the repo this package runs from, or None outside a git checkout."""
    return _git("rev-parse", "HEAD")


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour a result depends on."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> str:
    """A short description of the machine: CPU model or architecture, core count, OS, and GPU if any."""
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}{gpu}"


def provenance() -> dict[str, object]:
    """Everything above in one dict, for run dirs and W&B run configs. The package version comes
    from its installed metadata, so a run made with ``pip install .`` (no checkout, no commit) still
    names the code that made it."""
    versions = package_versions()
    return {
        "vaelab_version": versions["vaelab"],
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "versions": versions,
        "python": platform.python_version(),
        "machine": machine(),
    }
