"""Using a trained model: the Python API (vaelab.runs.trained) and the vaelab-sample command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, TINY, train_in_process


def _cli(module: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ckpt(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a 2-epoch run on tiny data (d = 2)."""
    run = tmp_path_factory.mktemp("sample_run")
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    return best


def test_api_encodes_decodes_and_samples(ckpt: Path) -> None:
    from vaelab.runs import trained

    vae = trained.load(ckpt)
    assert not vae.training and vae.latent_dim == 2
    codes = trained.encode_split(ckpt, split="test")
    assert codes["m"].shape == codes["log_scale"].shape == (200, 2) and codes["labels"].shape == (200,)  # tiny_root: 200 test images
    # the network's own encoder over the run's test split, in any batch size
    from vaelab.runs.reading import datamodule_for_run

    again, _ = trained.encode(vae, datamodule_for_run(ckpt.parent.parent).splits["test"], batch_size=7)
    assert torch.allclose(again, codes["m"], atol=1e-5)
    images = trained.decode(vae, codes["m"][:5])
    assert images.shape == (5, 784) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    a, b = trained.prior_samples(vae, 9, seed=3), trained.prior_samples(vae, 9, seed=3)
    assert a.shape == (9, 784) and torch.equal(a, b) and not torch.equal(a, trained.prior_samples(vae, 9, seed=4))


def test_command_writes_latents_samples_and_grid(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli("vaelab.sample", f"ckpt_path={ckpt}", "split=val", "n_samples=16", "grid_steps=5", f"out={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["latent_grid.png", "latents_val.pt", "samples.png"]
    latents = torch.load(out / "latents_val.pt")
    assert latents["m"].shape == (100, 2)  # TINY: data.val_size=100
    from PIL import Image

    assert Image.open(out / "samples.png").size == (4 * 30 + 2, 4 * 30 + 2)  # 4 x 4 tiles of 28 px, 2 px padding
    assert Image.open(out / "latent_grid.png").size == (5 * 30 + 2, 5 * 30 + 2)
    assert f"latents: {out / 'latents_val.pt'}" in proc.stdout


def test_command_errors_are_one_line(ckpt: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for args, start in (
        ((f"ckpt_path={tmp_path / 'none.ckpt'}",), "error: ckpt_path="),
        ((f"ckpt_path={ckpt}", "split=train2"), "error: split=train2 is not a split"),
        ((f"ckpt_path={ckpt}", f"out={blocker / 'sub'}"), "error: out="),
    ):
        proc = _cli("vaelab.sample", *args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert proc.stderr.strip().splitlines()[-1].startswith(start) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (blocker.parent / "samples").exists()
