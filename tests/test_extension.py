"""A model added outside the package: one class and one YAML, no file of vaelab edited.

The class sits in a module on a temp path, its YAML in a folder added to Hydra's search path, as
docs/architecture.md ("Recipes") tells a user to do. Training and evaluation are called in process
(the module's folder put on ``sys.path``, as ``PYTHONPATH`` would); the error line of a wrong
``model.net`` comes from the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY, evaluate_in_process, model_outside, train_in_process

# a network the package does not ship: the report's MLP with tanh between its layers
MODULE = """
from torch import nn

from vaelab.vae.model import IMAGE_PIXELS, GaussianVAE


def _tanh_mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class TanhVAE(GaussianVAE):
    def __init__(self, latent_dim, hidden=(64,), log_scale_max=10.0):
        super().__init__(latent_dim, log_scale_max)
        self.encoder = _tanh_mlp([IMAGE_PIXELS, *hidden, 2 * self.latent_dim])
        self.decoder = _tanh_mlp([self.latent_dim, *reversed(list(hidden)), IMAGE_PIXELS])
"""

# the model's YAML: the shipped MLP's keys, with this network
YAML = """
# a model of my own: the shipped MLP's settings, with my network
defaults:
  - vae_mlp
  - _self_
# my network class, by import path
net: my_vae.TanhVAE
"""


@pytest.fixture()
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding my_vae.py and conf/model/my_vae.yaml, outside the package, on ``sys.path`` for this test."""
    return model_outside(tmp_path, monkeypatch, "my_vae", MODULE, "my_vae", YAML)


def _train(outside: Path, tiny_root: Path, run_dir: Path, *extra: str):
    args = [
        "model=my_vae",
        f"hydra.searchpath=[file://{outside / 'conf'}]",
        f"data.root={tiny_root}",
        *TINY,
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    return train_in_process(*args, *extra, env={"WANDB_MODE": "disabled"})


def test_a_model_outside_the_package_trains_with_fast_dev_run(outside: Path, tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _train(outside, tiny_root, run, "debug=fast_dev_run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["net"] == "my_vae.TanhVAE"
    assert metrics["epochs"] == 1 and metrics["history"][0]["val/loss"] > 0
    recorded = json.loads((run / "run_info.json").read_text())["config"]["model"]
    assert recorded["net"] == "my_vae.TanhVAE" and recorded["hidden"] == [32]  # TINY's width, through the shipped defaults


def test_its_checkpoint_loads_and_evaluates_without_the_config(outside: Path, tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _train(outside, tiny_root, run, "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = json.loads((run / "metrics.json").read_text())["best_ckpt"]
    # no config, no Hydra: the checkpoint names its network (my_vae forgotten: loading imports it again)
    from vaelab.runs.reading import load_module

    del sys.modules["my_vae"]
    m = load_module(ckpt)
    assert (type(m.vae).__module__, type(m.vae).__name__) == ("my_vae", "TanhVAE")
    assert sum(isinstance(x, torch.nn.Tanh) for x in m.vae.modules()) == 2  # tanh after the encoder's and the decoder's hidden layer
    out = tmp_path / "eval.json"
    evaluated = evaluate_in_process(f"ckpt_path={ckpt}", "k=2", f"out={out}", f"data.root={tiny_root}", env={"WANDB_MODE": "disabled"})
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["test_iw_nll"] > 0 and result["k"] == 2


def test_a_wrong_net_path_is_one_error_line(tiny_root: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vaelab.train", "model.net=vaelab.vae.model.NoSuchVAE", f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'r'}"],
        cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        lines == [lines[-1]] and lines[-1].startswith("error: model.net=vaelab.vae.model.NoSuchVAE is invalid: ") and "Traceback" not in proc.stderr
    )
