"""Finding the jobs of finished sweeps: every job folder Hydra made, plus the jobs the sweep's
command line asked for that never started, each with its status, settings and numbers."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.errors import UserError, warn
from vaelab.runs.layout import (
    COMPLETED,
    EVAL,
    HYDRA_CONFIG,
    HYDRA_RECORD,
    HYDRA_SETTINGS,
    METRICS,
    MULTIRUN_RECORD,
    RUN_INFO,
    expected_jobs,
    read_json,
    task_overrides,
)
from vaelab.runs.lock import job_status
from vaelab.training.module import DEFAULT_NET
from vaelab.vae.nets import short_name


@dataclass
class Job:
    """One job of a sweep, whatever became of it."""

    sweep: Path
    name: str  # the job's folder name (Hydra job number)
    status: str  # completed | failed | interrupted | pruned | running | killed | not started | unknown
    error: str = ""
    kl: str | None = None
    latent_dim: int | None = None
    seed: int | None = None
    net: str = DEFAULT_NET  # model.net: rows of different networks or data sets are never pooled
    dataset: str = "mnist"
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    # the job's whole config, flattened to dotted keys: what tells two jobs' rows apart (row_settings)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.sweep / self.name

    @property
    def family(self) -> str:
        return family(self.net, self.dataset)

    @property
    def label(self) -> str:
        """The job's row without its latent dim: the kl form, after the family when there is one."""
        return f"{self.family} {self.kl}" if self.family else str(self.kl)

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED and bool(self.metrics)

    @property
    def converged(self) -> bool:
        """Whether the run passed its minimum: the minimal validation loss came before its last
        epoch. A run whose minimum is its last epoch (stopped by the epoch cap while still
        improving) gives an upper bound on its minimum, not the minimum."""
        return self.ok and 0 < int(self.metrics.get("val_loss_min_epoch", 0)) < int(self.metrics.get("epochs", 0))

    def value(self, key: str) -> float:
        """A number from metrics.json, else eval.json; NaN when neither has it."""
        v = self.metrics.get(key, self.evaluation.get(key))
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan

    def why_missing(self) -> str:
        if self.status == COMPLETED and not self.metrics:
            return "no metrics.json"
        first = self.error.strip().splitlines()[0] if self.error.strip() else ""
        return f"{self.status}: {first}" if first else self.status


def family(net: str, dataset: str) -> str:
    """The network (its class name) and data set where they are not the report's MLP on MNIST ('' for
    it): part of the labels, file names and W&B keys of a row, so rows of two models never share one."""
    return "_".join(v for v, default in ((short_name(net), short_name(DEFAULT_NET)), (dataset, "mnist")) if v != default)


# Job field -> config key: what tells jobs apart in the table
IDENTITY = {"kl": "model.kl", "latent_dim": "model.latent_dim", "seed": "seed", "net": "model.net", "dataset": "data.dataset"}


def _named(info: dict[str, Any]) -> dict[str, Any]:
    """The Job fields of ``info``; net and dataset keep their defaults (the MLP, mnist) when unknown."""
    return {k: v for k, v in info.items() if k in IDENTITY and (v is not None or k not in ("net", "dataset"))}


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What names a job in the table, from its flattened config: kl form, latent dim, seed, network, data set."""
    return {key: settings.get(path) for key, path in IDENTITY.items()}


def _job_config(job_dir: Path) -> dict[str, Any]:
    """A job's config, flattened: Hydra's saved record (present even when the job failed before
    training), overlaid with the resolved config of run_info.json where the job wrote one."""
    from omegaconf import OmegaConf

    settings: dict[str, Any] = {}
    path = job_dir / HYDRA_RECORD / HYDRA_CONFIG
    if path.is_file():
        try:
            settings = flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
        except Exception as exc:  # a YAML or I/O error of any kind: the job is still listed
            warn(f"cannot read {path} ({type(exc).__name__}: {exc}); job {job_dir.name} is listed without its settings")
    recorded = read_json(job_dir / RUN_INFO).get("config")
    if isinstance(recorded, dict):
        settings.update(flatten(recorded))
    return settings


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 0.001}}`` -> ``{"model.lr": 0.001}``; lists stay values."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


# config keys that say where or how a job ran, not what it computed (prefix match): never row keys
NOT_SETTINGS = (
    "seed", "model.seed", "data.seed", "data.root", "data.download", "data.mirror", "data.on_device", "paths.", "hydra.", "logger.", "tags", "print_config",
    "resume", "threads", "extras.", "trainer.default_root_dir", "trainer.enable_progress_bar", "callbacks.model_checkpoint.dirpath",
    "callbacks.last_checkpoint.dirpath", "callbacks.images.out_dir", "callbacks.progress.label", "callbacks.progress_bar.label",
)  # fmt: skip


def row_settings(jobs: Sequence[Job]) -> list[str]:
    """The config keys whose values differ between ``jobs`` besides the seed and the table's own
    columns (network, data set, kl form, latent dim): each becomes a column, and jobs that differ
    in any of them are never pooled into one row (an Optuna search's trials, a sweep over lr).

    Read from the jobs that ran (their resolved run_info.json config; never-started jobs only have
    a composed, unresolved one), over the keys all of them record."""
    own = set(IDENTITY.values())
    ran = [j for j in jobs if j.settings and j.status != "not started"] or [j for j in jobs if j.settings]
    if not ran:
        return []
    keys = set.intersection(*(set(j.settings) for j in ran))
    varying = []
    for key in sorted(keys):
        if key in own or any(key == p or (p.endswith(".") and key.startswith(p)) for p in NOT_SETTINGS):
            continue
        if len({repr(j.settings.get(key)) for j in ran}) > 1:
            varying.append(key)
    return varying


def _expected_jobs(sweep: Path) -> list[list[str]]:
    """The override list of every job the sweep's command line asked for, read from its
    multirun.yaml (:func:`vaelab.runs.layout.expected_jobs`); ``[]`` when that cannot tell."""
    from omegaconf import OmegaConf

    path = sweep / MULTIRUN_RECORD
    if not path.is_file():
        return []
    try:
        jobs = expected_jobs(OmegaConf.load(path))
    except Exception as exc:  # YAML, I/O or override-grammar errors: jobs that never started go unlisted
        warn(f"cannot read the command line of {path} ({type(exc).__name__}: {exc}); jobs that never started are not listed")
        return []
    return jobs or []


def _compose_job(overrides: list[str]) -> dict[str, Any]:
    """The flattened config of a job that never started, by composing its overrides."""
    from hydra import compose, initialize_config_dir

    from vaelab.config.resolvers import register
    from vaelab.paths import CONF_DIR

    register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    except Exception as exc:  # Hydra composition errors of any kind: the job is listed, unnamed
        warn(f"cannot compose the settings of a job that never started ({' '.join(overrides)}): {type(exc).__name__}: {exc}")
        return {}
    from omegaconf import OmegaConf

    return flatten(OmegaConf.to_container(cfg, resolve=False))


@dataclass(frozen=True)
class Objective:
    """What an Optuna search optimised: a number of metrics.json (``optimized_metric``) and the
    sweeper's ``direction``: the report names the best trial by it."""

    metric: str
    direction: str  # minimize | maximize

    def best_first(self, value: float) -> float:
        """A sort key: the best value first, NaN (no completed job) last."""
        if not math.isfinite(value):
            return math.inf
        return value if self.direction == "minimize" else -value


def search_objective(jobs: Sequence[Job]) -> Objective | None:
    """The objective of the Optuna search the jobs belong to, from their Hydra record
    (``.hydra/hydra.yaml``: ``hydra.sweeper._target_`` and ``direction``) and config
    (``optimized_metric``); None for other sweeps, and for a search of several objectives."""
    from omegaconf import OmegaConf

    for job in jobs:
        path = job.dir / HYDRA_RECORD / HYDRA_SETTINGS
        if not path.is_file():
            continue
        try:
            sweeper = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper")
        except Exception as exc:  # a YAML or I/O error of any kind: the next job's record may do
            warn(f"cannot read {path} ({type(exc).__name__}: {exc})")
            continue
        if sweeper is None or "optuna" not in str(OmegaConf.select(sweeper, "_target_", default="")).lower():
            return None
        direction = OmegaConf.select(sweeper, "direction", default="minimize")
        if not isinstance(direction, str):  # a list: several objectives, no single best trial
            return None
        return Objective(str(job.settings.get("optimized_metric") or "val_loss_min"), direction.lower())
    return None


def sweep_command(sweep: Path) -> str | None:
    """The training command line of a sweep, rebuilt from Hydra's multirun.yaml."""
    from omegaconf import OmegaConf

    path = sweep / MULTIRUN_RECORD
    if not path.is_file():
        return None
    return "python -m vaelab.train -m " + " ".join(shlex.quote(t) for t in task_overrides(OmegaConf.load(path)))


def collect_jobs(sweeps: Sequence[Path]) -> list[Job]:
    """Every job of every sweep: the folders Hydra made, plus jobs the command line asked for that
    have no folder (the sweep was stopped before them)."""
    from vaelab.runs.sweep import job_dirs

    jobs: list[Job] = []
    for sweep in sweeps:
        if not sweep.is_dir():
            raise UserError(f"sweep dir {sweep} does not exist: give the hydra.sweep.dir of a finished multirun")
        found = {p.name: p for p in job_dirs(sweep)}
        for p in sweep.iterdir():  # a job dir with metrics.json but no status.json still counts
            if p.is_dir() and (p / METRICS).is_file():
                found.setdefault(p.name, p)
        for name, path in found.items():
            status = job_status(path)  # a killed job's reads killed, not running
            metrics = read_json(path / METRICS)
            settings = _job_config(path)
            # metrics.json written before net/dataset were recorded: the job's config names them
            info = {**_identity(settings), **{k: metrics[k] for k in IDENTITY if k in metrics}}
            state = status.get("status", COMPLETED if metrics else "unknown")
            evaluation = read_json(path / EVAL)
            why = status.get("error") or status.get("reason", "")  # a pruned trial's reason is no error
            jobs.append(Job(sweep, name, state, why, **_named(info), metrics=metrics, evaluation=evaluation, settings=settings))
        for num, overrides in enumerate(_expected_jobs(sweep)):
            if str(num) not in found:
                settings = _compose_job(overrides)
                jobs.append(Job(sweep, str(num), "not started", "", **_named(_identity(settings)), settings=settings))
    if not jobs:
        raise UserError(
            f"no jobs found in {', '.join(map(str, sweeps))}: give multirun folders (hydra.sweep.dir) whose job folders hold status.json/metrics.json"
        )
    return jobs
