"""Checking a user's configuration before any work starts.

Two layers, both ending in one clear line instead of a traceback:
- :func:`check_overrides` composes the config from the command line once, before Hydra runs the
  job, and turns Hydra's composition errors (unknown group option, unknown key, bad syntax) into
  one line naming the override and the accepted values.
- :func:`validate` checks the composed values (types and ranges) and names the key, the accepted
  values and an example.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vaelab.config.run_paths import INSIDE_RESERVE, check_inside_run_dir, shorten, why_too_long
from vaelab.errors import UserError, no_checkpoint
from vaelab.paths import CONF_DIR


def validate(cfg: DictConfig) -> None:
    """Raise :class:`UserError` for the first config value that is out of range or of the wrong type
    (the typed schema of :mod:`vaelab.config.schema`), then check the data root, the DDP launch, the
    network's class, the optimiser and scheduler (:mod:`vaelab.config.optim`) and ``ckpt_path``: a training job's config, before any work."""
    from vaelab.config.schema import check

    check(cfg)
    # the data root first: its checks need numpy alone, the network's class below imports torch and
    # Lightning (seconds), and a mistyped path should be answered at once
    # (downloaded there once when missing: before the run dir is made, so a failed download leaves none)
    from vaelab.data.fetch import ensure_data

    data = cfg.data
    raw = ensure_data(str(data.root), bool(data.get("download", True)), str(data.get("dataset", "mnist")), data.get("mirror"))
    _check_split_sizes(data, raw)
    check_inside_run_dir(cfg, str(cfg.paths.output_dir))
    _check_ddp_launch(cfg, is_multirun())
    _check_net(cfg)
    _check_steps_per_call(cfg)
    from vaelab.config.optim import check_optimisation

    check_optimisation(cfg)
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="auto"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"trainer.accelerator={accelerator} but no GPU is visible to this process: use trainer=cpu (or trainer.accelerator=auto)")
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not Path(str(ckpt)).is_file():
        raise no_checkpoint(ckpt)


def _check_split_sizes(data: DictConfig, raw: Path) -> None:
    """The held-out split and the training batch must fit the training file (60,000 images for
    MNIST): a larger batch would not fail, it would silently train on one batch of every image per
    epoch, a different experiment than the one asked for. Refused rather than clamped, so that the
    recorded ``data.batch_size`` is the batch the run trained with."""
    from vaelab.data.idx_files import DATASETS, check_idx_file, check_val_size

    files = DATASETS[str(data.get("dataset", "mnist"))][1]
    name = next(n for n in files if n.startswith("train-images"))
    n = check_idx_file(raw / name, *files[name])  # cached: ensure_data has just read it
    val_size, batch = int(data.get("val_size", 0)), int(data.get("batch_size", 1))
    check_val_size(val_size, n)
    if batch > n - val_size:
        raise UserError(
            f"data.batch_size={batch} is larger than the training split ({n - val_size} images: {n} in {raw / name} minus "
            f"data.val_size={val_size}): choose at most {n - val_size} (e.g. data.batch_size=128)"
        )


def _check_net(cfg: DictConfig) -> None:
    """``model.net`` names a network class, and ``model.net_args`` are arguments of its own that it
    takes (:func:`vaelab.vae.nets.check_net_args`: built once, before the run dir is made)."""
    net, model = OmegaConf.select(cfg, "model.net"), cfg.get("model")
    if net is None:
        return
    from vaelab.vae.nets import check_net_args, net_class

    try:
        net_class(str(net))
    except ValueError as exc:
        raise UserError(f"model.net={net} is invalid: {exc}; name a GaussianVAE subclass by import path, e.g. model=vae_conv") from None
    args = OmegaConf.to_container(model.get("net_args") or OmegaConf.create({}))
    try:
        check_net_args(str(net), int(model.latent_dim), list(model.hidden), float(model.log_scale_max), args)
    except ValueError as exc:
        raise UserError(str(exc)) from None


# the package's LightningModules (conf/speed/) by import path: whether one training_step call takes a
# list of batches (their takes_batch_lists; tests/test_speed.py checks the two agree). Named, not
# imported: importing one imports Lightning (~8 s), which a refused command should not wait for
TAKES_BATCH_LISTS = {"vaelab.training.fast_steps.FastVAEModule": True, "vaelab.training.module.VAEModule": False}


def _check_steps_per_call(cfg: DictConfig) -> None:
    """Several batches per call need a module that takes a list of batches (``takes_batch_lists``):
    the package's modules are known by name; another class (a user's module) is imported and asked."""
    target, per_call = OmegaConf.select(cfg, "model._target_"), OmegaConf.select(cfg, "data.steps_per_call")
    if target is None or per_call is None or int(per_call) <= 1:
        return
    takes = TAKES_BATCH_LISTS.get(str(target))
    if takes is None:
        from hydra.utils import get_class

        takes = getattr(get_class(str(target)), "takes_batch_lists", False)
    if not takes:
        raise UserError(
            f"data.steps_per_call={per_call} needs the speed path's module (speed=fast); {target} takes one batch per call: set data.steps_per_call=1"
        )


def _check_ddp_launch(cfg: DictConfig, multirun: bool) -> None:
    """Refuse Lightning's script-relaunching DDP inside a local multirun: it starts each extra
    process by re-running the command line, and a ``-m`` command line would start the whole sweep
    again in every process. Under SLURM the processes are SLURM's tasks and nothing is re-run."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    devices = cfg.trainer.get("devices", 1)
    many = (isinstance(devices, int) and devices > 1) or int(cfg.trainer.get("num_nodes", 1) or 1) > 1
    if strategy == "ddp" and many and multirun and "SLURM_NTASKS" not in os.environ:
        raise UserError(
            "trainer=ddp in a local multirun (-m): Lightning re-runs the command for each extra process, which would "
            "re-run the sweep; run DDP jobs without -m, or sweep with hydra/launcher=submitit_slurm (SLURM starts the processes)"
        )


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _explain(override: str, exc: BaseException) -> str:
    """One line for a Hydra composition error, with the accepted options where Hydra knows them."""
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException) and exc.options:
        missing = getattr(exc, "missing_cfg_file", None) or override.split("=", 1)[0]
        group = str(missing).rsplit("/", 1)[0]
        return f"{override}: no such option in group '{group}'; choose one of: {', '.join(sorted(exc.options))}"
    cause = exc.__cause__ or exc
    text = _first_line(cause)
    if "not in struct" in str(cause) or "Could not override" in str(exc):
        key = override.split("=", 1)[0].lstrip("+~")
        return f"{override}: unknown config key '{key}' (check the spelling; use +{key}=... only to add a new key)"
    return f"{override}: {text}"


def check_output_dir(path: str | Path, key: str, folder: bool = False) -> None:
    """Exit with one line when ``path`` cannot be created or written (checked before Hydra makes it,
    or before a command does its work). Creates nothing, so a refused command leaves nothing: the
    caller makes the folder once it has work for it.

    ``folder``: ``path`` is a folder to write files into, else a run dir (which must leave room for
    the files a run writes below it) or a file. A probe file is written in, and removed from, the
    nearest folder that exists: the one in which the missing ones will be made.
    """
    import tempfile

    p = Path(path).expanduser().absolute()
    too_long = why_too_long(p, reserve=0 if folder else INSIDE_RESERVE)
    if too_long:
        _exit(f"{key}={shorten(str(p))} cannot be created: {too_long}; choose a shorter {key}")
    blocker = next((a for a in (p, *p.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        _exit(f"{key}={p} cannot be created: {blocker} is a file, not a folder; choose another {key}")
    holder = next(a for a in (p, *p.parents) if a.is_dir())
    try:
        with tempfile.TemporaryFile(dir=holder):
            pass
    except OSError as exc:
        _exit(f"{key}={p} cannot be written ({exc.strerror or exc}: {exc.filename or holder}); choose a writable {key}")


def override_choices(overrides: Sequence[str]) -> list[list[str]]:
    """Each command-line override as the list of its ``key=value`` alternatives: the values of a
    sweep override (``a=1,2`` -> ``[a=1, a=2]``), or the override itself. A key given twice keeps
    its first place and its last value, as Hydra's basic sweeper does; the sweeper runs the
    cartesian product of these lists, in this order. Raises Hydra's parse error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    by_key: dict[str, list[str]] = {}
    for text, ov in zip(overrides, parsed):
        key = ov.get_key_element()
        values = [f"{key}={v}" for v in ov.sweep_string_iterator()] if ov.is_sweep_override() else []
        by_key[key] = values or [text]
    return list(by_key.values())


def check_overrides(args: Sequence[str], config_name: str) -> None:
    """Compose ``config_name`` with the command-line overrides and exit with one line on failure.

    Sweep overrides (``a=1,2``) are checked one value at a time, and the run (or sweep) output dir
    must be writable. Command lines with Hydra flags other than ``-m/--multirun`` are left to Hydra.
    """
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if multirun and any(a in ("-c", "--cfg") or a.startswith("--cfg=") for a in overrides):
        _exit("--cfg prints the config of one run: drop -m/--multirun and give one value per key (e.g. model.latent_dim=1)")
    if any(a.startswith("-") for a in overrides):
        return
    from hydra import compose, initialize_config_dir

    try:
        choices = override_choices(overrides)
    except Exception as exc:
        _exit(f"cannot parse the command line: {_first_line(exc)}")
    # the first value of every sweep, then each other value of one sweep at a time
    plain = [c[0] for c in choices]
    candidates = [plain]
    for i, values in enumerate(choices):
        for v in values[1:]:
            candidates.append(plain[:i] + [v] + plain[i + 1 :])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for i, cand in enumerate(candidates):
            try:
                cfg = compose(config_name=config_name, overrides=cand, return_hydra_config=True)
            except Exception as exc:
                # the override whose key the error names; the longest such key, so that
                # trainer.limit_train_batches=15 is named rather than the group option trainer=cpu
                named = [o for o in cand if o.split("=", 1)[0].lstrip("+~") in str(exc)]
                culprit = max(named, key=lambda o: len(o.split("=", 1)[0]), default=" ".join(cand))
                _exit(_explain(culprit, exc))
            if i == 0:
                key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                try:
                    out = OmegaConf.select(cfg, key)
                except Exception:
                    out = None  # depends on something only known at run time; Hydra will say
                if out:
                    check_output_dir(out, key)
                _check_job_name(OmegaConf.select(cfg, "hydra.job.name", default=None))


def _check_job_name(name: object) -> None:
    """``hydra.job.name`` names the job's log file, ``<run dir>/<name>.log``: a plain file name, so
    that the log stays inside the run dir."""
    if name is not None and (os.sep in str(name) or str(name) in ("", ".", "..")):
        _exit(
            f"hydra.job.name={name} is invalid: it names the log file <run dir>/<name>.log; give a plain name without '{os.sep}' (e.g. hydra.job.name=train)"
        )


def _exit(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def exit_with(error: UserError, code: int = 2) -> None:
    """Print a user error as one line on stderr and exit non-zero."""
    _exit(str(error), code)


def is_multirun() -> bool:
    """Whether this job runs inside a Hydra multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
