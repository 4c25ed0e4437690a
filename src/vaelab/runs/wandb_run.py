"""W&B run handling around Lightning's WandbLogger: which mode, which run id, which group, the
charts' x axis, checkpoint artifacts and their use, and clean endings.

- Online needs a login and a reachable server; when either is missing we fall back to offline
  with one warning, so training never stops for logging (``wandb sync`` uploads the run later).
- The run id is stored in the run dir (``wandb_run_id``), so a resumed run continues the same W&B
  run instead of starting a new one.
- The group (resolver ``vaelab.wandb_group``): a multirun's jobs share one group named after the
  sweep folder; a single run is grouped as ``<first tag>_<date>`` (``dev_2026-11-27``).
- :data:`EpochWandbLogger` (the ``logger=wandb`` target) declares the epoch-level metrics with the
  1-based ``epoch`` as their x axis (``val/loss`` and ``val/nelbo`` summarised by their minimum),
  logs an epoch's image panels in one row at that epoch's x position, and uploads only the best
  checkpoint as an artifact (``log_model``), never ``last.ckpt``.
- :func:`checkpoint_artifact` / :func:`use_artifacts`: the evaluation and report runs declare the
  checkpoint artifacts they read, so W&B shows the lineage (online only: wandb refuses
  ``use_artifact`` offline; the names are then kept in the run's config).
- Every job's run is finished when the job ends (failed jobs with exit code 1), so the jobs of a
  multirun in one process each get their own run.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import OmegaConf

from vaelab.errors import warn
from vaelab.runs.layout import METRICS, RUN_INFO, read_json

RUN_ID_FILE = "wandb_run_id"
# the x axis of every epoch-level chart: the 1-based epoch (vaelab.training.callbacks.EpochAxis logs it)
EPOCH_KEY = "epoch"
# epoch-level metrics whose W&B summary is their minimum over the run, not their last value
MIN_METRICS = ("val/loss", "val/nelbo")


def _server_reachable(base_url: str, timeout_s: float = 3.0) -> bool:
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_mode(mode: str) -> str:
    """The W&B mode to use: ``mode`` itself, or ``offline`` (with one warning) when online cannot work."""
    if mode != "online":
        return mode
    import wandb

    settings = wandb.Settings()
    api_key = os.environ.get("WANDB_API_KEY")
    if not api_key:
        try:  # the key `wandb login` stored in ~/.netrc
            from wandb.sdk.lib.wbauth import read_netrc_auth

            api_key = read_netrc_auth(host=settings.base_url)
        except Exception:
            api_key = None
    reason = None
    if not api_key:
        reason = "no W&B login (run `wandb login` or set WANDB_API_KEY)"
    elif not _server_reachable(settings.base_url):
        reason = f"W&B server {settings.base_url} is not reachable"
    if reason:
        warn(f"W&B online mode asked but {reason}: logging offline instead; upload later with `wandb sync <run dir>/wandb/offline-run-*`")
        os.environ["WANDB_MODE"] = "offline"
        return "offline"
    return mode


def run_id(out_dir: Path) -> str:
    """The W&B run id of this run: the one stored in this run dir (a resumed run continues its W&B
    run), else a new one, stored there. A run started from another run's weights (``ckpt_path``)
    has its own dir, so its own W&B run."""
    from wandb.sdk.lib.runid import generate_id

    path = out_dir / RUN_ID_FILE
    stored = path.read_text().strip() if path.is_file() else ""
    rid = stored or generate_id()
    path.write_text(rid + "\n")
    return rid


def finish(failed: bool) -> None:
    """Close this job's W&B run, if one is open."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            try:
                wandb.finish(exit_code=1 if failed else 0)
            except (ConnectionError, OSError) as exc:
                # the W&B service process is gone: SLURM signals every process of a job on preemption
                # or requeue, wandb-core included. The run's files are already on disk.
                warn(f"the W&B run could not be closed ({type(exc).__name__}: {exc}); its offline files are kept")


def update_summary(loggers: Iterable[Any], values: dict[str, Any], interrupted: bool) -> None:
    """Write the run's end-of-run numbers into the W&B summary of every W&B logger. On a run a
    signal interrupted, the service may be gone already (SLURM signals every process of a job):
    then the summary is skipped with a warning, and the resumed run writes it."""
    for logger in loggers:
        if not (hasattr(logger, "experiment") and hasattr(logger.experiment, "summary")):
            continue
        try:
            logger.experiment.summary.update(values)
        except ConnectionError as exc:
            if not interrupted:
                raise
            warn(f"W&B summary not written ({type(exc).__name__}: {exc}): the signal stopped W&B's service too")


# ------------------------------------------------------------------------------------ the group
def group_name(mode: Any, sweep_dir: str, tag: str, date: str) -> str:
    """The W&B group of a job: a multirun's jobs share one, named after the sweep folder; a single
    run's is ``<tag>_<date>`` (its first tag, ``dev`` by default), not a timestamp of a sweep that
    never ran. ``mode`` is Hydra's run mode (``RunMode.RUN`` / ``RunMode.MULTIRUN`` or its name)."""
    if str(getattr(mode, "name", mode)).upper().endswith("MULTIRUN"):
        return os.path.basename(os.path.normpath(str(sweep_dir)))
    return f"{tag or 'dev'}_{date}"


def trial_values(sweeper: Any, task: Any) -> str:
    """What a search trial's run name adds: its values of the searched keys (``_lr=0.00024_hidden.0=256``
    for ``hparams_search=optuna``), so each trial's W&B run says what it tried; '' outside a search."""
    params = dict(sweeper.get("params") or {}) if hasattr(sweeper, "get") else {}
    values = [str(o) for o in (task or []) if str(o).split("=", 1)[0] in params]
    return "".join("_" + v.removeprefix("model.") for v in values)


# registered on import: vaelab.train imports this module before Hydra composes its config
OmegaConf.register_new_resolver("vaelab.wandb_group", group_name, replace=True)
OmegaConf.register_new_resolver("vaelab.trial_values", trial_values, replace=True)


# ------------------------------------------------------------------------------------ the logger
def epoch_metrics() -> list[str]:
    """The metrics logged once per epoch, charted against ``epoch``: the validation terms, the best
    validation loss so far, the training loss, the epoch's learning rate and the image panels."""
    from vaelab.training.module import LR_KEY, TERMS
    from vaelab.vae.views import PANELS

    return [*(f"val/{t}" for t in TERMS), "val/loss_best", "train/loss", LR_KEY, *(f"images/{p}" for p in PANELS)]


def declare_metrics(run: Any) -> None:
    """``define_metric`` for the epoch-level metrics: x axis ``epoch``; ``val/loss`` and
    ``val/nelbo`` summarised by their minimum. Exact names: W&B applies the first matching glob,
    and Lightning's ``*`` (x axis ``trainer/global_step``) comes first."""
    run.define_metric(EPOCH_KEY)
    for key in epoch_metrics():
        run.define_metric(key, step_metric=EPOCH_KEY, summary="min" if key in MIN_METRICS else None)


@functools.cache
def _logger_class() -> type:
    from pytorch_lightning.loggers import WandbLogger
    from pytorch_lightning.utilities import rank_zero_only

    class EpochWandbLogger(WandbLogger):
        """Lightning's WandbLogger with vaelab's charts and checkpoint artifacts (see the module doc)."""

        @property
        def experiment(self) -> Any:
            fresh = self._experiment is None
            run = WandbLogger.experiment.fget(self)
            if fresh and self._experiment is not None and hasattr(self._experiment, "define_metric"):
                declare_metrics(self._experiment)
            return run

        @rank_zero_only
        def log_panels(self, panels: Mapping[str, Any], epoch: int, step: int) -> None:
            """One history row with an epoch's image panels (``images/<name>``, ``[3, H, W]`` uint8
            tensors) at that epoch's x position: the same ``epoch`` and ``trainer/global_step`` as
            the epoch's metrics. Raises OSError when the PNGs cannot be written (full disk)."""
            import wandb

            row: dict[str, Any] = {f"images/{k}": wandb.Image(v, caption=f"epoch {epoch}") for k, v in panels.items()}
            self.log_metrics({**row, EPOCH_KEY: epoch}, step=step)

        def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
            # only the monitored (best) checkpoint becomes an artifact: last.ckpt would take the
            # "best" alias (Lightning gives it to an unmonitored callback's newest file) and would
            # upload every epoch
            if getattr(checkpoint_callback, "monitor", None) is None:
                return
            super().after_save_checkpoint(checkpoint_callback)

    # importable (and picklable) as vaelab.runs.wandb_run.EpochWandbLogger, the name the config gives
    EpochWandbLogger.__module__, EpochWandbLogger.__qualname__ = __name__, "EpochWandbLogger"
    return EpochWandbLogger


def __getattr__(name: str) -> Any:
    # EpochWandbLogger is built on first use, so importing this module (vaelab.train does, before
    # checking the command line) does not import Lightning
    if name == "EpochWandbLogger":
        return _logger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------ artifacts
def wandb_settings(run_dir: Path) -> dict[str, Any]:
    """The W&B settings a run was trained with (its config's ``logger.wandb``: project, group, name,
    tags, log_model, ...) from its run_info.json; ``{}`` when it logged to no W&B run. What the
    evaluation, the report and the artifact names read to follow the training run."""
    return ((read_json(Path(run_dir) / RUN_INFO).get("config") or {}).get("logger") or {}).get("wandb") or {}


def checkpoint_artifact(ckpt: Path | str) -> str | None:
    """The W&B artifact (``<project>/model-<run id>:best``) holding checkpoint ``ckpt``, or None when
    its run did not upload it: no W&B logger, ``log_model`` off, or ``ckpt`` is not the run's best
    checkpoint (only that one is uploaded)."""
    from vaelab.runs.reading import run_dir_of

    ckpt = Path(ckpt)
    run_dir = run_dir_of(ckpt)
    wb = wandb_settings(run_dir)
    best = read_json(run_dir / METRICS).get("best_ckpt")
    rid_file = run_dir / RUN_ID_FILE
    if not wb.get("log_model") or not best or Path(best).name != ckpt.name or not rid_file.is_file():
        return None
    return f"{wb.get('project') or 'vaelab'}/model-{rid_file.read_text().strip()}:best"


def use_artifacts(run: Any, names: Iterable[str]) -> None:
    """Declare the checkpoint artifacts ``names`` as inputs of ``run`` (the lineage graph). Offline
    W&B refuses ``use_artifact``: nothing is declared (the caller keeps the names in the config).
    An artifact that cannot be found (e.g. its training run was never synced) is one warning."""
    if getattr(run, "offline", False) or getattr(run, "disabled", False):
        return
    for name in names:
        try:
            run.use_artifact(name, type="model")
        except Exception as exc:  # lineage is a nicety: never stop the evaluation or report for it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warn(f"W&B lineage: cannot use artifact {name}: {first}")


def record_failure(node: Any, message: str, multirun: bool) -> None:
    """Record a failed job in W&B (``node``: the ``logger.wandb`` config, None without one): in its
    open run, or in a run of its own for a multirun job that failed before its run started. A
    single run that failed before W&B started is left alone: its error line says it all."""
    run_open = "wandb" in sys.modules and sys.modules["wandb"].run is not None
    if node is None or not (run_open or multirun):
        return
    try:
        import wandb

        if wandb.run is None:
            wandb.init(
                project=str(node.project),
                group=str(node.group),
                name=str(node.name),
                job_type=str(node.job_type),
                dir=str(node.save_dir),
                mode=resolve_mode(str(node.mode)),
                config={"error": message},
            )
        wandb.run.summary["error"] = message
    except Exception as exc:  # recording a failure must not hide the failure itself: say what was skipped
        warn(f"the failure was not recorded in W&B ({type(exc).__name__}: {exc})")


def quiet() -> None:
    """W&B's terminal chatter off for this process (``extras.ignore_warnings``): its sync hints
    and the deprecation warning for the ``anonymous`` setting, which Lightning's WandbLogger always
    passes. The run's files and its summary are unchanged; the run's end summary prints its path."""
    import wandb

    wandb.setup(settings=wandb.Settings(silent=True))
