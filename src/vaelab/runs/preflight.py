"""A training job's checks, made before its run dir is: a refused single run leaves nothing behind.

Hydra makes a single run's dir (``hydra.run.dir``) before it calls the task, so a value refused
by the task would leave a dir behind. :class:`CheckBeforeRunDir`, a Hydra callback
(``conf/hydra/default.yaml``), runs the same checks from ``on_run_start``, which Hydra calls on
the composed config before it makes the dir, and exits with the error line. The task checks again
(:func:`check_job`, cheap then: the data files' checks are cached): a multirun's jobs are checked
there, after their dir is made, so that the failed job's ``status.json`` is the sweep summary's
record of it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from vaelab.config.validate import exit_with, is_multirun, validate
from vaelab.errors import UserError
from vaelab.runs.layout import check_metric_name


def check_job(cfg: DictConfig) -> None:
    """Raise :class:`UserError` for the first value that refuses this training job: the config
    (:func:`vaelab.config.validate.validate`: the schema, the data, the paths the run writes),
    ``optimized_metric``, and the checkpoint ``ckpt_path`` names (read and checked, not yet loaded
    into the model)."""
    validate(cfg)
    check_metric_name("optimized_metric", cfg.get("optimized_metric"))
    source = cfg.get("ckpt_path")
    if source:
        read_for_model(cfg, str(source))


def read_for_model(cfg: DictConfig, path: str, key: str | None = "ckpt_path") -> Any:
    """The checkpoint at ``path``, read once and safely, and checked against this run's model (its
    latent dim, hidden sizes, network class and the class's own arguments): a
    :class:`vaelab.training.checkpoint.Checkpoint`; ``key`` names the setting in an error."""
    from vaelab.training.checkpoint import read_checkpoint

    model = cfg.model
    return read_checkpoint(path, model.latent_dim, list(model.hidden), str(model.net), model.get("net_args") or {}, key=key)


def refusal(cfg: DictConfig) -> UserError | None:
    """:func:`check_job` in the task: a single run it refuses exits here with the error line, before
    the task makes the run dir (from the command line, :class:`CheckBeforeRunDir` has refused it
    before Hydra made one); a multirun job's refusal is returned, for the task to record in the
    job's run dir."""
    try:
        check_job(cfg)
    except UserError as err:
        if not is_multirun():
            exit_with(err)
        return err
    return None


class CheckBeforeRunDir(Callback):
    """Check a single run before Hydra makes its run dir; refuse it with one line and exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # the run dir as Hydra's run_job will compute it; selecting it here also fixes ${now:...},
        # which the config caches, so that both name the same folder
        run_dir = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))
        full = copy.deepcopy(config)
        with read_write(full.hydra.runtime), open_dict(full.hydra.runtime):
            full.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(full)  # run_job sets it again, for the task
        task = copy.deepcopy(full)
        with read_write(task), open_dict(task):
            del task["hydra"]
        try:
            if task.get("resume") is True and not run_dir.is_dir():
                given = any(str(o).startswith("hydra.run.dir=") for o in config.hydra.overrides.hydra)
                raise UserError(
                    f"resume=true but the run dir {run_dir} does not exist{'' if given else ' (no hydra.run.dir was given)'}: "
                    f"pass hydra.run.dir=<the run dir to resume> (or -m ... hydra.sweep.dir=<the sweep dir> for a multirun)"
                )
            check_job(task)
        except UserError as err:
            exit_with(err)
