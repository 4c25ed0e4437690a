"""The run's loggers, instantiated from ``cfg.logger``: a W&B logger bound to its run dir, and a
logger whose package is missing reported as one line."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from vaelab.errors import UserError
from vaelab.runs import wandb_run
from vaelab.runs.layout import WANDB_DIR


def instantiate_logger(name: str, node: DictConfig, out_dir: Path) -> Any:
    """Instantiate one logger; a W&B logger gets a usable mode and the run id kept in the run dir
    (a resumed run continues its W&B run; a run started from another run's weights is a new one).
    A logger whose package is not installed is one error line naming it."""
    from hydra.errors import InstantiationException

    extra: dict[str, Any] = {}
    if str(node.get("_target_", "")).endswith("WandbLogger"):
        # W&B stages checkpoint artifacts (logger.wandb.log_model) under its data dir, by default
        # in the home folder: keep them with the run instead (docs/wandb.md)
        os.environ.setdefault("WANDB_DATA_DIR", str(out_dir / WANDB_DIR))
        extra = {"mode": wandb_run.resolve_mode(str(node.mode)), "id": wandb_run.run_id(out_dir)}
    try:
        logger = hydra.utils.instantiate(node, **extra)
        if not extra:  # TensorBoard imports its writer only when first used: use it now
            _ = logger.experiment
        return logger
    except (InstantiationException, ImportError) as exc:
        missing = next((e for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, ImportError)), None)
        text = str(missing or exc)
        if missing is None and "No module named" not in text and "requires" not in text:
            raise
        raise UserError(
            f"logger={name} cannot start: {text.strip().splitlines()[-1]}; install its package (pip install {name}) or choose logger=csv or logger=none"
        ) from None


def log_hparams_session(loggers: Iterable[Any], settings: dict[str, Any], best: float, epoch: int) -> None:
    """TensorBoard's HParams tab: the run's settings beside its ``val/loss_best``.

    Lightning writes TensorBoard's HParams session only when ``log_hyperparams`` is given metrics,
    and the minimum is known at the end: so the session is written then, with the minimum logged at
    its own epoch, where the ``val/loss_best`` curve already holds that value. Other loggers got the
    settings at the start."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and math.isfinite(best):
            logger.log_hyperparams(settings, metrics={"val/loss_best": best}, step=epoch)
