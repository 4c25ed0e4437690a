"""Reading a finished training run back: its files, its best checkpoint and its data.

A run dir holds ``metrics.json``, ``run_info.json`` (resolved config + provenance),
``status.json``, ``checkpoints/`` and, after evaluation, ``eval.json``. The evaluation, the report
and the notebook all go through here, so they agree on where things are and on which data a model
was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaelab.errors import UserError, no_checkpoint
from vaelab.runs.layout import BEST_CKPT_GLOB, CHECKPOINTS, METRICS, RUN_INFO, read_json

if TYPE_CHECKING:  # torch and Lightning are imported when a checkpoint is read, not with this module
    from vaelab.training.checkpoint import Checkpoint

# data settings that define what a model saw; read from the run so evaluation matches training
RUN_DATA_KEYS = ("dataset", "binarize", "val_size", "split_seed")


def run_dir_of(ckpt_path: Path) -> Path:
    """The run dir a checkpoint belongs to (``<run>/checkpoints/x.ckpt`` -> ``<run>``)."""
    ckpt_path = Path(ckpt_path)
    return ckpt_path.parent.parent if ckpt_path.parent.name == CHECKPOINTS else ckpt_path.parent


def best_checkpoint(run_dir: Path) -> Path:
    """The best checkpoint of a run: ``best_ckpt`` of its metrics.json, else ``checkpoints/best-*.ckpt``."""
    run_dir = Path(run_dir)
    named = read_json(run_dir / METRICS).get("best_ckpt")
    if named and Path(named).is_file():
        return Path(named)
    found = sorted((run_dir / CHECKPOINTS).glob(BEST_CKPT_GLOB))
    if found:
        return found[-1]
    raise UserError(f"{run_dir} holds no best checkpoint ({CHECKPOINTS}/{BEST_CKPT_GLOB}): give the dir of a finished training run")


def open_checkpoint(ckpt_path: str | Path | Checkpoint | None, key: str | None = "ckpt_path") -> Checkpoint:
    """The checkpoint ``ckpt_path`` names, read once (safely: :mod:`vaelab.training.checkpoint`) and
    checked to be a vaelab checkpoint of any shape; its path resolved (one already opened is
    returned as it is). What the evaluation, the sample command, the report and the notebook take a
    model from. ``key``: the option an error line names (None: the file alone, e.g. a run's best)."""
    if not isinstance(ckpt_path, (str, Path, type(None))):
        return ckpt_path  # a Checkpoint
    if ckpt_path in (None, "", "???"):
        raise UserError("ckpt_path is required: give a training checkpoint, e.g. ckpt_path=<run dir>/checkpoints/best-epoch039.ckpt")
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():  # before importing torch: a mistyped path is answered in a second
        raise no_checkpoint(path)
    from vaelab.training.checkpoint import read_checkpoint

    return read_checkpoint(path.resolve(), key=key)


def load_module(ckpt: str | Path | Checkpoint):
    """The :class:`~vaelab.training.module.VAEModule` of a checkpoint (a path, or one already
    opened), on the CPU, in eval mode."""
    return open_checkpoint(ckpt).module()


def run_data_settings(run_dir: Path) -> dict[str, Any]:
    """The data settings a run was trained with (:data:`RUN_DATA_KEYS` and ``root``), from run_info.json."""
    data = read_json(Path(run_dir) / RUN_INFO).get("config", {}).get("data", {})
    return {k: data[k] for k in (*RUN_DATA_KEYS, "root") if k in data}


def datamodule_for_run(run_dir: Path, root: str | Path | None = None, **overrides: Any):
    """An :class:`~vaelab.data.datamodule.MNISTDataModule` set up with the data settings the run was trained with.

    ``root`` defaults to the run's own data root; ``overrides`` win over the run's settings.
    The splits stay on the CPU; files are not downloaded.
    """
    from vaelab.data.datamodule import MNISTDataModule

    settings = run_data_settings(run_dir)
    root = root if root is not None else settings.get("root")
    if root is None:
        raise UserError(f"{run_dir}/run_info.json does not say which data root the run used: pass the data root (data.root / VAELAB_DATA_ROOT)")
    kwargs = {k: settings[k] for k in RUN_DATA_KEYS if k in settings}
    kwargs.update(overrides)
    dm = MNISTDataModule(root=str(root), download=False, on_device=False, **kwargs)
    dm.setup()
    return dm


def init_weights(module: Any, source: Checkpoint) -> dict[str, Any]:
    """Load the model weights of checkpoint ``source`` into ``module`` (nothing else: a run started
    with ``ckpt_path`` has its own optimiser state, epochs and history); returns what its
    run_info.json records of the source."""
    module.load_state_dict(source.state_dict)
    return {"ckpt_path": str(source.path.resolve()), "config": read_json(run_dir_of(source.path) / RUN_INFO).get("config")}
