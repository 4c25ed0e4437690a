"""The VAE objective: reconstruction terms and the two latent penalties.

Every function returns one value per image (shape ``[batch]``), summed over pixels or latent
coordinates. Averaging over images is left to the caller, so that epoch means can be weighted by
the number of images (the pytorch/examples convention: nats per image).

Notation follows the derivation report: the encoder gives ``m`` (mean) and ``s`` = σ, the *log* of
the noise scale, and eq. 2 samples ``c = m + exp(σ) · e`` with ``e ~ N(0, I)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# no torch import at module level (tensor methods only; F is imported where it is used): the config
# check reads KL_FORMS and RECON_FORMS before any heavy import, so a wrong value is reported in a second
if TYPE_CHECKING:
    from torch import Tensor


def paper_penalty(m: Tensor, log_scale: Tensor) -> Tensor:
    """Eq. 3 of the report, exactly as written: ``Σ_i (exp(σ_i) − (1 + σ_i) + m_i²)``.

    It is zero at the prior (m = 0, σ = 0) and non-negative, but it is *not* the KL divergence of
    eq. 2's posterior N(m, exp(σ)²) from N(0, I): compare :func:`analytic_kl`. Units: nats-like
    penalty per image.
    """
    return (log_scale.exp() - (1.0 + log_scale) + m.square()).sum(dim=-1)


def analytic_kl(m: Tensor, log_scale: Tensor) -> Tensor:
    """Exact KL(N(m, exp(σ)²) || N(0, I)) = ``½ Σ_i (exp(2σ_i) − 1 − 2σ_i + m_i²)``, nats per image."""
    return 0.5 * ((2.0 * log_scale).exp() - 1.0 - 2.0 * log_scale + m.square()).sum(dim=-1)


def bce(logits: Tensor, x: Tensor) -> Tensor:
    """Bernoulli negative log-likelihood of pixels in [0, 1] given decoder logits, summed over the
    784 pixels (nats per image; for grey-level pixels it is the cross-entropy, not a normalised
    likelihood)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def mse(logits: Tensor, x: Tensor) -> Tensor:
    """Squared error between ``sigmoid(logits)`` and ``x``, summed over the 784 pixels (not in nats)."""
    return (logits.sigmoid() - x).square().sum(dim=-1)


# model.kl -> its penalty: the one list of loss forms (a new form is a function and a line here)
KL_FORMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"paper": paper_penalty, "analytic": analytic_kl}
# model.recon -> its reconstruction term per image
RECON_FORMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"bce": bce, "mse": mse}


def _form(table: dict[str, Callable[..., Tensor]], key: str, name: str) -> Callable[..., Tensor]:
    if name not in table:
        raise ValueError(f"unknown {key} {name!r}; expected one of {', '.join(table)}")
    return table[name]


def penalty(m: Tensor, log_scale: Tensor, kl: str) -> Tensor:
    """The latent penalty that ``model.kl`` names in :data:`KL_FORMS`, per image."""
    return _form(KL_FORMS, "model.kl", kl)(m, log_scale)


def reconstruction(logits: Tensor, x: Tensor, recon: str) -> Tensor:
    """The reconstruction term that ``model.recon`` names in :data:`RECON_FORMS`, per image."""
    return _form(RECON_FORMS, "model.recon", recon)(logits, x)


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
    kl: str = "paper",
    recon: str = "bce",
    beta: float = 1.0,
) -> LossTerms:
    """Compute all terms of the objective, per image.

    ``loss = recon + beta * penalty`` with ``penalty`` chosen by ``kl``; ``nelbo`` always uses the
    exact KL, so a ``paper`` run can be compared with an ``analytic`` one on the same scale. With
    ``recon='bce'`` nelbo is the negative ELBO in nats per image.
    """
    rec = reconstruction(logits, x, recon)
    exact = analytic_kl(m, log_scale)
    pen_fn = _form(KL_FORMS, "model.kl", kl)
    pen = exact if pen_fn is analytic_kl else pen_fn(m, log_scale)
    return LossTerms(loss=rec + beta * pen, recon=rec, kl=pen, nelbo=rec + exact)
