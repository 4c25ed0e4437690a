"""No run can clobber another: locked run dirs, no silent overwrite, resume only with the same
settings, and multiruns that resume (finished jobs kept, interrupted ones continued, missing ones
started). Runs are called in process; the run holding the lock and the interrupted sweep are real
processes (SIGSTOP, SIGTERM, a multirun through the real CLI)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import TINY, run_cli, spawn_until, train_in_process
from conftest import run_result as result

ARGS = [*TINY, "logger=none", "callbacks.images.every_n_epochs=0"]


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def test_a_run_dir_in_use_is_locked(tiny_root: Path, tmp_path: Path) -> None:
    # the first run is frozen (SIGSTOP) while it holds the lock, so the second one meets it in use however
    # fast or slow this machine is (a running first run could finish before the second one starts)
    first = spawn_until([f"data.root={tiny_root}", *ARGS, "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}"], tmp_path / "status.json")
    first.send_signal(signal.SIGSTOP)
    record = {f: (tmp_path / ".hydra" / f).read_bytes() for f in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    try:
        # through the command line, where Hydra itself would write .hydra/ before the task runs
        second = run_cli("vaelab.train", f"data.root={tiny_root}", *ARGS, "seed=5", f"hydra.run.dir={tmp_path}")
    finally:
        first.send_signal(signal.SIGCONT)
    assert {f: (tmp_path / ".hydra" / f).read_bytes() for f in record} == record, "the refused run rewrote the record of the running one"
    assert first.wait(timeout=240) == 0
    assert second.returncode == 2
    assert _error_lines(second.stderr) == [
        f"error: {tmp_path} is in use by another run (pid {first.pid}); nothing was written: wait for it to finish, or give this run another hydra.run.dir"
    ]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["max_epochs"] == 3 and sorted(p.name for p in (tmp_path / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert not (tmp_path / "checkpoints" / "last-v1.ckpt").exists()


def test_a_finished_run_is_never_overwritten(tiny_root: Path, tmp_path: Path) -> None:
    assert train_in_process(f"data.root={tiny_root}", *ARGS, f"hydra.run.dir={tmp_path}").returncode == 0
    before = (tmp_path / "metrics.json").read_text()
    proc = train_in_process(f"data.root={tiny_root}", *ARGS, "seed=5", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    (line,) = _error_lines(proc.stderr)
    assert line.startswith(f"error: {tmp_path} holds a run with other settings (seed: 0 -> 5)")
    proc = train_in_process(f"data.root={tiny_root}", *ARGS, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert _error_lines(proc.stderr) == [
        f"error: {tmp_path} already holds a run (status completed); nothing was overwritten: pass resume=true to continue it, or choose another hydra.run.dir"
    ]
    assert (tmp_path / "metrics.json").read_text() == before


def test_resume_refuses_other_settings(tiny_root: Path, tmp_path: Path) -> None:
    assert train_in_process(f"data.root={tiny_root}", *ARGS, f"hydra.run.dir={tmp_path}").returncode == 0
    before = (tmp_path / "metrics.json").read_text()
    proc = train_in_process(
        f"data.root={tiny_root}", *ARGS, "resume=true", "model.kl=analytic", "seed=7", "model.lr=0.01", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 2
    (line,) = _error_lines(proc.stderr)
    assert "seed: 0 -> 7" in line and "model.kl: 'paper' -> 'analytic'" in line and "model.lr: 0.001 -> 0.01" in line
    assert (tmp_path / "metrics.json").read_text() == before


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_to_the_uninterrupted_numbers(tiny_root: Path, tmp_path: Path) -> None:
    run = [f"data.root={tiny_root}", *ARGS, "trainer.max_epochs=6"]
    sweep = ["-m", *run, "seed=1,2,3"]
    whole = tmp_path / "whole"
    for job, seed in (("0", 1), ("1", 2), ("2", 3)):  # the uninterrupted jobs, as single runs in this process
        assert train_in_process(*run, f"seed={seed}", f"hydra.run.dir={whole / job}").returncode == 0

    cut = tmp_path / "cut"
    # job 1 has started training
    child = spawn_until(
        [*sweep, f"hydra.sweep.dir={cut}"], cut / "1" / "checkpoints" / "last.ckpt", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-2000:]
    assert "error: 2 of 3 job(s) did not complete: 1, 2 (see their status.json)" in err  # the summary, then a non-zero exit
    assert f"sweep {cut}: 3 job(s)" in out and "2: NOT STARTED" in out and "1 completed, 1 interrupted, 1 not started" in out
    assert not (cut / "2").exists()  # the sweep stopped: job 2 never started
    kept = (cut / "0" / "metrics.json").read_text()

    proc = run_cli("vaelab.train", *sweep, "resume=true", f"hydra.sweep.dir={cut}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"kept {cut}/0" in proc.stdout and f"resuming {cut}/1" in proc.stdout
    assert (cut / "0" / "metrics.json").read_text() == kept
    for job in ("0", "1", "2"):
        assert result(cut / job) == result(whole / job), job
