"""The objective's maths: eq. 3 as written, the exact KL, and eq. 2's sampling."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaelab.vae.loss import analytic_kl, paper_penalty, penalty, reconstruction, vae_loss
from vaelab.vae.model import VAE


@pytest.fixture
def ms() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 3, generator=g, dtype=torch.float64), 0.7 * torch.randn(64, 3, generator=g, dtype=torch.float64)


def test_paper_penalty_is_eq3_elementwise(ms):
    m, s = ms
    expected = [[math.exp(si) - (1 + si) + mi**2 for mi, si in zip(mr, sr)] for mr, sr in zip(m.tolist(), s.tolist())]
    per_coordinate = torch.stack([paper_penalty(m[:, j : j + 1], s[:, j : j + 1]) for j in range(3)], dim=1)
    assert torch.allclose(per_coordinate, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(paper_penalty(m, s), per_coordinate.sum(1))


def test_paper_penalty_differs_from_exact_kl(ms):
    m, s = ms
    # equal only at the prior; eq. 3 is not the KL of eq. 2's posterior
    assert paper_penalty(torch.zeros(1, 2), torch.zeros(1, 2)).item() == 0.0
    assert not torch.allclose(paper_penalty(m, s), analytic_kl(m, s))


def test_analytic_kl_equals_torch_kl_divergence(ms):
    m, s = ms
    ref = kl_divergence(Normal(m, s.exp()), Normal(torch.zeros_like(m), torch.ones_like(s))).sum(-1)
    assert torch.allclose(analytic_kl(m, s), ref, rtol=1e-12, atol=1e-12)


def test_analytic_kl_matches_monte_carlo():
    m = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    s = torch.tensor([[-0.3, 0.4]], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    c = m + s.exp() * torch.randn(400_000, 2, generator=g, dtype=torch.float64)
    q, p = Normal(m, s.exp()), Normal(0.0, 1.0)
    samples = (q.log_prob(c) - p.log_prob(c)).sum(-1)
    mc, se = samples.mean(), samples.std() / math.sqrt(samples.numel())
    assert abs(mc - analytic_kl(m, s)).item() < 4 * se.item()


def test_reparameterisation_moments():
    m = torch.tensor([1.5, -2.0])
    s = torch.tensor([-1.0, 0.5])
    g = torch.Generator().manual_seed(2)
    c = VAE.reparameterize(m, s, torch.randn(200_000, 2, generator=g))
    assert torch.allclose(c.mean(0), m, atol=0.02)
    assert torch.allclose(c.std(0), s.exp(), rtol=0.01)


def test_vae_loss_terms(ms):
    m, s = ms
    g = torch.Generator().manual_seed(3)
    x = torch.rand(64, 784, generator=g, dtype=torch.float64)
    logits = torch.randn(64, 784, generator=g, dtype=torch.float64)
    rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    for kl in ("paper", "analytic"):
        t = vae_loss(logits, x, m, s, kl=kl, recon="bce", beta=0.5)
        assert torch.allclose(t.recon, rec)
        assert torch.allclose(t.kl, penalty(m, s, kl))
        assert torch.allclose(t.loss, rec + 0.5 * penalty(m, s, kl))
        # nelbo always uses the exact KL, whatever the penalty
        assert torch.allclose(t.nelbo, rec + analytic_kl(m, s))
    mse = reconstruction(logits, x, "mse")
    assert torch.allclose(mse, (torch.sigmoid(logits) - x).square().sum(1))


def test_log_scale_is_clamped():
    vae = VAE(latent_dim=2, hidden=[8], log_scale_max=3.0)
    with torch.no_grad():
        vae.encoder[-1].bias.fill_(100.0)
    _, s = vae.encode(torch.rand(4, 784))
    assert s.max().item() == 3.0
    assert torch.isfinite(analytic_kl(torch.zeros_like(s), s)).all()
