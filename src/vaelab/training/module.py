"""The LightningModule: training/validation/test steps, per-image metrics and the epoch history.

All logged numbers are per image, in nats (for ``recon=bce``): sums over pixels and latent
coordinates, averaged over the images of the split, weighted by batch size (torchmetrics'
``MeanMetric`` over per-image values, reduced across DDP ranks).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics.aggregation import MeanMetric

from vaelab.data.datamodule import epoch_generator
from vaelab.errors import UserError
from vaelab.training.step_graph import GraphedSteps
from vaelab.vae.archs import Arch, build_vae
from vaelab.vae.loss import KlForm, LossTerms, ReconForm, vae_loss

TERMS = ("loss", "recon", "kl", "nelbo")


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite; the run stops before writing another checkpoint."""


def _means(terms: tuple[str, ...]) -> nn.ModuleDict:
    # float64 sums: the epoch mean does not depend on how images were split into batches or ranks
    return nn.ModuleDict({t: MeanMetric(nan_strategy="disable").set_dtype(torch.float64) for t in terms})


class VAEModule(pl.LightningModule):
    """Trains a VAE of :mod:`vaelab.vae.archs` (by default the report's MLP,
    :class:`~vaelab.vae.model.VAE`) with the report's objective.

    Args:
        latent_dim, hidden, log_scale_max: passed to the network's class.
        kl: ``paper`` (eq. 3) or ``analytic`` (exact Gaussian KL) penalty.
        recon: ``bce`` or ``mse`` reconstruction term.
        beta: weight of the penalty.
        lr: Adam learning rate.
        fused: use the fused Adam kernel (same maths, fewer kernel launches).
        cuda_graph: on a CUDA device, replay each full ``training_step`` call (``data.steps_per_call``
            equal batches) from one captured CUDA graph, which removes Python and kernel-launch cost
            (what limits this small model on a GPU); the Adam state then lives on the device
            (``capturable``). Ignored on the CPU.
        seed: run seed; with the epoch it fixes the training noise stream.
        arch: the network, a name of :data:`vaelab.vae.archs.ARCHS`: ``mlp`` (the report's model;
            the default, so checkpoints written before this argument existed load as MLPs) or
            ``conv`` (:class:`~vaelab.vae.conv.ConvVAE`).
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: list[int] | tuple[int, ...] = (400,),
        kl: KlForm = "paper",
        recon: ReconForm = "bce",
        beta: float = 1.0,
        lr: float = 1e-3,
        fused: bool = True,
        log_scale_max: float = 10.0,
        seed: int = 0,
        cuda_graph: bool = True,
        arch: Arch = "mlp",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # one optimiser step per batch inside training_step: the data module may hand over several
        # batches per call (data.steps_per_call), which Lightning's automatic loop cannot step through
        self.automatic_optimization = False
        self.vae = build_vae(arch, latent_dim, list(hidden), log_scale_max)
        self.eval_means = _means(TERMS)
        # one row per finished epoch: {"epoch", "train/loss", "val/loss", ...}; saved in checkpoints
        self.history: list[dict[str, float]] = []
        self._noise_gen: torch.Generator | None = None
        # first optimizer step whose loss was not finite (-1: none); checked without a per-step sync
        self.register_buffer("_nonfinite_step", torch.tensor(-1, dtype=torch.long), persistent=False)
        # this epoch's training-loss sum (float64) and image count on this rank: one in-place add per
        # step (a torchmetrics update per step cost ~0.1 ms), summed over ranks at the epoch end
        self._train_sum: Tensor | None = None
        self._train_count = 0
        self._train_open = False
        self._graphs = GraphedSteps()

    # ----------------------------------------------------------------- steps
    def terms(self, x: Tensor, noise: Tensor) -> LossTerms:
        """The objective's per-image terms for images ``x`` and eq. 2's noise ``noise``: what
        training minimises and what validation, test and ``vaelab.evaluate`` report."""
        logits, m, log_scale, _ = self.vae(x, noise)
        hp = self.hparams
        return vae_loss(logits, x, m, log_scale, kl=hp.kl, recon=hp.recon, beta=hp.beta)

    def on_train_epoch_start(self) -> None:
        # training noise depends only on (seed, epoch, rank): resumed runs draw the same noise
        stream = 1000 + self.global_rank
        self._noise_gen = epoch_generator(self.hparams.seed, self.current_epoch, stream, self.device)
        if self._train_sum is None:
            self._train_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._train_sum.zero_()  # in place: a captured CUDA graph adds into this tensor
        self._train_count = 0
        self._train_open = True

    def step_loss(self, x: Tensor, noise: Tensor, step: int | Tensor) -> Tensor:
        """The mean loss of one batch; adds its sum to the epoch total and records ``step`` if the
        loss is not finite (no host sync, so it can also run inside a CUDA graph)."""
        terms = self.terms(x, noise)
        # the batch sum added to a float64 total: what MeanMetric.update did, bit for bit
        self._train_sum.add_(terms.loss.detach().sum())
        loss = terms.loss.mean()
        fresh = (self._nonfinite_step < 0) & ~torch.isfinite(loss.detach())
        self._nonfinite_step.copy_(torch.where(fresh, step, self._nonfinite_step))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        """One Adam step per batch: ``batch`` is one ``(images, indices)`` pair or a list of them
        (``data.steps_per_call``); the steps are those Lightning's automatic loop would take."""
        batches = batch if isinstance(batch, list) else [batch]
        if self._replay_graph(batches):
            return
        opt = self.optimizers()
        for x, _ in batches:
            noise = torch.randn(x.shape[0], self.vae.latent_dim, generator=self._noise_gen, device=x.device)
            loss = self.step_loss(x, noise, self.global_step)
            self._train_count += x.shape[0]
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()

    def _replay_graph(self, batches: list[tuple[Tensor, Tensor]]) -> bool:
        """Run ``batches`` through the captured CUDA graph (:mod:`vaelab.training.step_graph`);
        False (the caller steps eagerly) when graphs are off, on the CPU, or for calls the graph
        does not take. Never under DDP: the graph would bypass DDP's gradient all-reduce."""
        if not (self.hparams.cuda_graph and self.device.type == "cuda" and self.trainer.world_size == 1):
            return False
        opt = self.optimizers().optimizer  # the torch optimiser: Lightning's wrapper is Python-side
        if not self._graphs.run(batches, self.step_loss, opt, self.vae.latent_dim, self._noise_gen, self.global_step):
            return False
        self._train_count += len(batches) * batches[0][0].shape[0]
        # Lightning counts optimiser steps through its wrapper, which the graph bypasses: count them
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        for _ in batches:
            progress.increment_ready()
            progress.increment_completed()
        return True

    def _stop_if_diverged(self) -> None:
        """Raise before validation or checkpointing when a step's loss was NaN/inf (one sync per epoch)."""
        step = int(self._nonfinite_step)
        if step >= 0:
            found = [Path(c.dirpath) / "last.ckpt" for c in self.trainer.checkpoint_callbacks if getattr(c, "dirpath", None)]
            ckpt = next((str(p) for p in found if p.is_file()), "none written yet")
            raise TrainingDiverged(
                f"training diverged: the loss was not finite at step {step} (epoch {self.current_epoch + 1}); stopped without "
                f"saving the diverged weights. Last good checkpoint: {ckpt}. Lower model.lr or check the data"
            )

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._stop_if_diverged()

    def on_train_epoch_end(self) -> None:
        self._stop_if_diverged()

    def _eval_step(self, split: str, batch: tuple[Tensor, Tensor]) -> None:
        x, idx = batch
        noise = self.trainer.datamodule.eval_noise(split, self.vae.latent_dim)[idx]
        terms = self.terms(x, noise)
        for name in TERMS:
            self.eval_means[name].update(getattr(terms, name))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    # ------------------------------------------------------------ epoch ends
    def _compute(self, means: nn.ModuleDict, prefix: str) -> dict[str, float]:
        out = {f"{prefix}/{k}": float(m.compute()) for k, m in means.items() if m.update_called}
        for m in means.values():
            m.reset()
        return out

    def on_validation_epoch_end(self) -> None:
        metrics = self._compute(self.eval_means, "val")
        if self.trainer.sanity_checking or not metrics:
            return
        fitting = self.trainer.state.fn == "fit"
        if fitting:
            metrics.update(self._train_loss())
            best = min([row["val/loss"] for row in self.history] + [metrics["val/loss"]])
            metrics["val/loss_best"] = best
            self.history.append({"epoch": self.current_epoch + 1, **metrics})
            if not math.isfinite(metrics["val/loss"]) or not math.isfinite(metrics.get("train/loss", 0.0)):
                self.trainer.should_stop = True
        self.log_dict(metrics)

    def _train_loss(self) -> dict[str, float]:
        """This epoch's mean training loss per image over all ranks (empty before any step)."""
        if not self._train_open:
            return {}
        self._train_open = False
        count = torch.tensor(float(self._train_count), dtype=torch.float64, device=self.device)
        total = self.trainer.strategy.reduce(torch.stack([self._train_sum, count]), reduce_op="sum")
        self._train_count = 0
        return {"train/loss": float(total[0] / total[1])} if total[1] > 0 else {}

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._compute(self.eval_means, "test"))

    # ------------------------------------------------------------- plumbing
    def configure_optimizers(self) -> torch.optim.Optimizer:
        capturable = bool(self.hparams.cuda_graph) and self.device.type == "cuda"
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=bool(self.hparams.fused) or None, capturable=capturable)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vaelab_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("vaelab_history", []))
