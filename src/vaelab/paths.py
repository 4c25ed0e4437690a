"""Where vaelab's own files are: the Hydra configuration it ships and the checkout it runs from.

One definition each: the entry points, the config checks, the report and the provenance record
all ask here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# the shipped configuration: conf/ at the top of a checkout (the package vaelab.conf is the link
# src/vaelab/conf -> ../../conf), site-packages/vaelab/conf when installed from a wheel
CONF_DIR = Path(str(resources.files("vaelab.conf")))


def checkout_root() -> Path | None:
    """The git checkout this package runs from (``src/vaelab/..``), or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "vaelab").is_dir() else None


def project_root() -> Path:
    """Where ``outputs/`` and ``data/`` go by default: the checkout, or, for an installed package,
    the folder the command was typed in."""
    return checkout_root() or Path.cwd()
