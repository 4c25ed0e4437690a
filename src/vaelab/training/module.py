"""The LightningModule: training/validation/test steps, per-image metrics and the epoch history.

It reads like Lightning's documentation: automatic optimisation, one batch per ``training_step``,
metrics through ``self.log``, sums through torchmetrics. The speed path (several Adam steps per
call, CUDA graphs) is the subclass :class:`vaelab.training.fast_steps.FastVAEModule`, with the same
numbers (``speed=fast``, the default; ``speed=plain`` runs this class): what it needs beyond this
class (capturable tensors, its own loss sum, graph step counts) lives there.

All logged numbers are per image, in nats (for ``recon=bce``): sums over pixels and latent
coordinates, averaged over the images of the split, weighted by batch size (torchmetrics'
``MeanMetric`` over per-image values, reduced across DDP ranks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torchmetrics.aggregation import MeanMetric

from vaelab.data.datamodule import epoch_generator
from vaelab.errors import UserError
from vaelab.vae.loss import LossTerms, vae_loss
from vaelab.vae.nets import build_net

TERMS = ("loss", "recon", "kl", "nelbo")
# the history's and the loggers' name of the learning rate an epoch trained with
LR_KEY = "train/lr"
# (parameters, lr=..., fused=...) -> an optimiser: the config's model.optimizer (Hydra's _partial_)
OptimizerFactory = Callable[..., torch.optim.Optimizer]
# (optimizer) -> a learning-rate scheduler: the config's model.scheduler (Hydra's _partial_)
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
# the report's MLP (conf/model/vae_mlp.yaml): what a module built without naming a network gets
DEFAULT_NET = "vaelab.vae.model.VAE"


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite; the run stops before writing another checkpoint."""


def _mean() -> MeanMetric:
    """An epoch mean of per-image values: float64 states, so the sum over an epoch's batches (and
    ranks) does not drift. Under Lightning each update's batch is summed in the values' dtype
    (float32: the metric's ``dtype`` reads float32 once the trainer has moved the module) and added
    into the float64 total; FastVAEModule's own sum does the same, so both speeds agree to the bit."""
    return MeanMetric(nan_strategy="disable").set_dtype(torch.float64)


def _means(terms: tuple[str, ...]) -> nn.ModuleDict:
    return nn.ModuleDict({t: _mean() for t in terms})


class VAEModule(pl.LightningModule):
    """Trains a VAE (by default the report's MLP, :class:`~vaelab.vae.model.VAE`) with the report's objective.

    Args:
        net: the network class by import path (:mod:`vaelab.vae.nets`); stored as a plain string
            hyper-parameter, so a checkpoint loads without the config.
        latent_dim, hidden, log_scale_max: passed to the network's class.
        net_args: keyword arguments of the network class's own (``model.net_args``, e.g.
            ``{"channels": [32, 64]}`` for :class:`~vaelab.vae.conv.ConvVAE`); None or ``{}``: its
            defaults. A plain dict of numbers, strings and lists, saved as a hyper-parameter, so a
            checkpoint rebuilds the same network from its hyper-parameters alone.
        kl: a penalty of :data:`vaelab.vae.loss.KL_FORMS`: ``paper`` (eq. 3) or ``analytic`` (exact KL).
        recon: a term of :data:`vaelab.vae.loss.RECON_FORMS`: ``bce`` or ``mse``.
        beta: weight of the penalty.
        lr: the optimiser's (initial) learning rate.
        fused: use the optimiser's fused kernel (same maths, fewer kernel launches).
        seed: run seed; with the epoch it fixes the training noise stream.
        kl_warmup_epochs: KL warm-up: the training loss weighs the penalty by ``beta * min(1, e / W)``
            in (1-based) epoch ``e`` of ``W`` (0: none, the report's loss from the first step).
            Validation, test and early stopping always use the full objective.
        optimizer: builds the optimiser from ``(parameters, lr=lr, fused=...)`` (the config's
            ``model.optimizer``, a Hydra ``_partial_``); None: :class:`torch.optim.Adam`'s defaults.
        scheduler: builds a learning-rate scheduler from the optimiser (``model.scheduler``), stepped
            once per epoch (:meth:`step_scheduler`); None: a constant learning rate. Neither is a
            hyper-parameter of the checkpoint (it loads without them, under ``weights_only=True``);
            the run's config records them, and ``resume=true`` compares them.
    """

    # one (images, indices) batch per training_step call: data.steps_per_call must be 1
    takes_batch_lists = False

    def __init__(
        self,
        net: str = DEFAULT_NET,
        latent_dim: int = 2,
        hidden: list[int] | tuple[int, ...] = (400,),
        kl: str = "paper",
        recon: str = "bce",
        beta: float = 1.0,
        lr: float = 1e-3,
        fused: bool = True,
        log_scale_max: float = 10.0,
        seed: int = 0,
        kl_warmup_epochs: int = 0,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        net_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # logger=False: the run logs its whole resolved config once (model.* included), not these again;
        # cuda_graph is FastVAEModule's speed setting, not the model's: a checkpoint loads as this class;
        # the optimiser and scheduler factories are code, not values a safe checkpoint load may hold
        self.save_hyperparameters(logger=False, ignore=["cuda_graph", "optimizer", "scheduler"])
        self.optimizer_factory: OptimizerFactory = optimizer or torch.optim.Adam
        self.scheduler_factory = scheduler
        self.vae = build_net(net, latent_dim, list(hidden), log_scale_max, net_args)
        self.val_means = _means(TERMS)
        self.test_means = _means(TERMS)
        # this epoch's training loss per image on this rank (reduced over ranks when computed)
        self.train_mean = _mean()
        # the penalty's weight in this epoch's training loss (KL warm-up), set when the epoch starts
        self.epoch_kl_weight = float(beta)
        # one row per finished epoch: {"epoch", "train/loss", "val/loss", ...}; saved in checkpoints
        self.history: list[dict[str, float]] = []
        self._noise_gen: torch.Generator | None = None
        # the first step whose training loss was not finite (-1: none), kept on the device and read
        # once per epoch (_stop_if_diverged): a check per step would wait for the GPU every step, and
        # under DDP a rank that stopped alone would leave the others waiting in the gradient all-reduce
        self.register_buffer("_first_nonfinite_step", torch.tensor(-1, dtype=torch.long), persistent=False)

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
        self.epoch_kl_weight = self.kl_weight(self.current_epoch + 1)
        self.train_mean.reset()  # an epoch without validation reports no training loss

    def kl_weight(self, epoch: int) -> float:
        """The weight of the penalty in the training loss of 1-based ``epoch``: ``beta``, ramped up
        linearly over the first ``kl_warmup_epochs`` epochs."""
        warmup = int(self.hparams.get("kl_warmup_epochs", 0) or 0)
        return float(self.hparams.beta) * (min(1.0, epoch / warmup) if warmup > 0 else 1.0)

    def draw_noise(self, x: Tensor) -> Tensor:
        """Eq. 2's noise ``e`` for a training batch, from this epoch's stream."""
        return torch.randn(x.shape[0], self.vae.latent_dim, generator=self._noise_gen, device=x.device)

    def training_losses(self, x: Tensor, noise: Tensor, kl_weight: float | Tensor) -> Tensor:
        """The training loss of each image of ``x`` (``[b]``, nats): the objective with the penalty
        weighed by ``kl_weight`` (this epoch's KL warm-up weight) when a warm-up is set."""
        terms = self.terms(x, noise)
        return terms.recon + kl_weight * terms.kl if self.hparams.get("kl_warmup_epochs") else terms.loss

    def note_nonfinite(self, loss: Tensor, step: int | Tensor) -> None:
        """Record ``step`` as the first whose ``loss`` was not finite, on the device, without waiting
        for it (read once per epoch by :meth:`_stop_if_diverged`)."""
        fresh = (self._first_nonfinite_step < 0) & ~torch.isfinite(loss.detach())
        self._first_nonfinite_step.copy_(torch.where(fresh, step, self._first_nonfinite_step))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, _ = batch
        losses = self.training_losses(x, self.draw_noise(x), self.epoch_kl_weight)
        self.train_mean.update(losses.detach())
        loss = losses.mean()
        self.note_nonfinite(loss, self.global_step)
        return loss

    def _stop_if_diverged(self) -> None:
        """Raise before validation or checkpointing when a step's loss was NaN/inf (one sync per epoch)."""
        step = int(self._first_nonfinite_step)
        if step >= 0:
            # the checkpoint callbacks' own record of the newest last.ckpt they wrote
            found = [c.last_model_path for c in self.trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")]
            ckpt = next((p for p in found if Path(p).is_file()), "none written yet")
            raise TrainingDiverged(
                f"training diverged: the loss was not finite at step {step} (epoch {self.current_epoch + 1}); stopped without "
                f"saving the diverged weights. Last good checkpoint: {ckpt}. Lower model.lr or check the data"
            )

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._stop_if_diverged()

    def on_train_epoch_end(self) -> None:
        self._stop_if_diverged()
        self.step_scheduler()

    def _eval_step(self, split: str, means: nn.ModuleDict, batch: tuple[Tensor, Tensor]) -> None:
        x, idx = batch
        noise = self.trainer.datamodule.eval_noise(split, self.vae.latent_dim)[idx]
        terms = self.terms(x, noise)
        for name in TERMS:
            means[name].update(getattr(terms, name))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("val", self.val_means, batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("test", self.test_means, batch)

    # ------------------------------------------------------------ epoch ends
    def _log_means(self, means: nn.ModuleDict, prefix: str) -> dict[str, float]:
        """Log the epoch means (Lightning computes, syncs across ranks and resets them) and return
        their values for the history."""
        values = {f"{prefix}/{k}": float(m.compute()) for k, m in means.items() if m.update_called}
        for k, m in means.items():
            if m.update_called:
                self.log(f"{prefix}/{k}", m)
        return values

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for m in self.val_means.values():
                m.reset()
            return
        metrics = self._log_means(self.val_means, "val")
        if not metrics or self.trainer.state.fn != "fit":
            return
        train = self._train_loss()
        metrics.update(train)
        best = min([row["val/loss"] for row in self.history] + [metrics["val/loss"]])
        # identical on every rank (computed from reduced sums): sync_dist changes no value, and
        # Lightning then has no reason to warn under DDP
        metrics.update({"val/loss_best": best, LR_KEY: self.current_lr()})
        self.log_dict({**train, "val/loss_best": best, LR_KEY: metrics[LR_KEY]}, sync_dist=True)
        self.history.append({"epoch": self.current_epoch + 1, **metrics})
        if not math.isfinite(metrics["val/loss"]) or not math.isfinite(metrics.get("train/loss", 0.0)):
            self.trainer.should_stop = True

    def _train_loss(self) -> dict[str, float]:
        """This epoch's mean training loss per image over all ranks (empty before any step, and
        after it was reported once)."""
        if not self.train_mean.update_called:
            return {}
        value = float(self.train_mean.compute())  # torchmetrics sums over ranks
        self.train_mean.reset()
        return {"train/loss": value}

    def on_test_epoch_end(self) -> None:
        self._log_means(self.test_means, "test")

    # ------------------------------------------------------------- plumbing
    def build_optimizer(self, params: Iterable[Tensor], **extra: Any) -> torch.optim.Optimizer:
        """The configured optimiser over ``params``, with ``model.lr`` and ``model.fused`` (the
        config check refuses an optimiser without a fused kernel when ``fused`` is on)."""
        return self.optimizer_factory(params, lr=self.hparams.lr, fused=bool(self.hparams.fused) or None, **extra)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """The optimiser, and the scheduler in Lightning's dict form when there is one: Lightning
        then saves its state in every checkpoint and restores it on ``resume=true``."""
        optimizer = self.build_optimizer(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler, "interval": "epoch"}
        if self.automatic_optimization:  # Lightning asks a plateau scheduler's monitor of automatic optimisation only
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    def current_lr(self) -> float:
        """The learning rate the optimiser steps with now (what this epoch trained with until
        :meth:`step_scheduler` runs at its end)."""
        return float(self.trainer.optimizers[0].param_groups[0]["lr"])

    def step_scheduler(self) -> None:
        """Step the scheduler once at the end of a training epoch, after its validation (a plateau
        scheduler reads this epoch's ``val/loss``) and before the epoch's ``last.ckpt`` is written, so
        a resumed run continues the schedule exactly. Lightning's own stepping comes after that
        checkpoint for a plateau scheduler (and never under manual optimisation), hence this."""
        if self.trainer.sanity_checking or not self.trainer.lr_scheduler_configs:
            return
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        row = self.history[-1] if self.history and self.history[-1]["epoch"] == self.current_epoch + 1 else None
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if row is not None:  # an epoch without validation leaves a plateau schedule as it is
                scheduler.step(row["val/loss"])
        else:
            scheduler.step()

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Lightning's per-epoch call: nothing, the scheduler was stepped by :meth:`step_scheduler`."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vaelab_history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = list(checkpoint.get("vaelab_history", []))
