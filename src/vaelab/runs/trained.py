"""Using a trained model: load a checkpoint, encode a data split to latent codes, decode latent
points, draw samples from the prior. The Python API behind ``vaelab-sample``; the notebook uses it.

    from vaelab.runs import trained
    vae = trained.load("outputs/runs/<time>/checkpoints/best-epoch040.ckpt")   # nn.Module, eval mode
    codes = trained.encode_split("outputs/runs/<time>/checkpoints/best-epoch040.ckpt", split="test")
    images = trained.decode(vae, codes["m"][:8])                              # [8, 784] in [0, 1]
    samples = trained.prior_samples(vae, 64, seed=0)                          # [64, 784] in [0, 1]

Images are pixel means (``sigmoid`` of the decoder's Bernoulli logits), ``[n, 784]`` in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaelab.runs.layout import GRID_PNG, LATENTS, SAMPLES_PNG
from vaelab.runs.reading import datamodule_for_run, load_module, require_checkpoint, run_dir_of


def load(ckpt_path: str | Path) -> Any:
    """The network (:class:`~vaelab.vae.model.GaussianVAE`) of a checkpoint, on the CPU, in eval
    mode; the checkpoint names its class, so no config is needed."""
    return load_module(ckpt_path).vae


@torch.no_grad()
def encode(vae: Any, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """``(m, σ)`` of eq. 2's posterior for ``images`` (``[n, 784]`` in [0, 1]), each ``[n, d]``."""
    parts = [vae.encode(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    return torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])


def encode_split(ckpt_path: str | Path, split: str = "test", data_root: str | Path | None = None) -> dict[str, Tensor]:
    """Encode a split (``train``, ``val`` or ``test``) prepared as in the run's training (its data
    set, binarisation and split, from run_info.json): ``{"m", "log_scale", "labels"}``."""
    path = require_checkpoint(ckpt_path)
    dm = datamodule_for_run(run_dir_of(path), root=data_root)
    m, log_scale = encode(load(path), dm.splits[split])
    return {"m": m, "log_scale": log_scale, "labels": dm.labels[split]}


@torch.no_grad()
def decode(vae: Any, codes: Tensor) -> Tensor:
    """Pixel means ``[n, 784]`` in [0, 1] of latent codes ``[n, d]``."""
    return torch.sigmoid(vae.decode(codes))


@torch.no_grad()
def prior_samples(vae: Any, n: int, seed: int = 0) -> Tensor:
    """``n`` images decoded from draws of the prior N(0, I), seeded."""
    return vae.sample(n, generator=torch.Generator().manual_seed(int(seed)))


def write_samples(ckpt_path: str | Path, out: Path, split: str = "test", n_samples: int = 64, grid_steps: int = 20, seed: int = 0,
                  data_root: str | Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Write ``latents_<split>.pt`` (the split's ``m``, ``log_scale`` and labels), ``samples.png``
    (``n_samples`` prior draws) and, for d = 1 or 2, ``latent_grid.png`` (the decoder over the prior's
    quantiles) into ``out``; returns the files written."""
    from torchvision.utils import make_grid, save_image

    from vaelab.training.callbacks import latent_grid

    vae = load(ckpt_path)
    out.mkdir(parents=True, exist_ok=True)
    files = {"latents": out / LATENTS.format(split=split), "samples": out / SAMPLES_PNG}
    torch.save(encode_split(ckpt_path, split, data_root), files["latents"])
    grid = make_grid(prior_samples(vae, n_samples, seed).view(-1, 1, 28, 28), nrow=max(1, int(n_samples**0.5)), pad_value=1.0)
    save_image(grid, files["samples"])
    if vae.latent_dim in (1, 2):
        files["latent_grid"] = out / GRID_PNG
        decoded = decode(vae, latent_grid(vae.latent_dim, grid_steps)).view(-1, 1, 28, 28)
        save_image(make_grid(decoded, nrow=grid_steps, pad_value=1.0), files["latent_grid"])
    return files
