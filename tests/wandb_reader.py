"""Read back offline W&B run files (``run-<id>.wandb``) for tests, through W&B's own reader.

wandb 0.31 ships a reader for its transaction log: ``wandb leet inspect``. This module runs it as a
subprocess and parses its JSON, in place of a hand-written LevelDB/protobuf parser. Two commands:

``wandb leet inspect --json <run>.wandb``
    One JSON object per line, one line per record, in file order::

        {"num": 14, "type": "history",
         "history": {"item": {"_runtime": 1.10, "_step": 0, "_timestamp": 1795751430.69,
                              "epoch": 0, "train/loss": 10, "val/loss": 3},
                     "step": {"num": 0}}}

    ``num`` counts records from 1, ``type`` names the record kind (``header``, ``run``,
    ``environment``, ``stats``, ``files``, ``telemetry``, ``metric``, ``summary``, ``history``,
    ``config``, ``artifact``, ``exit``, ...) and the payload sits under the key of that name.
    Notable payloads:

    * ``run``: ``run_id``, ``run_group``, ``job_type``, ``display_name``, ``project``, ``resume``
      (true in the file of a resumed run), ``start_time`` and ``config.update`` (the init config as
      one nested dict, holding ``_wandb``). Empty string fields are left out.
    * ``history``: ``item`` is one logged row as a flat dict. Values logged as nested dicts, and the
      media and tables wandb expands into dicts (``wandb.Image``, ``wandb.Table``), are flattened
      with ``"."`` (``"img._type": "image-file"``, ``"tab.nrows": 2``), with no escaping: the
      nested key ``n -> in.ner`` and a plain key ``"n.in.ner"`` print alike. ``step.num`` repeats
      ``_step``. NaN and infinities print as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    * ``metric``: one per ``define_metric``, e.g. ``define_metric("val/loss", step_metric="epoch",
      summary="min")`` gives ``{"name": "val/loss", "step_metric": "epoch", "summary": {"min":
      true}, "options": {"defined": true, "step_sync": true}}``.
    * ``summary``: ``update`` with the keys set (each ``log`` writes one, with the min/max/... of
      metrics declared with ``summary=`` as a dict, e.g. ``"val/loss": {"min": 1.5}``), ``config``:
      ``update`` with the keys set after init, ``exit``: ``exit_code``, ``runtime``.

``wandb leet inspect --summary --json <run>.wandb``
    One JSON object: ``run_id``, ``name`` (the display name), ``project``, ``entity``, ``notes``,
    ``tags``, ``state`` (``finished``, ``failed``, or ``running`` for a file with no exit record,
    e.g. a killed run's), ``exit_code`` (null without an exit record), ``step`` (the last history
    step), ``start_time``, ``last_write``, ``file``, ``console`` / ``console_lines`` (console tail),
    ``config`` (init config merged with later updates, nested, without ``_wandb``) and ``summary``
    (the final summary, nested: ``{"img": {"_type": "image-file", ...}, "val/loss": {"min": 1.5},
    "best/val": 0.25, ...}``). It holds no group or job type: those come from the ``run`` record.

Each ``.wandb`` file covers one process: a resumed run (same id, a second ``wandb.init``) has a
second run folder and file, whose records, history and summary hold only what that process logged.
A file cut short (the process was killed) reads up to the last whole record; the reader then warns
on stderr ("reached the end of an incomplete .wandb file"), see :func:`is_complete`.

Each call starts the wandb CLI (about 1.5 s), so outputs are cached per file path, size and mtime.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "WandbReaderError",
    "RunRecord",
    "wandb_cli",
    "run_file",
    "records",
    "run_records",
    "run_record",
    "metric_definitions",
    "history",
    "metric_series",
    "run_summary",
    "summary",
    "config",
    "exit_codes",
    "is_complete",
]

TIMEOUT_S = 120
INCOMPLETE = "incomplete .wandb file"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class WandbReaderError(RuntimeError):
    """The wandb CLI is missing, lacks ``leet inspect --json``, or failed on a file."""


@dataclass(frozen=True)
class RunRecord:
    """The ``run`` record of a run file (field names as in wandb's ``RunRecord`` protobuf)."""

    run_id: str
    run_group: str = ""
    job_type: str = ""
    display_name: str = ""
    project: str = ""
    entity: str = ""
    resumed: bool = False
    start_time: str = ""
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    """The config given to ``wandb.init`` (nested, without ``_wandb``); later updates are not here."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The record's payload as ``leet inspect --json`` printed it."""


# ------------------------------------------------------------------------------------ the CLI
@functools.cache
def wandb_cli() -> Path:
    """The ``wandb`` executable (next to ``sys.executable``, else on PATH), checked to have
    ``wandb leet inspect`` with ``--json`` and ``--summary``."""
    local = Path(sys.executable).parent / "wandb"
    found = str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which("wandb")
    if found is None:
        raise WandbReaderError(f"no wandb CLI next to {sys.executable} nor on PATH")
    # older wandb routes unknown `leet` subcommands to `leet run` (the TUI): ask for the help first
    proc = _run([found, "leet", "inspect", "--help"])
    if proc.returncode != 0 or "--json" not in proc.stdout or "--summary" not in proc.stdout:
        raise WandbReaderError(
            f"{found} has no `wandb leet inspect --json/--summary` (needs wandb >= 0.31; "
            f"`{found} --version` says: {_version(found)}); output: {(proc.stdout + proc.stderr)[-500:]}"
        )
    return Path(found)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a wandb CLI command offline (no telemetry upload), capturing text output."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    try:
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise WandbReaderError(f"{' '.join(args)} ran past {TIMEOUT_S}s") from e


def _version(cli: str) -> str:
    proc = _run([cli, "--version"])
    return (proc.stdout or proc.stderr).strip() or "unknown"


def _wandb_file(path: Path | str) -> Path:
    """``path`` itself when a file, else the run file of the run folder ``path``."""
    path = Path(path)
    return run_file(path) if path.is_dir() else path


@functools.lru_cache(maxsize=256)
def _inspect_cached(path: str, _mtime_ns: int, _size: int, summary_mode: bool) -> tuple[str, str]:
    args = [str(wandb_cli()), "leet", "inspect", *(["--summary"] if summary_mode else []), "--json", path]
    proc = _run(args)
    if proc.returncode != 0:
        hint = ""
        if re.search(r"No such (command|option)", proc.stderr):
            hint = " (this wandb CLI lacks `leet inspect --json`; needs wandb >= 0.31)"
        raise WandbReaderError(f"`{' '.join(args)}` failed with exit code {proc.returncode}{hint}: {proc.stderr[-2000:]}")
    return proc.stdout, proc.stderr


def _inspect(path: Path | str, summary_mode: bool) -> tuple[str, str]:
    """stdout and stderr of ``wandb leet inspect [--summary] --json path`` (cached per file version)."""
    f = _wandb_file(path)
    if not f.is_file():
        raise FileNotFoundError(f"no W&B run file at {f}")
    st = f.stat()
    return _inspect_cached(str(f.resolve()), st.st_mtime_ns, st.st_size, summary_mode)


def _decode(value: Any) -> Any:
    """``value`` with the non-finite floats the reader prints as strings ("NaN", ...) made floats again."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ records
def run_file(run_dir: Path | str) -> Path:
    """The ``run-*.wandb`` file of an offline run folder (``.../wandb/offline-run-<time>-<id>``)."""
    files = list(Path(run_dir).glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb in {run_dir}, found {len(files)}")
    return files[0]


def offline_run_ids(job_dir: Path | str) -> list[str]:
    """The run ids of a job's offline W&B runs, oldest first, from their folder names
    (``offline-run-<time>-<id>``): a run file cut short by a kill has no record to read them from."""
    return [d.name.rsplit("-", 1)[1] for d in sorted(Path(job_dir).glob("wandb/offline-run-*"))]


def records(path: Path | str) -> list[dict[str, Any]]:
    """Every record of a run file (or run folder) in order, as ``leet inspect --json`` prints them:
    ``{"num": n, "type": kind, kind: payload}``. Values are as printed ("NaN" stays a string)."""
    stdout, _ = _inspect(path, summary_mode=False)
    out = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if not out or out[0].get("type") != "header":
        raise ValueError(f"{_wandb_file(path)} is not a W&B run file (no header record)")
    return out


def _payloads(path: Path | str, kind: str) -> list[dict[str, Any]]:
    return [rec.get(kind) or {} for rec in records(path) if rec.get("type") == kind]


def is_complete(path: Path | str) -> bool:
    """Whether the file ends cleanly: the reader did not stop at a cut-short record, and the run
    wrote its exit record (``False`` for a killed or still running process)."""
    _, stderr = _inspect(path, summary_mode=False)
    return INCOMPLETE not in stderr and any(rec.get("type") == "exit" for rec in records(path))


def _run_record(payload: dict[str, Any]) -> RunRecord:
    init_config = dict((payload.get("config") or {}).get("update") or {})
    init_config.pop("_wandb", None)
    return RunRecord(
        run_id=payload.get("run_id", ""),
        run_group=payload.get("run_group", ""),
        job_type=payload.get("job_type", ""),
        display_name=payload.get("display_name", ""),
        project=payload.get("project", ""),
        entity=payload.get("entity", ""),
        resumed=bool(payload.get("resume", False)),
        start_time=payload.get("start_time", ""),
        config=_decode(init_config),
        raw=payload,
    )


def run_records(path: Path | str) -> list[RunRecord]:
    """All ``run`` records of a run file (one per file in practice)."""
    return [_run_record(p) for p in _payloads(path, "run")]


def run_record(path: Path | str) -> RunRecord:
    """The run record of a run file: ``.run_id``, ``.run_group``, ``.job_type``, ``.display_name``, ..."""
    runs = run_records(path)
    if not runs:
        raise ValueError(f"{_wandb_file(path)} holds no run record")
    return runs[0]


def metric_definitions(path: Path | str) -> dict[str, dict[str, Any]]:
    """The ``define_metric`` records by metric name, e.g. ``{"val/loss": {"name": "val/loss",
    "step_metric": "epoch", "summary": {"min": True}, "options": {...}}}`` (later ones win)."""
    return {p["name"]: p for p in _payloads(path, "metric") if "name" in p}


def history(path: Path | str) -> list[dict[str, Any]]:
    """All logged history rows, each as ``{key: value}`` with ``_step``, ``_runtime``, ``_timestamp``.

    Nested keys (media, tables, logged dicts) are joined with ``"."`` as W&B's reader prints them:
    ``row["img._type"] == "image-file"``. NaN/inf come back as floats."""
    return [_decode(p.get("item") or {}) for p in _payloads(path, "history")]


def metric_series(path: Path | str, key: str) -> list[Any]:
    """Values of one history key in logging order (rows without it are skipped)."""
    return [row[key] for row in history(path) if key in row]


def exit_codes(path: Path | str) -> list[int]:
    """The exit codes of the file's ``exit`` records (``[]`` when the process never finished)."""
    return [int(p.get("exit_code", 0)) for p in _payloads(path, "exit")]


# ------------------------------------------------------------------------------------ summary
def run_summary(path: Path | str) -> dict[str, Any]:
    """The whole ``leet inspect --summary --json`` object: ``run_id``, ``name``, ``project``,
    ``state``, ``exit_code``, ``step``, ``config``, ``summary``, ``console``, ... (NaN/inf as floats)."""
    stdout, _ = _inspect(path, summary_mode=True)
    try:
        out = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise ValueError(f"{_wandb_file(path)}: unreadable `leet inspect --summary --json` output: {stdout[:300]!r}") from e
    if not out.get("run_id"):
        raise ValueError(f"{_wandb_file(path)} is not a W&B run file (no run record)")
    return _decode(out)


def summary(path: Path | str) -> dict[str, Any]:
    """The run's final summary as W&B computes it, nested: ``summary["test/iw_nll"]``,
    ``summary["img"]["_type"]``; a metric declared with ``summary="min"`` reads ``{"min": v}``."""
    return run_summary(path).get("summary") or {}


def config(path: Path | str) -> dict[str, Any]:
    """The run's config: the init config merged with later ``config.update`` calls, nested,
    without wandb's own ``_wandb`` entry."""
    return run_summary(path).get("config") or {}
