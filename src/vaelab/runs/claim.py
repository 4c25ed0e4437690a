"""Claiming a run dir before a job writes into it: so that no run can overwrite or mix with another.

- A run dir in use is locked (``.lock``, an OS file lock held for the life of the process and
  released by the OS even on SIGKILL): a second run into it stops with one line.
- A run dir that already holds a run is only continued with ``resume=true``, and only with the
  same settings: every key that shapes the numbers must match what ``run_info.json`` recorded.
- Resumed with ``resume=true``, a finished run or job is kept as it is (a single run stopped at its
  epoch cap trains on when the command raises ``trainer.max_epochs``); in a multirun an interrupted one
  continues from its ``last.ckpt``, and one that never started (or failed before its first
  checkpoint) starts fresh. A single run killed before its first checkpoint also starts over with
  ``resume=true``: a user resumes every interrupted run the same way.
- A run dir holding a symbolic link is refused: a run appends to files there (``train.log``, the
  W&B run id, the CSV logger's ``metrics.csv``) and would write through a link into its target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vaelab.errors import UserError
from vaelab.runs import layout
from vaelab.runs.layout import CHECKPOINTS, COMPLETED, HYDRA_RECORD, INTERRUPTED, LAST_CKPT, METRICS, RUN_INFO, RUNNING, STATUS, read_json
from vaelab.runs.lock import linked, lock_run_dir

# config keys that shape a run's numbers: resume=true refuses any change of them
SHAPING_KEYS = (
    "seed",
    "model._target_",
    "model.net",
    "model.latent_dim",
    "model.hidden",
    "model.kl",
    "model.recon",
    "model.beta",
    "model.kl_warmup_epochs",
    "model.lr",
    # fused and unfused Adam round differently, and a resumed optimiser keeps its recorded kernel
    "model.fused",
    "model.log_scale_max",
    # the network class's own arguments (e.g. ConvVAE's channels), compared argument by argument
    "model.net_args",
    # the optimiser and the learning-rate schedule, compared argument by argument
    "model.optimizer",
    "model.scheduler",
    "data._target_",
    "data.dataset",
    "data.batch_size",
    "data.binarize",
    "data.val_size",
    "data.split_seed",
)


def _select(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<absent>"
        node = node[part]
    return node


def _before_the_key(key: str) -> Any:
    """What a run recorded before ``key`` existed trained with: Adam with torch's defaults
    (conf/model/optimizer/adam.yaml), no scheduler, and its network class's defaults (no
    ``model.net_args``); ``<absent>`` for other keys."""
    if key == "model.net_args":
        return {}
    if key == "model.optimizer":
        from omegaconf import OmegaConf

        from vaelab.paths import CONF_DIR

        return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "optimizer" / "adam.yaml"))
    return None if key == "model.scheduler" else "<absent>"


def _differences(key: str, recorded: Any, current: Any) -> list[str]:
    """``key: recorded -> current``; two configs of the same class are compared argument by
    argument (``model.scheduler.patience: 5 -> 3``), others by the class they name."""
    if recorded == current:
        return []
    if isinstance(recorded, dict) and isinstance(current, dict) and recorded.get("_target_") == current.get("_target_"):
        names = dict.fromkeys([*recorded, *current])
        return [d for n in names for d in _differences(f"{key}.{n}", recorded.get(n, "<absent>"), current.get(n, "<absent>"))]

    def show(value: Any) -> str:
        return repr(value["_target_"]) if isinstance(value, dict) and "_target_" in value else repr(value)

    return [f"{key}: {show(recorded)} -> {show(current)}"]


def changed_settings(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: recorded -> current`` for each :data:`SHAPING_KEYS` entry whose value differs (a key
    the recorded run predates counts as the value it trained with)."""
    changes = []
    for key in SHAPING_KEYS:
        before = _select(recorded, key)
        before = _before_the_key(key) if before == "<absent>" else before
        now = _select(current, key)
        if key == "model.net_args":
            now = _before_the_key(key) if now == "<absent>" else now
            net = _select(current, "model.net")
            if before != now and net != "<absent>" and net == _select(recorded, "model.net"):
                # the same class: an argument left to its default and one set to that default are the same
                from vaelab.vae.nets import net_arguments

                before, now = net_arguments(str(net), before), net_arguments(str(net), now)
        changes += _differences(key, before, now)
    return changes


@dataclass
class Claim:
    """What a job may do in its run dir: ``fresh`` (start), ``resume`` (continue last.ckpt) or
    ``keep`` (a finished job of a resumed multirun: nothing to do). Holds the dir's lock."""

    action: str
    lock: IO[str] | None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()


def slurm_restart() -> int:
    """How many times SLURM has restarted this job (requeued after preemption, a time limit or
    ``scontrol requeue``); 0 outside SLURM and on a job's first run. SLURM keeps the job id, and
    Hydra's submitit launcher the job's sweep subdir, so a restarted job finds its own run dir."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def process_rank() -> int:
    """This process's rank in a multi-process (DDP) run: Lightning starts ranks > 0 with
    ``LOCAL_RANK``/``NODE_RANK``, SLURM with ``SLURM_PROCID``; 0 for a plain run."""
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return int(os.environ["SLURM_PROCID"])
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


def claim(out_dir: Path, config: dict[str, Any], resume: bool, multirun: bool) -> Claim:
    """Lock ``out_dir`` and decide what this job does there (see the module docstring).

    ``config`` is the job's resolved config. A job that SLURM restarted resumes by itself, as with
    ``resume=true``. Raises :class:`UserError` (the lock released) when the dir holds another run,
    or when ``resume=true`` would continue a run with other settings.
    """
    if slurm_restart() and not resume:
        print(f"SLURM restart {slurm_restart()} of job {os.environ.get('SLURM_JOB_ID')}: continuing {out_dir} as with resume=true", flush=True)
        resume = True
    if process_rank() > 0:  # DDP: rank 0 holds the lock and has checked the dir for the whole run
        return Claim("resume" if resume else "fresh", None)
    lock = lock_run_dir(out_dir)
    try:
        refuse_links(out_dir)
        action = _decide(out_dir, config, resume, multirun)
    except UserError:
        lock.close()
        raise
    return Claim(action, lock)


def refuse_links(out_dir: Path) -> None:
    """Raise :class:`UserError` for the first symbolic link inside ``out_dir`` (the dir itself may
    be one: where to keep runs is the user's choice). Not looked into: ``wandb/``, whose links
    (``latest-run``, ``debug.log``) W&B makes itself and replaces rather than follows, in a folder
    of its own per session (``offline-run-<time>-<id>``)."""
    for folder, dirs, files in os.walk(out_dir):
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(folder, name)):
                raise linked(Path(folder) / name)
        if Path(folder) == out_dir:
            dirs[:] = [d for d in dirs if d != layout.WANDB_DIR]


def _decide(out_dir: Path, config: dict[str, Any], resume: bool, multirun: bool) -> str:
    recorded = read_json(out_dir / RUN_INFO).get("config")
    status = read_json(out_dir / STATUS).get("status")
    last = out_dir / CHECKPOINTS / LAST_CKPT
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if recorded is not None:
        changes = changed_settings(recorded, config)
        if changes and (resume or last.is_file() or (out_dir / METRICS).is_file()):
            what = "resume=true would continue" if resume else "it already holds"
            raise UserError(
                f"{out_dir} holds a run with other settings ({'; '.join(changes)}): {what} that run with these; "
                f"use the recorded values, or another {key} (ckpt_path=<its last.ckpt> starts a new run from its weights)"
            )
    if not resume:
        if last.is_file() or (out_dir / METRICS).is_file():
            raise UserError(
                f"{out_dir} already holds a run (status {status or 'unknown'}); nothing was overwritten: "
                f"pass resume=true to continue it, or choose another {key}"
            )
        return "fresh"
    if status == COMPLETED and (out_dir / METRICS).is_file():
        return "resume" if not multirun and _trains_further(out_dir, config) else "keep"
    if last.is_file():
        return "resume"
    if multirun:
        return "fresh"  # a job of the sweep that never reached its first checkpoint
    if status in (RUNNING, INTERRUPTED):  # this run was stopped before its first checkpoint: nothing to continue
        print(f"{out_dir} was stopped (status {status}) before its first checkpoint: starting it from epoch 1", flush=True)
        return "fresh"
    raise UserError(f"resume=true but {last} does not exist: pass {key}=<the run dir to resume> (or hydra.sweep.dir for a multirun)")


def _trains_further(out_dir: Path, config: dict[str, Any]) -> bool:
    """Whether ``resume=true`` on a finished single run has epochs to train: it stopped at its cap
    and this command raises ``trainer.max_epochs``. Otherwise the run is kept as it is (no new test,
    no new W&B run), as a finished job of a resumed sweep is."""
    done = read_json(out_dir / METRICS)
    cap = _select(config, "trainer.max_epochs")
    return done.get("stop_reason") == "max_epochs" and cap is not None and int(cap) > int(done.get("epochs") or 0)


def write_hydra_record(out_dir: Path, cfg: Any) -> None:
    """Write Hydra's record of this job (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``,
    as Hydra writes them) into a run dir this job has claimed. Hydra's own copy is off
    (``hydra.output_subdir: null``): Hydra writes it before the task runs, so a refused command
    (a locked dir, a resume with other settings, a completed run) would overwrite the record of the
    run that owns the dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = out_dir / HYDRA_RECORD
    folder.mkdir(parents=True, exist_ok=True)
    hydra_node = OmegaConf.create({"hydra": hydra_cfg})
    for name, node in ((layout.HYDRA_CONFIG, cfg), (layout.HYDRA_SETTINGS, hydra_node), (layout.HYDRA_OVERRIDES, hydra_cfg.overrides.task)):
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")
