"""Lightning callbacks of ours: one progress line per epoch, and image panels every few epochs."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image


class EpochProgress(pl.Callback):
    """Print one line per epoch: which run, epoch i/n, train and validation loss, time.

    Cheaper than a per-step progress bar and readable in logs of parallel or cluster jobs.
    """

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", [])
        if not history or history[-1]["epoch"] != trainer.current_epoch + 1:
            return
        row = history[-1]
        parts = [f"{k}={row[k]:.3f}" for k in ("train/loss", "val/loss", "val/loss_best") if k in row]
        print(
            f"[{self.label}] epoch {row['epoch']}/{trainer.max_epochs} {' '.join(parts)} "
            f"({time.perf_counter() - self._start:.1f}s)",
            flush=True,
        )


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


@torch.no_grad()
def image_panels(vae: torch.nn.Module, images: Tensor, n_samples: int, steps: int, seed: int) -> dict[str, Tensor]:
    """Image grids (``[3, H, W]`` in [0, 1]) that show what the model learnt.

    ``reconstructions``: rows of originals over their reconstructions (decoded means, no noise);
    ``samples``: decoded prior draws; ``latent_grid``: the decoder over the latent plane (d=2) or
    line (d=1), see :func:`latent_grid`.
    """
    device = next(vae.parameters()).device
    x = images.to(device)
    m, _ = vae.encode(x)
    recon = torch.sigmoid(vae.decode(m))
    nrow = min(8, x.shape[0])
    pairs = torch.cat([x[:nrow], recon[:nrow]]).view(-1, 1, 28, 28)
    gen = torch.Generator(device=device).manual_seed(seed)
    samples = vae.sample(n_samples, generator=gen).view(-1, 1, 28, 28)
    panels = {
        "reconstructions": make_grid(pairs, nrow=nrow, pad_value=1.0),
        "samples": make_grid(samples, nrow=int(n_samples**0.5) or 1, pad_value=1.0),
    }
    if vae.latent_dim in (1, 2):
        c = latent_grid(vae.latent_dim, steps).to(device)
        decoded = torch.sigmoid(vae.decode(c)).view(-1, 1, 28, 28)
        panels["latent_grid"] = make_grid(decoded, nrow=steps, pad_value=1.0)
    return panels


class ImageLogger(pl.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), save image panels as PNGs in
    ``<run>/images/`` and log them to W&B when a W&B logger is attached.

    Args:
        every_n_epochs: how often, in epochs.
        n_images: validation images shown with their reconstructions.
        n_samples: prior samples shown (a square number gives a square grid).
        grid_steps: points per latent axis in the latent grid.
        out_dir: folder for the PNGs.
    """

    def __init__(self, every_n_epochs: int = 5, n_images: int = 8, n_samples: int = 64, grid_steps: int = 20, out_dir: str = "images") -> None:
        self.every_n_epochs = every_n_epochs
        self.n_images = n_images
        self.n_samples = n_samples
        self.grid_steps = grid_steps
        self.out_dir = Path(out_dir)

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = epoch >= (trainer.max_epochs or epoch)
        if self.every_n_epochs <= 0 or (epoch % self.every_n_epochs and not last):
            return
        dm = trainer.datamodule
        if dm is None or "val" not in getattr(dm, "splits", {}):
            return
        was_training = pl_module.training
        pl_module.eval()
        panels = image_panels(pl_module.vae, dm.splits["val"][: self.n_images], self.n_samples, self.grid_steps, seed=epoch)
        pl_module.train(was_training)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, grid in panels.items():
            save_image(grid, self.out_dir / f"{name}_epoch{epoch:03d}.png")
        from pytorch_lightning.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for name, grid in panels.items():
                    logger.log_image(key=f"images/{name}", images=[grid.cpu()], caption=[f"epoch {epoch}"], step=trainer.global_step)
