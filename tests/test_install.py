"""Installs to rely on: pyproject.toml's ranges, requirements.lock's exact environment (what `make`
installs), and every run naming the environment it ran in beside the lock's hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata

import tomllib
from packaging.requirements import Requirement

from conftest import REPO, TINY, train_in_process

LOCK = REPO / "requirements.lock"


def locked() -> dict[str, str]:
    return {Requirement(line).name.lower(): line.split("==", 1)[1] for line in LOCK.read_text().splitlines() if line and not line.startswith("#")}


def test_the_lock_satisfies_pyproject_and_pins_every_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = locked()
    unmet = [f"{r} (lock: {pins.get(r.name.lower())})" for r in wanted if pins.get(r.name.lower()) is None or pins[r.name.lower()] not in r.specifier]
    assert unmet == [], "requirements.lock does not satisfy pyproject.toml: `make lock` after installing"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"  # the pair of the committed results
    torch_range = next(r for r in wanted if r.name == "torch")
    assert "2.14.1" in torch_range.specifier and "2.15.0" in torch_range.specifier  # a range, not one build


def test_make_installs_the_lock_then_vaelab_without_dependencies():
    dry = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "pip install --quiet -r requirements.lock" in dry and 'pip install --quiet --no-deps -e ".[dev]"' in dry
    assert dry.index("-r requirements.lock") < dry.index("--no-deps")


def test_a_run_records_the_whole_environment_beside_the_lock(tiny_root, tmp_path):
    ran = train_in_process(f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path}")
    assert ran.returncode == 0, ran.stderr[-2000:]
    env = json.loads((tmp_path / "run_info.json").read_text())["environment"]
    assert env["packages"]["torch"] == metadata.version("torch") and env["packages"]["hydra-core"] == metadata.version("hydra-core")
    assert len(env["packages"]) >= len(locked())  # all installed distributions, not a chosen few
    assert env["lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    for name, (pinned, installed) in env["lock_differences"].items():  # empty where `make` built the environment
        assert locked()[name.lower()] == pinned and installed != pinned
