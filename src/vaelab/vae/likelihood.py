"""Per-image log-likelihood estimates of a trained VAE: the importance-weighted bound and the ELBO.

With ``k`` draws ``z_j ~ q(z|x) = N(m, exp(σ)²)`` and importance weights
``log w_j = log p(x|z_j) + log p(z_j) − log q(z_j|x)``:

- importance-weighted (IWAE) estimate: ``log p(x) ≈ logsumexp_j(log w_j) − log k``; it is a lower
  bound in expectation and tends to ``log p(x)`` as ``k`` grows (Burda et al. 2016);
- the ELBO on the same draws: ``mean_j log p(x|z_j) − KL(q || p)`` (exact Gaussian KL). By Jensen
  (log of a mean ≥ mean of logs) the IW estimate is ≥ this ELBO for every image and every set of
  draws, not only in expectation.

``log p(x|z)`` is the Bernoulli log-likelihood of the pixels given the decoder logits (minus the
BCE). For binary pixels it is a normalised log-probability; for grey levels in [0, 1] it is a
cross-entropy, so the numbers are then comparable with each other, not with binarised-MNIST NLLs.
All values are in nats per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab.vae.loss import analytic_kl
from vaelab.vae.model import VAE

LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """``log p(x|z)`` summed over the last (pixel) axis: minus the BCE of ``x`` given ``logits``."""
    logits, x = torch.broadcast_tensors(logits, x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last (latent) axis."""
    return -0.5 * (z.square() + LOG_2PI).sum(dim=-1)


def gaussian_log_prob(z: Tensor, m: Tensor, log_scale: Tensor) -> Tensor:
    """``log N(z; m, exp(σ)²)`` summed over the last (latent) axis."""
    e = (z - m) * torch.exp(-log_scale)
    return (-0.5 * (e.square() + LOG_2PI) - log_scale).sum(dim=-1)


@dataclass
class ImageBounds:
    """Per-image results for one batch (each ``[batch]``, nats)."""

    iw_nll: Tensor  # −(logsumexp_j log w_j − log k): the importance-weighted NLL estimate
    nelbo: Tensor  # −ELBO on the same k draws: mean_j −log p(x|z_j) + exact KL


@torch.no_grad()
def importance_weighted(
    vae: VAE,
    x: Tensor,
    k: int,
    chunk: int,
    generator: torch.Generator | None = None,
) -> ImageBounds:
    """IW NLL and −ELBO of every image of ``x`` (``[batch, 784]``) from ``k`` posterior draws.

    Draws are decoded ``chunk`` at a time, so memory stays at ``chunk × batch × 784`` floats
    whatever ``k`` is; the log-sum-exp is accumulated across chunks in float64.
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}")
    m, log_scale = vae.encode(x)
    kl = analytic_kl(m, log_scale).double()
    lse = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
    recon_sum = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for n in _chunks(k, chunk):
        e = torch.randn(n, *m.shape, generator=generator, device=m.device, dtype=m.dtype)
        z = m + torch.exp(log_scale) * e  # [n, batch, d]
        log_px = bernoulli_log_likelihood(vae.decode(z), x)  # [n, batch]
        log_w = log_px + standard_normal_log_prob(z) - gaussian_log_prob(z, m, log_scale)
        lse = torch.logaddexp(lse, torch.logsumexp(log_w.double(), dim=0))
        recon_sum += log_px.double().sum(dim=0)
    iw_nll = -(lse - math.log(k))
    nelbo = -recon_sum / k + kl
    return ImageBounds(iw_nll=iw_nll, nelbo=nelbo)


@torch.no_grad()
def chunk_bytes(vae: VAE, batch: int, draws: int) -> int:
    """An upper estimate of the memory one chunk of :func:`importance_weighted` (``draws`` x ``batch``
    images decoded at once) holds, in bytes: per draw and image, every layer output of the decoder
    (counted by decoding one latent point: any network), three pixel-sized temporaries of the
    log-likelihood and the latent draws. It lets a caller refuse a chunk that cannot fit before
    allocating it (the MLP's measured peak on the CPU is below this estimate)."""
    param = next(vae.parameters())
    sizes: list[int] = []
    leaves = [m for m in vae.modules() if not list(m.children())]  # only the decoder's run below
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()) if isinstance(out, Tensor) else None) for m in leaves]
    try:
        logits = vae.decode(torch.zeros(1, vae.latent_dim, device=param.device, dtype=param.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    per_draw = sum(sizes) + 3 * logits.shape[-1] + 6 * vae.latent_dim
    return param.element_size() * int(batch) * int(draws) * per_draw


def _chunks(k: int, chunk: int) -> Iterator[int]:
    for start in range(0, k, chunk):
        yield min(chunk, k - start)


@torch.no_grad()
def grid_log_likelihood(decode: Callable[[Tensor], Tensor], x: Tensor, lo: float = -8.0, hi: float = 8.0, steps: int = 4001) -> Tensor:
    """``log p(x) = log ∫ p(x|z) N(z; 0, 1) dz`` for a 1-d latent, by the trapezoid rule on a grid.

    The reference value the importance-weighted estimate must converge to (latent dim 1 only).
    Returns ``[batch]`` (float64, nats).
    """
    z = torch.linspace(lo, hi, steps, dtype=torch.float64)
    logits = decode(z[:, None].to(x.dtype)).double()  # [steps, 784]
    log_f = bernoulli_log_likelihood(logits[:, None, :], x.double()[None]) + standard_normal_log_prob(z[:, None, None])  # [steps, batch]
    dz = (hi - lo) / (steps - 1)
    weights = torch.full((steps,), math.log(dz), dtype=torch.float64)
    weights[[0, -1]] = math.log(dz / 2)
    return torch.logsumexp(log_f + weights[:, None], dim=0)
