"""The run dir contract: the files a training run writes, their names, and how they are written
and read. Everything that touches a run dir (train, evaluate, the sweep summary, the report, the
tests) goes through these names and functions, so there is one definition of each.

A run dir holds::

    run_info.json      resolved config + provenance (written at start)
    status.json        running | completed | failed | interrupted | pruned (+ error, signal, reason);
                       a process killed outright leaves running: readers call it killed
                       when no process holds the run dir's lock (.lock; vaelab.runs.lock.job_status)
    metrics.json       a :class:`Metrics` record (written at the end, or on interruption)
    eval.json          vaelab.evaluate's numbers for the best checkpoint (optional)
    checkpoints/       best-epochNNN.ckpt (minimal val/loss) and last.ckpt (newest epoch)
    images/            image panels (PNG)
    wandb/             the W&B run(s), offline unless WANDB_MODE says otherwise
    samples/           vaelab-sample's files: latents_<split>.pt, samples.png, latent_grid.png
    .hydra/            Hydra's record of the command: config.yaml, hydra.yaml, overrides.yaml,
                       written once the run dir is claimed (vaelab.runs.claim.write_hydra_record)

A multirun's sweep dir holds one such run dir per job (``0``, ``1``, ...) and Hydra's
``multirun.yaml``: the first job's config with the command line, from which
:func:`expected_jobs` tells which jobs the command asked for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaelab.errors import UserError

if TYPE_CHECKING:
    from omegaconf import DictConfig

RUN_INFO = "run_info.json"
STATUS = "status.json"
METRICS = "metrics.json"
EVAL = "eval.json"
CHECKPOINTS = "checkpoints"
# vaelab-sample's folder and files (vaelab.runs.trained)
SAMPLES = "samples"
LATENTS = "latents_{split}.pt"
SAMPLES_PNG = "samples.png"
GRID_PNG = "latent_grid.png"
# Hydra's record of a job's command (its output_subdir, which vaelab writes itself: see claim.py),
# and its three files: the job's config, Hydra's own config, the command line's overrides
HYDRA_RECORD = ".hydra"
HYDRA_CONFIG, HYDRA_SETTINGS, HYDRA_OVERRIDES = "config.yaml", "hydra.yaml", "overrides.yaml"
# Hydra's record of a multirun in its sweep dir: the first job's config and the command line
MULTIRUN_RECORD = "multirun.yaml"
LAST_CKPT = "last.ckpt"
# the best checkpoints, best-epochNNN.ckpt (conf/callbacks/default.yaml's model_checkpoint.filename)
BEST_CKPT_GLOB = "best-*.ckpt"
# the run's W&B folder (W&B's own files, links included: vaelab does not look inside)
WANDB_DIR = "wandb"
# the run dir's lock file, held while a process works in the run dir (vaelab.runs.lock)
LOCK = ".lock"

# status.json "status" values; pruned: an Optuna pruner stopped the trial early (vaelab.runs.pruning)
RUNNING, COMPLETED, FAILED, INTERRUPTED, PRUNED = "running", "completed", "failed", "interrupted", "pruned"
# not a status.json value: what readers (vaelab.runs.lock.job_status) call a job whose status.json
# says running while no process holds its run dir's lock: its process was killed outright
KILLED = "killed"
# metrics.json "stop_reason" values (see vaelab.training.callbacks.stop_reason)
STOP_REASONS = ("early_stopping", "max_epochs", "diverged", "interrupted", "pruned")


@dataclass
class Metrics:
    """What ``metrics.json`` holds: one run's numbers, nats per image (for ``recon=bce``)."""

    latent_dim: int
    seed: int
    kl: str  # latent penalty: paper (eq. 3) or analytic (exact KL)
    net: str  # the network class, by import path (model.net; vaelab.vae.nets)
    dataset: str  # mnist or fashion_mnist (data.dataset; vaelab.data.idx_files.DATASETS)
    recon: str
    beta: float
    binarize: str
    epochs: int  # epochs trained (1-based count)
    max_epochs: int  # the epoch cap
    stop_reason: str  # one of STOP_REASONS
    val_loss_min: float  # the report's number: minimal validation loss over the run
    val_loss_min_epoch: int  # 1-based epoch of that minimum
    test_loss: float  # of the best checkpoint (NaN when interrupted: not tested)
    test_nelbo: float
    test_recon: float
    test_kl: float
    best_ckpt: str | None
    wall_time_s: float  # all sessions of the run, resumed ones included
    git_commit: str | None  # None outside a git checkout (an installed package): vaelab_version says
    vaelab_version: str | None = None  # the package version, from its installed metadata
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# the keys of metrics.json that hold results (not paths, times or commits): two runs with the
# same settings must agree on all of them, bit for bit
RESULT_KEYS = ("val_loss_min", "val_loss_min_epoch", "test_loss", "test_nelbo", "test_recon", "test_kl", "history", "epochs", "stop_reason")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename), so a killed process never leaves half a file.
    A failed write (disk full, read-only file) is one :class:`UserError` naming the file; the
    temp file is removed. The temp file is made new (``O_EXCL``): a leftover one, or a symbolic
    link planted at its name, is removed rather than written through."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666), "w") as f:
            f.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; free disk space or make the run dir writable") from None


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file does not exist. A file that exists but is
    not a JSON object (cut short, edited by hand) is a :class:`UserError` naming it: a corrupt
    result must not pass for a missing one."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError:
        raise UserError(f"{path} is not valid JSON (cut short or edited?): fix or delete it, or re-run that job") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} does not hold a JSON object: fix or delete it, or re-run that job")
    return value


def check_metric_name(key: str, name: object) -> None:
    """``key`` (e.g. ``optimized_metric``, what a sweeper optimises), when set, must name a number
    of metrics.json; else one :class:`UserError` listing them."""
    import dataclasses

    numbers = [f.name for f in dataclasses.fields(Metrics) if f.type == "float" and f.name != "beta"]
    if name is not None and str(name) not in numbers:
        raise UserError(f"{key}={name} is not a number of metrics.json: choose one of {', '.join(numbers)}")


def task_overrides(config: DictConfig) -> list[str]:
    """A multirun's command-line overrides (``hydra.overrides.task`` of its config or
    multirun.yaml) as typed: an interpolation such as ``tags=[reproduce,kl-${model.kl}]`` stays
    unresolved, since it is resolved per job (iterating the list would resolve it against the one
    job's config at hand); ``[]`` when the config records none."""
    from omegaconf import ListConfig, OmegaConf

    task = OmegaConf.select(config, "hydra.overrides.task")
    return [str(t) for t in OmegaConf.to_container(task, resolve=False)] if isinstance(task, ListConfig) else []


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """The override list of every job a multirun's command line asked for, in job-number order:
    Hydra's basic sweeper runs the cartesian product of the sweep overrides' values (``a=1,2``), in
    the order given. None for another sweeper (Optuna decides its trials as it goes). ``config``:
    the multirun's config (Hydra's, or its multirun.yaml; no ``hydra.sweeper`` means Hydra's
    default, the basic sweeper). Raises Hydra's parse error for an override it cannot read."""
    import itertools

    from omegaconf import OmegaConf

    from vaelab.config.validate import override_choices

    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default="") or "")
    if sweeper and not sweeper.endswith("BasicSweeper"):
        return None
    return [list(job) for job in itertools.product(*override_choices(task_overrides(config)))]
