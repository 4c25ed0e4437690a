"""Training entry point: ``python -m vaelab.train [overrides]`` (console script ``vaelab-train``).

Composes the Hydra config (``conf/train.yaml``), validates it, trains with Lightning, tests the
best checkpoint and writes ``metrics.json`` in the run dir. Returns the minimal validation loss so
that Hydra sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from vaelab.config import resolvers
from vaelab.config.validate import check_overrides
from vaelab.errors import RunInterrupted
from vaelab.runs import wandb_run
from vaelab.runs.job import record_end, record_start, run_job, run_metrics
from vaelab.runs.layout import CHECKPOINTS, LAST_CKPT, PRUNED, Metrics
from vaelab.runs.loggers import instantiate_logger
from vaelab.runs.preflight import read_for_model
from vaelab.runs.pruning import search_pruning
from vaelab.runs.reading import init_weights
from vaelab.runs.signals import JobSignals
from vaelab.training.fitting import TEST_KEYS, fit, trainer_plugins
from vaelab.training.runtime import ignore_known_warnings

resolvers.register()
ignore_known_warnings()


def train(cfg: DictConfig, resume: bool = False, signals: JobSignals | None = None) -> Metrics:
    """Fit, test the best checkpoint, and return the metrics written to ``metrics.json``.

    ``resume``: continue this run dir's ``last.ckpt`` (weights, optimiser, epoch, history, early
    stopping). ``cfg.ckpt_path`` instead starts a new run from another checkpoint's weights only:
    a fresh history, its source recorded in ``run_info.json``."""
    from pytorch_lightning.callbacks import Timer

    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    _prepare_process(cfg)
    ckpt_path = str(out_dir / CHECKPOINTS / LAST_CKPT) if resume else None
    if ckpt_path:  # read safely and checked here; fit then restores it (weights_only, fitting.py)
        read_for_model(cfg, ckpt_path, key=None)
    source = read_for_model(cfg, str(cfg.ckpt_path)) if cfg.get("ckpt_path") else None

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    init_from = init_weights(module, source) if source and not resume else None
    # the Timer keeps the run's training time in every checkpoint, so a resumed run's wall time
    # counts all its sessions
    clock = Timer(interval="epoch")
    callbacks = _callbacks(cfg, clock, signals)
    loggers = [instantiate_logger(name, c, out_dir) for name, c in (cfg.get("logger") or {}).items()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=trainer_plugins())
    settings = record_start(cfg, loggers, init_from)

    if signals is not None:
        signals.check()  # a signal while the run was set up: stop before the fit
    done = fit(trainer, module, datamodule, ckpt_path, clock, out_dir / CHECKPOINTS)
    if done.signal or done.stop_reason == PRUNED:  # no test on an interrupted run (its numbers come after `resume=true`) or a pruned trial
        test = {k: float("nan") for k in TEST_KEYS}
    else:
        test = trainer.test(module, datamodule=datamodule, ckpt_path=done.best_ckpt or None, verbose=False, weights_only=True)[0]
    metrics = run_metrics(cfg, done, test, settings, start)
    if trainer.is_global_zero:
        record_end(out_dir, metrics, loggers, settings, interrupted=bool(done.signal))
    if done.signal:
        raise RunInterrupted(done.signal, out_dir)
    return metrics


def _prepare_process(cfg: DictConfig) -> None:
    """Torch's threads and flags, the third-party noise silenced when asked, and the seed."""
    import pytorch_lightning as pl

    from vaelab.training.runtime import configure_torch, silence_third_party_noise

    configure_torch(cfg.get("threads"))
    if OmegaConf.select(cfg, "extras.ignore_warnings", default=False):
        silence_third_party_noise()
        if OmegaConf.select(cfg, "logger.wandb") is not None:
            wandb_run.quiet()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)


def _callbacks(cfg: DictConfig, clock: Any, signals: JobSignals | None) -> list[Any]:
    """The configured callbacks, then those that are not choices: the run's clock, checkpoint paths
    that follow a copied or moved run dir, the job's signals during the fit, and an Optuna search's
    pruner, if any. With the progress bar off, no bar callback: Lightning refuses one."""
    from pytorch_lightning.callbacks import ProgressBar

    from vaelab.training.checkpoint import RunDirRelocation

    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    callbacks += [clock, RunDirRelocation(Path(cfg.paths.output_dir) / CHECKPOINTS)]
    callbacks += ([signals.callback()] if signals is not None else []) + search_pruning()
    if not cfg.trainer.get("enable_progress_bar"):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


@hydra.main(version_base="1.3", config_path="pkg://vaelab.conf", config_name="train")
def run(cfg: DictConfig) -> float | None:
    """Hydra task: one training job (:func:`train_task`)."""
    return train_task(cfg)


def train_task(cfg: DictConfig) -> float | None:
    """One training job, from a composed config: :func:`vaelab.runs.job.run_job` checks it, claims
    the run dir, calls :func:`train` and records the status. Returns the sweepers' objective (None
    for a failed job). User errors become one line; in a single run they exit (``SystemExit``)
    non-zero, in a multirun the job is marked failed in its run dir and the sweep goes on (the sweep
    summary reports it and exits non-zero). SIGTERM and Ctrl-C before or during training end the
    job as ``interrupted``; after training it finishes its test as ``completed``
    (:mod:`vaelab.runs.signals`).

    The Hydra task of ``vaelab.train``; tests call it in process on a config composed with
    ``hydra.compose`` (``HydraConfig`` set, ``paths.output_dir`` a temp dir)."""
    ignore_known_warnings()  # again: a launcher's worker process runs this function without importing this module
    return run_job(cfg, train)


def main() -> None:
    """Console entry point: check the command line, then hand over to Hydra."""
    check_overrides(sys.argv[1:], config_name="train")
    run()


if __name__ == "__main__":
    main()
