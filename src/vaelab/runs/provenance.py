"""Where a number came from: git commit, dirty work tree, package versions, the whole installed
environment beside the lock file, machine."""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from vaelab.paths import checkout_root

# the lock file of the committed results' environment, at the top of a checkout (`make` installs it)
LOCK_FILE = "requirements.lock"
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


def _canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503): ``PyYAML`` and ``pyyaml`` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> dict[str, str]:
    """Every distribution installed in this interpreter, by canonical name: the environment a run saw."""
    return dict(sorted((_canonical(d.metadata["Name"]), d.version) for d in metadata.distributions() if d.metadata["Name"]))


def environment() -> dict[str, object]:
    """The whole environment (:func:`installed_distributions`) and how it stands to the checkout's
    lock file: its SHA-256 and each locked package installed at another version or missing
    (``{name: [locked, installed]}``; empty when the run's environment is the lock's). Outside a
    checkout (a wheel install) there is no lock: ``lock_sha256`` is None."""
    installed = installed_distributions()
    root = checkout_root()
    lock = root / LOCK_FILE if root is not None else None
    if lock is None or not lock.is_file():
        return {"packages": installed, "lock_sha256": None, "lock_differences": None}
    text = lock.read_text()
    locked = dict(line.split("==", 1) for line in text.splitlines() if "==" in line and not line.startswith("#"))
    differences = {name: [version, installed.get(_canonical(name))] for name, version in locked.items() if installed.get(_canonical(name)) != version}
    return {"packages": installed, "lock_sha256": hashlib.sha256(text.encode()).hexdigest(), "lock_differences": differences}


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
