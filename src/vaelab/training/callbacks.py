"""Lightning callbacks of ours: one progress line per epoch, the 1-based epoch every logger and
checkpoint name shows, image panels every few epochs, early stopping that survives a resume at
its last epoch, and a search's pruning. Checkpoints and the run's clock are Lightning's own ``ModelCheckpoint`` and ``Timer``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping as LightningEarlyStopping
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import save_image

from vaelab.errors import warn
from vaelab.joblog import say, to_log_file
from vaelab.training.module import DEFAULT_NET, LR_KEY
from vaelab.vae.views import image_panels


def epoch_status(trainer: pl.Trainer, pl_module: pl.LightningModule, label: str, epoch: int) -> str:
    """``[label] epoch 5 (cap 300) patience 2/15``: which run, the 1-based epoch, the epoch cap
    (a cap, not a plan: early stopping usually ends a run first) and the epochs early stopping has
    waited since the best one. The label gains the network and data set when they are not the
    report's MLP on MNIST."""
    extra = []
    net = str(pl_module.hparams.get("net", "")) if hasattr(pl_module, "hparams") else ""
    if net and net != DEFAULT_NET:
        extra.append(f"net={net.rpartition('.')[2]}")
    dataset = getattr(trainer.datamodule, "dataset", "mnist") if trainer.datamodule is not None else "mnist"
    if dataset != "mnist":
        extra.append(f"data={dataset}")
    text = f"[{' '.join([label, *extra]).strip()}] epoch {epoch} (cap {trainer.max_epochs})"
    stopper = next((c for c in trainer.callbacks if isinstance(c, LightningEarlyStopping)), None)
    if stopper is not None:
        text += f" patience {stopper.wait_count}/{stopper.patience}"
    return text


class EpochProgress(pl.Callback):
    """One line per epoch, printed where no progress bar runs (a log file, a cluster or a parallel
    job's output) and always written to the job's log file (train.log): which run, epoch (cap),
    patience, train and validation loss, time.

    Args:
        label: names the run in the lines (``ld=2 seed=0 kl=paper``).
    """

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", [])
        if not history or (row := history[-1])["epoch"] != trainer.current_epoch + 1:
            return
        lr = [f"lr={row[LR_KEY]:.3g}"] if trainer.lr_scheduler_configs and LR_KEY in row else []  # the rate under a schedule
        parts = [f"{k}={row[k]:.3f}" for k in ("train/loss", "val/loss", "val/loss_best") if k in row] + lr
        status = epoch_status(trainer, pl_module, self.label, int(row["epoch"]))
        line = f"{status} {' '.join(parts)} ({time.perf_counter() - self._start:.1f}s)"
        # the log file gets the line always; the console only where no bar shows the epoch
        if trainer.progress_bar_callback is None:
            say(line)
        else:
            to_log_file(line)


class EpochBar(TQDMProgressBar):
    """Lightning's TQDM bar, on a terminal (``trainer.enable_progress_bar``): a bar per epoch with
    its ETA, described as :class:`EpochProgress` lines are (epoch, cap, patience), with the last
    epoch's losses beside it.

    Args:
        label: names the run (``ld=2 seed=0 kl=paper``).
    """

    def __init__(self, label: str = "") -> None:
        super().__init__(leave=True)  # each epoch's bar stays: one line per epoch, as in a log
        self.label = label

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.train_progress_bar is not None:
            self.train_progress_bar.set_description(epoch_status(trainer, pl_module, self.label, trainer.current_epoch + 1))

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float | dict[str, float]]:
        history = getattr(pl_module, "history", [])
        last = history[-1] if history else {}
        return {k: f"{last[k]:.3f}" for k in ("train/loss", "val/loss", "val/loss_best") if k in last}


class EpochAxis(pl.Callback):
    """Put every logger's x axis on the epoch, counted from 1 (epoch 1 is the first trained epoch,
    as in metrics.json and the progress lines): the metrics ``epoch`` and ``step``, both that
    number. Lightning reads a logged ``step`` as the logging step (TensorBoard's global step, W&B's
    ``trainer/global_step``), and ``ModelCheckpoint`` reads a logged ``epoch`` for its ``{epoch}``
    file names, so ``best-epoch003.ckpt`` holds the weights after the epoch metrics.json calls 3.
    The test metrics land at the last epoch's position. Logged through ``self.log`` (float32,
    exact for any epoch count), identical on every rank."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._log(pl_module, trainer.current_epoch + 1)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after a fit, current_epoch counts the finished epochs: the last epoch's 1-based number
        self._log(pl_module, trainer.current_epoch)

    @staticmethod
    def _log(pl_module: pl.LightningModule, epoch: int) -> None:
        pl_module.log("epoch", float(epoch), sync_dist=True)
        pl_module.log("step", float(epoch), sync_dist=True)


class EarlyStopping(LightningEarlyStopping):
    """Lightning's :class:`~pytorch_lightning.callbacks.EarlyStopping`, unchanged in what it decides.

    Its state (best score, epochs waited, the epoch it stopped at) travels in every checkpoint, so a
    resumed run keeps counting where the killed one was. One case Lightning leaves open: the
    ``last.ckpt`` of the epoch that triggered the stop already says "stopped", but a run killed
    after writing it and resumed would train one more epoch (``trainer.should_stop`` is not saved).
    Here a restored stop ends the resumed fit at once, so it stops at the same epoch as an
    uninterrupted run.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopped_epoch > 0:
            trainer.should_stop = True


class Pruning(pl.Callback):
    """Ends the fit after an epoch whose val/loss ``judge(value, epoch)`` (1-based epochs)
    condemns: an Optuna search's pruner (vaelab.runs.pruning). ``pruned_epoch`` says when."""

    def __init__(self, judge: Callable[[float, int], bool]) -> None:
        self.judge, self.pruned_epoch = judge, 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value, epoch = trainer.callback_metrics.get("val/loss"), trainer.current_epoch + 1
        if not trainer.sanity_checking and value is not None and self.judge(float(value), epoch):
            self.pruned_epoch, trainer.should_stop = epoch, True


def stop_reason(trainer: pl.Trainer, history: list[dict[str, float]]) -> str:
    """Why ``trainer.fit`` returned: ``diverged`` (a NaN/inf loss ended it), ``interrupted`` (a signal
    or Ctrl-C), ``pruned`` (a search's pruner), ``early_stopping`` (the validation loss passed its
    minimum) or ``max_epochs`` (the epoch cap came first: the run may not have reached its minimum)."""
    last = history[-1] if history else {}
    if any(not math.isfinite(last.get(k, 0.0)) for k in ("val/loss", "train/loss")):
        return "diverged"
    if trainer.interrupted:
        return "interrupted"
    if any(isinstance(c, Pruning) and c.pruned_epoch > 0 for c in trainer.callbacks):
        return "pruned"
    if any(isinstance(c, LightningEarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks):
        return "early_stopping"
    return "max_epochs"


class ImageLogger(pl.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), save the image panels of
    :func:`vaelab.vae.views.image_panels` as PNGs in ``<run>/images/`` and log them to the W&B loggers, captioned with the 1-based epoch.

    The panels of an epoch are made once that epoch's checkpoints are written (Lightning saves
    checkpoints after every other callback's ``on_train_epoch_end``): when the next epoch starts,
    or when training ends. They show the checkpointed weights, and a crash while drawing them
    cannot cost a checkpoint. They are logged at the epoch's x position (its 1-based ``epoch`` and
    ``trainer/global_step``, see :class:`EpochAxis`). A PNG that cannot be written (``OSError``,
    e.g. a full disk) is a one-line warning on stderr; training goes on.

    Args:
        every_n_epochs: how often, in epochs (0: never).
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
        self._pending: tuple[int, int] | None = None  # (1-based epoch, global step) still to draw

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # the last epoch: the cap, or early stopping (decided in on_validation_end, before this hook)
        last = epoch >= (trainer.max_epochs or epoch) or trainer.should_stop
        if self.every_n_epochs > 0 and (epoch % self.every_n_epochs == 0 or last):
            self._pending = (epoch, epoch)  # the x position: the epoch (EpochAxis)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw_pending(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw_pending(trainer, pl_module)

    @rank_zero_only
    def _draw_pending(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        epoch, step = self._pending
        self._pending = None
        dm = trainer.datamodule
        if dm is None or "val" not in getattr(dm, "splits", {}):
            return
        was_training = pl_module.training
        pl_module.eval()
        panels = image_panels(pl_module.vae, dm.splits["val"][: self.n_images], self.n_samples, self.grid_steps, seed=epoch)
        pl_module.train(was_training)
        panels = {name: grid.cpu() for name, grid in panels.items()}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name, grid in panels.items():
                save_image(grid, self.out_dir / f"{name}_epoch{epoch:03d}.png")
        except OSError as exc:
            warn(f"image panels of epoch {epoch} not saved in {self.out_dir}: {exc.strerror or exc}")
        # 8-bit pixels as in the PNGs: wandb 0.31 casts float images to uint8 without scaling (black)
        pixels = {name: grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8) for name, grid in panels.items()}
        for logger in trainer.loggers:
            try:
                _log_panels(logger, pixels, epoch, step)
            except OSError as exc:
                warn(f"image panels of epoch {epoch} not logged to {type(logger).__name__}: {exc.strerror or exc}")


def _log_panels(logger: object, panels: dict[str, Tensor], epoch: int, step: int) -> None:
    """Log panels (``[3, H, W]`` uint8) to one logger: in one row with their epoch where the logger
    can (vaelab's W&B logger), else through Lightning's WandbLogger.log_image, or TensorBoard's
    add_image (logger=tensorboard); other loggers take no images."""
    from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

    log_panels = getattr(logger, "log_panels", None)
    if callable(log_panels):
        log_panels(panels, epoch=epoch, step=step)
    elif isinstance(logger, WandbLogger):
        for name, grid in panels.items():
            logger.log_image(key=f"images/{name}", images=[grid], caption=[f"epoch {epoch}"], step=step)
    elif isinstance(logger, TensorBoardLogger):
        for name, grid in panels.items():
            logger.experiment.add_image(f"images/{name}", grid, global_step=step)
