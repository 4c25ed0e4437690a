"""Optuna pruning inside a search's job: the job re-opens its own trial in the stored study and
reports ``val/loss`` after every epoch; the study's pruner says whether to stop.

The trial object lives in the sweeper's process, and a job may run in another (the joblib and
SLURM launchers): the job finds its trial from what every launcher gives it, Hydra's job config
(``hydra.sweeper.storage``, ``study_name``, ``pruner``) and its job number, which vaelab's sweeper
keeps equal to the trial number (``hydra_plugins/vaelab_launcher/optuna.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaelab.runs.layout import PRUNED, STATUS, Metrics, write_json


def search_pruning() -> list[Any]:
    """``[Pruning callback]`` for a job of an Optuna search with ``hydra.sweeper.pruner`` set;
    ``[]`` otherwise (a single run, another sweeper, pruning off)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    pruner_cfg = OmegaConf.select(hydra_cfg, "sweeper.pruner")
    storage_url = OmegaConf.select(hydra_cfg, "sweeper.storage")
    if pruner_cfg is None or not storage_url or hydra_cfg.mode != RunMode.MULTIRUN:  # a job of the search, not a lone run
        return []
    import optuna
    from hydra.utils import instantiate

    from vaelab.training.callbacks import Pruning

    storage = optuna.storages.RDBStorage(str(storage_url))
    name = str(hydra_cfg.sweeper.study_name)
    study = optuna.load_study(study_name=name, storage=storage, pruner=instantiate(pruner_cfg))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), int(hydra_cfg.job.num))
    trial = optuna.trial.Trial(study, trial_id)

    def judge(value: float, epoch: int) -> bool:
        trial.report(value, epoch)
        return bool(trial.should_prune())

    return [Pruning(judge)]


def record_pruned(out_dir: Path, metrics: Metrics) -> None:
    """Record a job its search's pruner stopped as ``pruned`` in its ``status.json``, with the
    epoch and value it was judged on (the sweeper reads it to tell the study PRUNED); returns the
    job's value for the sweeper: None, a pruned trial has no objective."""
    reason = f"by the search's pruner after epoch {metrics.epochs}, at val/loss {metrics.history[-1]['val/loss']:.3f}"
    write_json(out_dir / STATUS, {"status": PRUNED, "reason": reason})
    print(f"pruned {out_dir}: {reason}", flush=True)
