"""Checking a user's configuration before any work starts.

Two layers, both ending in one clear line instead of a traceback:
- :func:`check_overrides` composes the config from the command line once, before Hydra runs the
  job, and turns Hydra's composition errors (unknown group option, unknown key, bad syntax) into
  one line naming the override and the accepted values.
- :func:`validate` checks the composed values (types and ranges) and names the key, the accepted
  values and an example.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vaelab.config.resolvers import CONF_DIR
from vaelab.errors import UserError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (predicate, what is accepted, example)
RULES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "seed": (_is_int, "an integer", "seed=0"),
    "model.latent_dim": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "model.latent_dim=2"),
    "model.hidden": (
        lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) > 0 and all(_is_int(h) and h >= 1 for h in v),
        "a non-empty list of integers >= 1",
        "model.hidden=[400]",
    ),
    "model.kl": (lambda v: v in ("paper", "analytic"), "one of paper, analytic", "model.kl=analytic"),
    "model.recon": (lambda v: v in ("bce", "mse"), "one of bce, mse", "model.recon=bce"),
    "model.beta": (lambda v: _is_number(v) and v >= 0, "a number >= 0", "model.beta=1.0"),
    "model.lr": (lambda v: _is_number(v) and v > 0, "a number > 0", "model.lr=1e-3"),
    "model.log_scale_max": (lambda v: _is_number(v) and 0 < v <= 40, "a number in (0, 40]", "model.log_scale_max=10"),
    "data.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "data.batch_size=128"),
    "data.eval_batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "data.eval_batch_size=1000"),
    "data.val_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "data.val_size=10000"),
    "data.steps_per_call": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "data.steps_per_call=8"),
    "data.split_seed": (_is_int, "an integer", "data.split_seed=1234"),
    "data.binarize": (lambda v: v in ("none", "dynamic", "static"), "one of none, dynamic, static", "data.binarize=none"),
    "trainer.max_epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", "trainer.max_epochs=20"),
    "resume": (lambda v: isinstance(v, bool), "true or false", "resume=true"),
    "threads": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1", "threads=1"),
}


def validate(cfg: DictConfig) -> None:
    """Raise :class:`UserError` for the first config value that is out of range or of the wrong type."""
    for key, (ok, accepted, example) in RULES.items():
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            continue
        try:
            value = OmegaConf.select(cfg, key)
        except Exception as exc:  # an interpolation that cannot be resolved
            raise UserError(f"{key}: cannot resolve its value ({str(exc).splitlines()[0]})") from None
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        if not ok(value):
            raise UserError(f"{key}={value!r} is invalid: expected {accepted} (e.g. {example})")
    from vaelab.data.idx_files import MNIST_FILES, check_data_root, check_mnist_raw

    raw = check_data_root(str(cfg.data.root)) / "MNIST" / "raw"

    if all((raw / name).is_file() for name in MNIST_FILES):
        check_mnist_raw(raw)  # fail on a bad file now, before the heavy start-up
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not Path(str(ckpt)).is_file():
        raise UserError(f"ckpt_path={ckpt} does not exist: give the path of a .ckpt file (e.g. <run dir>/checkpoints/last.ckpt)")


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


def check_output_dir(path: str | Path, key: str) -> None:
    """Exit with one line when ``path`` cannot be created or written (checked before Hydra makes it).

    Creates the parent folders (harmless: Hydra would) and writes a probe file in the parent.
    """
    import tempfile

    p = Path(path).expanduser().absolute()
    blocker = next((a for a in (p, *p.parents) if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        _exit(f"{key}={p} cannot be created: {blocker} is a file, not a folder; choose another {key}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p.parent):
            pass
    except OSError as exc:
        _exit(f"{key}={p} cannot be written ({exc.strerror or exc}: {exc.filename or p.parent}); choose a writable {key}")


def check_overrides(args: Sequence[str], config_name: str) -> None:
    """Compose ``config_name`` with the command-line overrides and exit with one line on failure.

    Sweep overrides (``a=1,2``) are checked one value at a time, and the run (or sweep) output dir
    must be writable. Command lines with Hydra flags other than ``-m/--multirun`` are left to Hydra.
    """
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in overrides):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        _exit(f"cannot parse the command line: {_first_line(exc)}")
    plain: list[str] = []
    sweeps: list[tuple[int, list[str]]] = []
    for i, ov in enumerate(parsed):
        if ov.is_sweep_override():
            key = ov.get_key_element()
            values = [f"{key}={v}" for v in ov.sweep_string_iterator()]
            sweeps.append((i, values))
            plain.append(values[0] if values else overrides[i])
        else:
            plain.append(overrides[i])
    candidates = [plain]
    for i, values in sweeps:
        for v in values[1:]:
            candidates.append(plain[:i] + [v] + plain[i + 1 :])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for i, cand in enumerate(candidates):
            try:
                cfg = compose(config_name=config_name, overrides=cand, return_hydra_config=True)
            except Exception as exc:
                culprit = next((o for o in cand if o.split("=", 1)[0].lstrip("+~") in str(exc)), " ".join(cand))
                _exit(_explain(culprit, exc))
            if i == 0:
                key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                try:
                    out = OmegaConf.select(cfg, key)
                except Exception:
                    out = None  # depends on something only known at run time; Hydra will say
                if out:
                    check_output_dir(out, key)


def _exit(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def exit_with(error: UserError, code: int = 2) -> None:
    """Print a user error as one line on stderr and exit non-zero."""
    _exit(str(error), code)
