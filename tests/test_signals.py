"""Signals through the command line, as a user or a cluster sends them: whatever moment SIGTERM
or Ctrl-C comes, a run records ``interrupted``; a joblib sweep forwards a signal sent to its own
process to its jobs, waits for them, prints its summary and exits 143 or 130, with no traceback and
no worker left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TINY, run_cli, spawn_until

ARGS = [*TINY, "logger=none", "callbacks.images.every_n_epochs=0"]


def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def _group_gone(pgid: int, timeout: float = 30) -> bool:
    """Whether every process of the group has ended (within ``timeout`` seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _default_sigint() -> None:
    # a Ctrl-C reaches the job: a test runner may have left SIGINT ignored, which a child inherits
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigterm_before_the_first_epoch_records_interrupted(tiny_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # status.json says running before Lightning's fit starts (imports, data): the signal comes then
    child = spawn_until([f"data.root={tiny_root}", *ARGS, f"hydra.run.dir={run}"], run / "status.json", stderr=subprocess.PIPE, text=True)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-2000:]
    assert _status(run)["status"] == "interrupted" and _status(run)["signal"] == "SIGTERM"
    assert "Traceback" not in err
    proc = run_cli("vaelab.train", f"data.root={tiny_root}", *ARGS, f"hydra.run.dir={run}", "resume=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _status(run)["status"] == "completed"


@pytest.mark.slow
@pytest.mark.parametrize("sig, target, code", [(signal.SIGTERM, "parent", 143), (signal.SIGINT, "group", 130)])
def test_a_signalled_joblib_sweep_ends_every_job_as_interrupted(tiny_root: Path, tmp_path: Path, sig: signal.Signals, target: str, code: int) -> None:
    """SIGTERM to the sweep's process alone (``kill <pid>``), Ctrl-C to its whole process group."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", f"data.root={tiny_root}", *ARGS, "trainer.max_epochs=30", "seed=0,1,2", f"hydra.sweep.dir={sweep}"]
    child = spawn_until(args, sweep / "0" / "checkpoints" / "last.ckpt", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        start_new_session=True, preexec_fn=_default_sigint)  # fmt: skip
    deadline = time.time() + 120
    while not (sweep / "1" / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    if target == "parent":
        child.send_signal(sig)
    else:
        os.killpg(child.pid, sig)
    out, err = child.communicate(timeout=180)
    assert child.returncode == code, err[-3000:]
    for job in ("0", "1"):
        assert _status(sweep / job) == {**_status(sweep / job), "status": "interrupted", "signal": sig.name}, job
    assert not (sweep / "2" / "status.json").exists(), "a job started after the sweep was stopped"
    assert "2 interrupted, 1 not started" in out and f"error: the sweep was stopped by {sig.name}" in err
    assert out.count(f"sweep {sweep}: 3 job(s)") == 1, "one summary, from the sweep's process"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert _group_gone(child.pid), "a loky worker outlived the sweep"
    # resume=true then continues such a sweep: tests/test_run_dirs.py (the same claim logic for any launcher)
