"""The run dir's lock (``.lock``): held by the process working in the run dir for its whole life,
dropped by the kernel when that process dies, SIGKILL included. Taking it keeps two runs out of one
dir (:mod:`vaelab.runs.claim`); reading it tells a live job from one whose ``status.json`` still
says ``running`` because its process was killed outright (the report, the sweep summary, the
Optuna sweeper's killed trials)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO, Any

from vaelab.errors import UserError
from vaelab.runs import layout
from vaelab.runs.layout import RUNNING, STATUS, read_json


def lock_run_dir(out_dir: Path) -> IO[str]:
    """Take the run dir's lock or stop with one line naming the process that holds it.

    Raw ``fcntl.flock`` rather than the ``filelock`` package, on purpose: the refusal names the
    holder's pid, which the holder writes into the lock file, and ``filelock`` owns that file (it
    may truncate it when another process tries the lock); ``filelock`` itself uses ``flock`` on
    POSIX, the only systems vaelab runs on (Linux, SLURM clusters, macOS). The kernel drops the
    lock when its holder dies, SIGKILL included."""
    try:  # never through a link: the pid below would be written into its target
        handle = os.fdopen(os.open(out_dir / layout.LOCK, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666), "a+")
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise linked(out_dir / layout.LOCK) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(
            f"{out_dir} is in use by another run (pid {holder}); nothing was written: wait for it to finish, or give this run another hydra.run.dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def held_by(out_dir: Path) -> str | None:
    """The pid a live process holding ``out_dir``'s lock wrote, or None when no process holds it
    (no lock file, or its holder is gone: killed, SIGKILL included). Tells a job that still runs
    from one whose ``status.json`` says ``running`` only because its process died. Creates nothing."""
    try:
        handle = open(out_dir / layout.LOCK)
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        return None  # the lock is released when the handle closes


def job_status(run_dir: Path) -> dict[str, Any]:
    """The run's ``status.json`` as a reader should take it ({} when there is none). A process killed
    outright (SIGKILL, a lost node, the OOM killer) cannot rewrite it and leaves ``running``; only
    the run dir's lock, which the kernel dropped with the process, tells it from a live one: such a
    status reads ``killed``, with how to continue the run."""
    status = read_json(run_dir / STATUS)
    if status.get("status") == RUNNING and held_by(run_dir) is None:
        return {
            **status,
            "status": layout.KILLED,
            "error": "status.json says running but no process holds the run dir: resume=true continues it from its last.ckpt",
        }
    return status


def linked(path: Path) -> UserError:
    """The one refusal of a symbolic link in a run dir (the lock file's, or any file's: vaelab.runs.claim)."""
    return UserError(
        f"{path} is a symbolic link (to {os.readlink(path)}): a run writes only inside its own run dir and would write through it; "
        f"remove the link (copy the file in its place to keep it), or choose another run dir"
    )
