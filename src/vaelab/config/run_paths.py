"""The paths a training run writes: inside its run dir, and short enough for the file system.

A run dir is claimed and locked (:mod:`vaelab.runs.claim`) so that no run writes over another, and
that promise holds only if every file a run writes lies inside it. Some config values are joined
into the paths the loggers and callbacks write to (``logger.csv.name=../../x`` would put
``metrics.csv`` two folders up, ``../0`` into another job's run dir): they are checked here, before
any of them writes, and a value that leaves the run dir is one error line naming its key.

The check is lexical (``..`` and absolute paths, after joining the values as Lightning does);
symbolic links inside a run dir are refused when it is claimed (:func:`vaelab.runs.claim.claim`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vaelab.errors import UserError

# the keys whose values Lightning joins, in this order, into the folder or file that a logger or
# callback writes, by the class its _target_ names (W&B's `name` is its run's display name, not a
# folder; its `version` is the run id, part of the folder name offline-run-<time>-<id>)
JOINED_KEYS: dict[str, tuple[str, ...]] = {
    "CSVLogger": ("save_dir", "name", "version"),
    "TensorBoardLogger": ("save_dir", "name", "version", "sub_dir"),
    "WandbLogger": ("save_dir", "version"),
    "ModelCheckpoint": ("dirpath", "filename"),
}
# a target not listed above (vaelab's ImageLogger, a logger or callback of your own): each of these
# keys it sets is a folder it writes into
FOLDER_KEYS = ("save_dir", "dir", "dirpath", "out_dir", "log_dir", "root_dir")
# characters a run adds below its run dir (W&B's offline-run-<time>-<id>/files/media/images/... PNGs
# are the longest, about 110): a run dir within this many characters of PATH_MAX is refused up front
INSIDE_RESERVE = 200


def _absolute(path: str | Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def _inside(path: Path, run_dir: Path) -> bool:
    return path == run_dir or run_dir in path.parents


def check_inside_run_dir(cfg: DictConfig, run_dir: str | Path) -> None:
    """Raise :class:`UserError` naming the first ``logger.*`` or ``callbacks.*`` key whose value
    takes what that logger or callback writes outside ``run_dir`` (``..``, an absolute path
    elsewhere), or makes a path the file system cannot hold."""
    root = _absolute(run_dir)
    for group in ("logger", "callbacks"):
        for name, node in (OmegaConf.select(cfg, group) or {}).items():
            if not isinstance(node, DictConfig):
                continue
            target = str(node.get("_target_", ""))
            joined = next((keys for cls, keys in JOINED_KEYS.items() if target.endswith(cls)), None)
            chains = [joined] if joined else [(k,) for k in FOLDER_KEYS]
            for keys in chains:
                _check_chain(node, keys, f"{group}.{name}", root)


def _check_chain(node: DictConfig, keys: tuple[str, ...], prefix: str, root: Path) -> None:
    """Join ``node``'s values of ``keys`` one at a time; the first that leaves ``root`` is named."""
    parts: list[str] = []
    for key in keys:
        value: Any = node.get(key)
        if value is None:
            continue
        parts.append(str(value))
        where = _absolute(os.path.join(*parts))
        if not _inside(where, root):
            how = f"keep it under {root}" if len(parts) == 1 else "give a relative name without '..'"
            raise UserError(
                f"{prefix}.{key}={shorten(str(value))} is invalid: it would write to {shorten(str(where))}, outside the run dir {root}; {how}"
            )
        too_long = why_too_long(where)
        if too_long:
            raise UserError(f"{prefix}.{key}={shorten(str(value))} is invalid: {too_long}; choose a shorter one")


def shorten(text: str, keep: int = 160) -> str:
    """``text`` as an error line shows it: at most ``keep`` characters, then its length."""
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


def why_too_long(path: str | Path, reserve: int = 0) -> str | None:
    """Why the file system cannot hold ``path`` (a folder name over its NAME_MAX, or ``path`` plus
    ``reserve`` characters over its PATH_MAX), or None. Asked of the nearest folder that exists,
    before anything is made: the OS would only say ``File name too long`` midway through a run."""
    p = _absolute(path)
    anchor = next((a for a in (p, *p.parents) if _exists(a)), Path(p.anchor))
    name_max, path_max = _limit(anchor, "PC_NAME_MAX", 255), _limit(anchor, "PC_PATH_MAX", 4096)
    long_name = next((part for part in p.parts if len(part.encode()) > name_max), None)
    if long_name is not None:
        return f"its folder name {shorten(long_name, 20)} is longer than the {name_max} characters a name may have here"
    length = len(str(p).encode())
    if length + reserve >= path_max:
        room = f" with the {reserve} characters a run adds below it" if reserve else ""
        return f"it is {length} characters long, over the {path_max} a path may have here{room}"
    return None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # ENAMETOOLONG: this one does not
        return False


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError):
        return default
