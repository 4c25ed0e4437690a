"""The VAE objective: reconstruction terms and the two latent penalties.

Every function returns one value per image (shape ``[batch]``), summed over pixels or latent
coordinates. Averaging over images is left to the caller, so that epoch means can be weighted by
the number of images (the pytorch/examples convention: nats per image).

Notation follows the derivation report: the encoder gives ``m`` (mean) and ``s`` = σ, the *log* of
the noise scale, and eq. 2 samples ``c = m + exp(σ) · e`` with ``e ~ N(0, I)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab.vae.choices import KL_FORMS, RECON_FORMS, KlForm, ReconForm  # noqa: F401  (re-exported: one definition)


def paper_penalty(m: Tensor, log_scale: Tensor) -> Tensor:
    """Eq. 3 of the report, exactly as written: ``Σ_i (exp(σ_i) − (1 + σ_i) + m_i²)``.

    It is zero at the prior (m = 0, σ = 0) and non-negative, but it is *not* the KL divergence of
    eq. 2's posterior N(m, exp(σ)²) from N(0, I): compare :func:`analytic_kl`. Units: nats-like
    penalty per image.
    """
    return (torch.exp(log_scale) - (1.0 + log_scale) + m.square()).sum(dim=-1)


def analytic_kl(m: Tensor, log_scale: Tensor) -> Tensor:
    """Exact KL(N(m, exp(σ)²) || N(0, I)) = ``½ Σ_i (exp(2σ_i) − 1 − 2σ_i + m_i²)``, nats per image."""
    return 0.5 * (torch.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale + m.square()).sum(dim=-1)


def penalty(m: Tensor, log_scale: Tensor, kl: KlForm) -> Tensor:
    """The latent penalty selected by ``model.kl``: ``paper`` (eq. 3) or ``analytic`` (exact KL)."""
    if kl == "paper":
        return paper_penalty(m, log_scale)
    if kl == "analytic":
        return analytic_kl(m, log_scale)
    raise ValueError(f"unknown kl form {kl!r}; expected one of {KL_FORMS}")


def reconstruction(logits: Tensor, x: Tensor, recon: ReconForm) -> Tensor:
    """Reconstruction loss per image, summed over the 784 pixels.

    ``bce``: Bernoulli negative log-likelihood of pixels in [0, 1] given decoder logits (nats per
    image; for non-binary pixels it is the cross-entropy, not a normalised likelihood).
    ``mse``: summed squared error between ``sigmoid(logits)`` and ``x`` (not in nats).
    """
    if recon == "bce":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)
    if recon == "mse":
        return (torch.sigmoid(logits) - x).square().sum(dim=-1)
    raise ValueError(f"unknown reconstruction {recon!r}; expected one of {RECON_FORMS}")


@dataclass
class LossTerms:
    """Per-image terms of one batch (each shape ``[batch]``)."""

    loss: Tensor  # recon + beta * penalty: the objective being optimised
    recon: Tensor  # reconstruction term
    kl: Tensor  # the penalty in use (eq. 3 or the exact KL, per model.kl)
    nelbo: Tensor  # recon + exact KL, whatever model.kl is, so numbers stay comparable


def vae_loss(
    logits: Tensor,
    x: Tensor,
    m: Tensor,
    log_scale: Tensor,
    *,
    kl: KlForm = "paper",
    recon: ReconForm = "bce",
    beta: float = 1.0,
) -> LossTerms:
    """Compute all terms of the objective, per image.

    ``loss = recon + beta * penalty`` with ``penalty`` chosen by ``kl``; ``nelbo`` always uses the
    exact KL, so a ``paper`` run can be compared with an ``analytic`` one on the same scale. With
    ``recon='bce'`` nelbo is the negative ELBO in nats per image.
    """
    rec = reconstruction(logits, x, recon)
    exact = analytic_kl(m, log_scale)
    pen = exact if kl == "analytic" else penalty(m, log_scale, kl)
    return LossTerms(loss=rec + beta * pen, recon=rec, kl=pen, nelbo=rec + exact)
