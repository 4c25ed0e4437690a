"""The fully connected VAE of the derivation report, as a plain ``nn.Module`` (no Lightning here).

Encoder: image (784 pixels in [0, 1]) -> hidden ReLU layers -> ``m`` and ``σ`` (log noise scale).
Decoder: latent ``c`` -> mirrored hidden layers -> 784 Bernoulli logits.

:class:`GaussianVAE` holds what every architecture shares (eq. 2, the σ clamp, sampling); an
architecture only builds ``encoder`` and ``decoder`` (:mod:`vaelab.vae.conv` is the other one;
:mod:`vaelab.vae.nets` finds one by its import path, ``model.net``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

IMAGE_PIXELS = 28 * 28


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GaussianVAE(nn.Module):
    """The latent interface shared by every architecture: ``encode(x) -> (m, σ)``, ``decode(c) ->
    logits [..., 784]``, ``forward(x, noise)`` and ``sample``. Subclasses build ``self.encoder``
    (``[batch, 784] -> [batch, 2 * latent_dim]``) and ``self.decoder``.

    Args:
        latent_dim: size of the latent code ``c``.
        log_scale_max: σ is clamped to ``[-log_scale_max, log_scale_max]`` so that ``exp(σ)`` and
            ``exp(2σ)`` stay finite in fp32 even if training diverges.
    """

    encoder: nn.Module
    decoder: nn.Module

    def __init__(self, latent_dim: int, log_scale_max: float = 10.0):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.log_scale_max = float(log_scale_max)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(m, σ)``, each ``[batch, latent_dim]``; σ is the log of the noise scale."""
        m, log_scale = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return m, log_scale.clamp(-self.log_scale_max, self.log_scale_max)

    def decode(self, c: Tensor) -> Tensor:
        """Return Bernoulli logits ``[..., 784]`` for latent codes ``c`` (``[..., latent_dim]``: any
        leading dims, as :mod:`vaelab.vae.likelihood` decodes ``[draws, batch, latent_dim]``)."""
        return self.decoder(c)

    @staticmethod
    def reparameterize(m: Tensor, log_scale: Tensor, noise: Tensor) -> Tensor:
        """Eq. 2: ``c = m + exp(σ) · e`` for given standard-normal noise ``e``."""
        return m + torch.exp(log_scale) * noise

    def forward(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample with eq. 2 and decode; returns ``(logits, m, σ, c)``.

        ``noise`` (``[batch, latent_dim]``) makes the pass deterministic; by default it is drawn
        from the global torch generator.
        """
        m, log_scale = self.encode(x)
        if noise is None:
            noise = torch.randn_like(m)
        c = self.reparameterize(m, log_scale, noise)
        return self.decode(c), m, log_scale, c

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws from the prior N(0, I); returns pixel means ``[n, 784]`` in [0, 1]."""
        device = next(self.parameters()).device
        c = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return torch.sigmoid(self.decode(c))


class VAE(GaussianVAE):
    """Gaussian-latent VAE with an MLP encoder and decoder.

    Args:
        latent_dim: size of the latent code ``c`` (the report studies 1 and 2).
        hidden: encoder hidden sizes, e.g. ``[400]`` (pytorch/examples) or ``[256, 128]``; the
            decoder mirrors them; ``[]``: a linear encoder and decoder. The MLP takes no argument of
            its own (``model.net_args`` stays ``{}``).
        log_scale_max: σ is clamped to ``[-log_scale_max, log_scale_max]`` so that ``exp(σ)`` and
            ``exp(2σ)`` stay finite in fp32 even if training diverges.
    """

    def __init__(self, latent_dim: int, hidden: Sequence[int] = (400,), log_scale_max: float = 10.0):
        super().__init__(latent_dim, log_scale_max)
        self.hidden = [int(h) for h in hidden]
        self.encoder = _mlp([IMAGE_PIXELS, *self.hidden, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim, *reversed(self.hidden), IMAGE_PIXELS])
        # The encoder's last layer also feeds ReLU-free outputs; keep PyTorch's default init.
