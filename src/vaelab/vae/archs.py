"""The model architectures, by the name ``model.arch`` gives: the one list the config check
(:mod:`vaelab.config.schema`) and the training module (:mod:`vaelab.training.module`) both use."""

from __future__ import annotations

from collections.abc import Sequence

from vaelab.vae.choices import ARCH_NAMES, Arch  # noqa: F401  (re-exported: one definition)
from vaelab.vae.conv import ConvVAE
from vaelab.vae.model import VAE, GaussianVAE

# name -> class; every class takes (latent_dim, hidden, log_scale_max) and has the VAE interface
ARCHS: dict[str, type[GaussianVAE]] = {"mlp": VAE, "conv": ConvVAE}
assert tuple(ARCHS) == ARCH_NAMES, "vaelab.vae.choices.ARCH_NAMES must list exactly the classes of ARCHS"


def build_vae(arch: str, latent_dim: int, hidden: Sequence[int], log_scale_max: float) -> GaussianVAE:
    """The network of architecture ``arch`` (``mlp``: :class:`~vaelab.vae.model.VAE`, the report's
    model; ``conv``: :class:`~vaelab.vae.conv.ConvVAE`)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown model.arch {arch!r}; expected one of {ARCH_NAMES}")
    return ARCHS[arch](latent_dim, list(hidden), log_scale_max)
