"""What a trained VAE shows: its codes for a set of images, the images it decodes from codes, its
prior's samples, and the image grids of these that training logs and ``vaelab.sample`` writes.

One home for these views, used by the training callbacks (image panels every few epochs), the
report's figures, the sample command (:mod:`vaelab.runs.trained`) and the notebook, so that a
reconstruction or a latent grid is computed the same way wherever it is shown. It sits in ``vae/``
because it needs nothing but the network and torch (torchvision draws the grids): no Lightning,
no Hydra, no run dir, so every layer above may use it and a reader can call it on any
:class:`~vaelab.vae.model.GaussianVAE`.

Images are pixel means in [0, 1] (``sigmoid`` of the decoder's Bernoulli logits), ``[n, 784]``;
codes are ``[n, latent_dim]``; grids are ``[3, H, W]`` in [0, 1], 28 x 28 tiles with 2 white
pixels between them. Every function runs without gradients, on the network's device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.utils import make_grid

# the image panels training draws (W&B keys images/<name>, PNGs <name>_epochNNN.png)
PANELS = ("reconstructions", "samples", "latent_grid")
# images per row of the reconstruction panel: originals over their reconstructions
RECON_ROW = 8


def _device(vae: nn.Module) -> torch.device:
    return next(vae.parameters()).device


@torch.no_grad()
def encode(vae: nn.Module, images: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """``(m, σ)`` of eq. 2's posterior for ``images`` (``[n, 784]`` in [0, 1]), each ``[n, d]``,
    ``batch_size`` images at a time (a whole split at once would hold every hidden activation)."""
    device = _device(vae)
    parts = [vae.encode(images[i : i + batch_size].to(device)) for i in range(0, images.shape[0], batch_size)]
    return torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])


@torch.no_grad()
def decode(vae: nn.Module, codes: Tensor) -> Tensor:
    """Pixel means ``[n, 784]`` in [0, 1] of latent codes ``[n, d]``."""
    return torch.sigmoid(vae.decode(codes.to(_device(vae))))


def reconstruct(vae: nn.Module, images: Tensor) -> Tensor:
    """Reconstructions of ``images``: the decoded pixel means at the encoder means ``m`` (no noise)."""
    return decode(vae, encode(vae, images)[0])


def prior_samples(vae: nn.Module, n: int, seed: int = 0) -> Tensor:
    """``n`` images decoded from draws of the prior N(0, I), seeded (a generator on the network's
    device: the same seed gives the same images on that device)."""
    return vae.sample(n, generator=torch.Generator(device=_device(vae)).manual_seed(int(seed)))


def latent_grid(latent_dim: int, steps: int, span: float = 0.95) -> Tensor:
    """Latent points spaced by the prior's quantiles: a ``steps x steps`` plane (d=2) or a line (d=1).

    Points are ``Φ⁻¹(u)`` for ``u`` evenly spaced in ``[(1-span)/2, (1+span)/2]``, so each step
    covers an equal share of the prior's mass. Returns ``[steps**d, d]``; d=2 rows are ordered so a
    grid image has c₁ increasing to the right and c₂ increasing upwards.
    """
    u = torch.linspace((1 - span) / 2, (1 + span) / 2, steps)
    q = torch.distributions.Normal(0.0, 1.0).icdf(u)
    if latent_dim == 1:
        return q[:, None]
    if latent_dim == 2:
        c2, c1 = torch.meshgrid(q.flip(0), q, indexing="ij")
        return torch.stack([c1.reshape(-1), c2.reshape(-1)], dim=1)
    raise ValueError(f"latent_grid is defined for latent_dim 1 or 2, got {latent_dim}")


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """``[n, 784]`` images as one picture, ``nrow`` tiles per row, white between them (``[3, H, W]``)."""
    return make_grid(images.reshape(-1, 1, 28, 28), nrow=nrow, pad_value=1.0)


def generated_panels(vae: nn.Module, n_samples: int, steps: int, seed: int) -> dict[str, Tensor]:
    """The grids that need no data: ``samples`` (``n_samples`` seeded prior draws, in a square
    when ``n_samples`` is a square number) and, for d = 1 or 2, ``latent_grid`` (the decoder over
    :func:`latent_grid`'s points, ``steps`` per row)."""
    panels = {"samples": image_grid(prior_samples(vae, n_samples, seed), nrow=max(1, int(n_samples**0.5)))}
    if vae.latent_dim in (1, 2):
        panels["latent_grid"] = image_grid(decode(vae, latent_grid(vae.latent_dim, steps)), nrow=steps)
    return panels


def image_panels(vae: nn.Module, images: Tensor, n_samples: int, steps: int, seed: int) -> dict[str, Tensor]:
    """The :data:`PANELS` training draws: ``reconstructions`` (the first :data:`RECON_ROW` of
    ``images`` over their reconstructions), then :func:`generated_panels`."""
    nrow = min(RECON_ROW, images.shape[0])
    originals = images[:nrow].to(_device(vae))
    pairs = torch.cat([originals, reconstruct(vae, originals)])
    return {"reconstructions": image_grid(pairs, nrow=nrow), **generated_panels(vae, n_samples, steps, seed)}
