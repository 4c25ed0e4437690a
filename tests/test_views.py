"""A trained model's views (vaelab.vae.views) compute what they say, the same way for every caller;
a multirun's expected jobs and a run's W&B settings are read by one function each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vaelab.vae import views
from vaelab.vae.model import VAE


@pytest.fixture(scope="module")
def vae() -> VAE:
    torch.manual_seed(0)
    return VAE(latent_dim=2, hidden=(32,)).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(23, 784, generator=torch.Generator().manual_seed(1))


def test_encode_is_the_encoder_in_any_batch_size(vae: VAE, images: torch.Tensor) -> None:
    m, log_scale = vae.encode(images)
    for batch_size in (1, 7, 23, 1000):
        got_m, got_s = views.encode(vae, images, batch_size=batch_size)
        assert got_m.shape == got_s.shape == (23, 2)
        assert torch.allclose(got_m, m, atol=1e-6) and torch.allclose(got_s, log_scale, atol=1e-6)
    assert not views.encode(vae, images)[0].requires_grad  # no graph kept for a whole split


def test_decode_and_reconstruct_are_pixel_means(vae: VAE, images: torch.Tensor) -> None:
    codes = torch.tensor([[0.0, 0.0], [1.5, -2.0]])
    assert torch.equal(views.decode(vae, codes), torch.sigmoid(vae.decode(codes)).detach())
    recon = views.reconstruct(vae, images[:5])
    assert recon.shape == (5, 784) and torch.equal(recon, views.decode(vae, vae.encode(images[:5])[0]))
    assert 0.0 <= float(recon.min()) and float(recon.max()) <= 1.0


def test_prior_samples_are_seeded(vae: VAE) -> None:
    a, b, c = (views.prior_samples(vae, 9, seed=s) for s in (3, 3, 4))
    assert a.shape == (9, 784) and torch.equal(a, b) and not torch.equal(a, c)
    draws = torch.randn(9, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, views.decode(vae, draws))  # N(0, I) draws of that seed, decoded


def test_latent_grid_spaces_points_by_the_prior_quantiles() -> None:
    line = views.latent_grid(1, 5, span=0.8)
    normal = torch.distributions.Normal(0.0, 1.0)
    assert line.shape == (5, 1) and torch.allclose(normal.cdf(line[:, 0]), torch.linspace(0.1, 0.9, 5), atol=1e-6)
    plane = views.latent_grid(2, 3)
    assert plane.shape == (9, 2)
    q = views.latent_grid(1, 3)[:, 0]
    # row-major image order: c1 increases to the right, c2 upwards (first row: the largest c2)
    assert torch.equal(plane[:3, 0], q) and torch.equal(plane[:3, 1], q[2].expand(3)) and torch.equal(plane[6:, 1], q[0].expand(3))
    with pytest.raises(ValueError, match="latent_dim 1 or 2, got 3"):
        views.latent_grid(3, 4)


def test_image_grid_tiles_28px_images_with_white_between(images: torch.Tensor) -> None:
    grid = views.image_grid(images[:6], nrow=4)
    assert grid.shape == (3, 2 * 30 + 2, 4 * 30 + 2)  # 2 rows of 4 tiles, 2 px white around each
    assert torch.equal(grid[0, 2:30, 2:30], images[0].view(28, 28)) and torch.equal(grid[:, 0], torch.ones(3, grid.shape[2]))
    assert torch.equal(grid[0, 32:60, 32:60], images[5].view(28, 28)) and float(grid[:, 32:60, 62:].min()) == 1.0  # the 8th tile: blank


@pytest.mark.parametrize("latent_dim", [1, 2, 3])
def test_image_panels_are_the_panels_training_logs(latent_dim: int, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    vae = VAE(latent_dim=latent_dim, hidden=(16,)).eval()
    panels = views.image_panels(vae, images[:10], n_samples=9, steps=4, seed=5)
    assert tuple(panels) == views.PANELS[: 3 if latent_dim <= 2 else 2]
    recon = panels["reconstructions"]  # 8 originals over their 8 reconstructions
    assert recon.shape == (3, 2 * 30 + 2, 8 * 30 + 2)
    assert torch.equal(recon[0, 32:60, 2:30], views.reconstruct(vae, images[:8])[0].view(28, 28))
    assert torch.equal(panels["samples"], views.image_grid(views.prior_samples(vae, 9, seed=5), nrow=3))
    if latent_dim <= 2:
        rows = 1 if latent_dim == 1 else 4  # a line of 4 points, or a 4 x 4 plane
        assert panels["latent_grid"].shape == (3, rows * 30 + 2, 4 * 30 + 2)
        assert torch.equal(panels["latent_grid"], views.image_grid(views.decode(vae, views.latent_grid(latent_dim, 4)), nrow=4))


def _multirun(task: list[str], sweeper: str | None = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"):
    hydra = {"overrides": {"task": task}, **({"sweeper": {"_target_": sweeper}} if sweeper else {})}
    return OmegaConf.create({"model": {"kl": "paper"}, "hydra": hydra})


def test_expected_jobs_are_the_product_of_the_sweep_values_in_order() -> None:
    from vaelab.runs.layout import expected_jobs, task_overrides

    task = ["model.latent_dim=1,2", "seed=0,1,2", "tags=[reproduce,kl-${model.kl}]"]
    jobs = expected_jobs(_multirun(task))
    assert len(jobs) == 6 and jobs[0] == ["model.latent_dim=1", "seed=0", "tags=[reproduce,kl-${model.kl}]"]
    assert jobs[1][:2] == ["model.latent_dim=1", "seed=1"] and jobs[5][:2] == ["model.latent_dim=2", "seed=2"]
    assert task_overrides(_multirun(task)) == task  # the interpolation stays as typed: it is resolved per job
    assert expected_jobs(_multirun(task, sweeper=None)) == jobs  # no sweeper recorded: Hydra's default, the basic one
    assert expected_jobs(_multirun(["a=1,2"], sweeper="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")) is None
    assert expected_jobs(OmegaConf.create({})) == [[]] and task_overrides(OmegaConf.create({})) == []  # no command line: one job


def test_wandb_settings_come_from_run_info(tmp_path: Path) -> None:
    from vaelab.errors import UserError
    from vaelab.runs.layout import RUN_INFO, write_json
    from vaelab.runs.wandb_run import wandb_settings

    assert wandb_settings(tmp_path) == {}  # no run_info.json
    write_json(tmp_path / RUN_INFO, {"config": {"logger": None}})
    assert wandb_settings(tmp_path) == {}  # logger=none
    write_json(tmp_path / RUN_INFO, {"config": {"logger": {"wandb": {"project": "p", "group": "g", "log_model": True}}}})
    assert wandb_settings(tmp_path) == {"project": "p", "group": "g", "log_model": True}
    (tmp_path / RUN_INFO).write_text("{cut")
    with pytest.raises(UserError, match="run_info.json is not valid JSON"):
        wandb_settings(tmp_path)
