"""A non-editable install trains: the Hydra configuration ships inside the wheel, and a run from
another folder writes its outputs there (no checkout needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY


@pytest.mark.slow
def test_wheel_installs_and_trains_from_another_folder(tiny_root: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # built from a copy, so the checkout gets no build/ folder; the venv's setuptools builds it (no
    # build isolation: nothing is downloaded)
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "conf", source / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(wheels), "-q"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("vaelab-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert (site / "vaelab" / "conf" / "train.yaml").is_file() and (site / "vaelab" / "conf" / "model" / "vae_mlp.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the installed copy first on the path, ahead of the checkout's editable install
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    where = subprocess.run(
        [sys.executable, "-c", "import vaelab; print(vaelab.__file__, vaelab.__version__)"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert where.stdout.split() == [str(site / "vaelab" / "__init__.py"), "0.1.0"]  # the version from the wheel's metadata
    proc = subprocess.run([sys.executable, "-m", "vaelab.train", "debug=fast_dev_run", f"data.root={tiny_root}", *TINY, "logger=none"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (metrics,) = (elsewhere / "outputs").rglob("metrics.json")  # outputs/ of the folder it ran in
    assert json.loads(metrics.read_text())["epochs"] == 1
    # no checkout, so no commit: the package version from its installed metadata names the code
    info = json.loads((metrics.parent / "run_info.json").read_text())
    assert info["vaelab_version"] == "0.1.0" and info["git_commit"] is None
    assert json.loads(metrics.read_text())["vaelab_version"] == "0.1.0"
