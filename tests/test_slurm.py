"""Sweeps on a real one-node SLURM cluster (tests/slurm/slurm_local.sh), through the real CLI and
Hydra's submitit launcher: jobs run and match local runs, and a job requeued mid-training (what
preemption does) resumes from its own run dir and ends with the numbers of an uninterrupted run.

Marked ``slurm``: skipped, with the reason, where the cluster cannot be started (not root, the
Debian packages missing: ``tests/slurm/slurm_local.sh install``). ``.ci/run`` installs and starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wandb_reader
from conftest import REPO, TINY, run_cli, train_in_process
from conftest import run_result as result

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = REPO / "tests" / "slurm" / "slurm_local.sh"
# the README's SLURM sweep on a CPU node: trainer=cpu, only the node's sizes given
SLURM = ["hydra/launcher=submitit_slurm", "trainer=cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10"]


@pytest.fixture(scope="module")
def cluster() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip(
            f"no SLURM cluster here ({(proc.stderr or proc.stdout).strip().splitlines()[-1:]}): run tests/slurm/slurm_local.sh install, as root"
        )


def _runs(job: Path) -> list[Path]:
    return sorted(job.glob("wandb/offline-run-*/run-*.wandb"))


def test_slurm_sweep_runs_both_jobs_like_local_runs(cluster, tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "slurm"
    args = [f"data.root={tiny_root}", *TINY, "callbacks.images.every_n_epochs=0"]
    proc = run_cli("vaelab.train", "-m", *SLURM, *args, "model.latent_dim=1,2", "logger=wandb", f"hydra.sweep.dir={sweep}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups, ids = set(), set()
    for num, dim in (("0", 1), ("1", 2)):
        job = sweep / num
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        info = json.loads((job / "run_info.json").read_text())
        assert info["config"]["threads"] == 1  # cpus_per_task
        (run_file,) = _runs(job)
        record = wandb_reader.run_record(run_file)
        groups.add(record.run_group)
        ids.add(record.run_id)
        # the same job run locally, with the same single thread, gives the same numbers
        local = tmp_path / f"local{dim}"
        alone = train_in_process(*args, f"model.latent_dim={dim}", "trainer=cpu", "threads=1", "logger=none", f"hydra.run.dir={local}")
        assert alone.returncode == 0, alone.stderr[-2000:]
        assert result(job) == result(local)
    assert groups == {sweep.name} and len(ids) == 2


def test_a_requeued_job_resumes_by_itself(cluster, tiny_root: Path, tmp_path: Path) -> None:
    args = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=25", "callbacks.images.every_n_epochs=0", "seed=4"]
    whole = tmp_path / "whole"
    assert train_in_process(*args, "trainer=cpu", "threads=1", "logger=none", f"hydra.run.dir={whole}").returncode == 0

    sweep = tmp_path / "requeued"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    child = subprocess.Popen([sys.executable, "-m", "vaelab.train", "-m", *SLURM, *args, "logger=wandb", f"hydra.sweep.dir={sweep}"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
    assert last.exists(), "the job never wrote a checkpoint"
    (job_id,) = [p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    requeue = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err[-3000:]
    log = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.out"))
    assert f"SLURM restart 1 of job {job_id}: continuing {sweep / '0'} as with resume=true" in log
    assert f"resuming {sweep / '0'} from {last}" in log
    assert result(sweep / "0") == result(whole)  # the numbers of the uninterrupted run
    # one W&B run, continued: the first attempt's run file may be cut short (SLURM's SIGTERM stopped
    # W&B's service too), so its id is read from its folder name; the second one is read by W&B
    run_files = _runs(sweep / "0")
    rid = (sweep / "0" / "wandb_run_id").read_text().strip()
    assert len(run_files) == 2 and wandb_reader.offline_run_ids(sweep / "0") == [rid, rid]
    assert wandb_reader.run_record(run_files[1]).run_id == rid


def test_a_cancelled_job_ends_the_sweep_with_its_summary(cluster, tiny_root: Path, tmp_path: Path) -> None:
    """``scancel`` of one job: this cluster keeps no accounting (``sacct`` fails), and the sweep
    learns from ``squeue`` that the job left the queue; it waits for the other job, then ends."""
    sweep = tmp_path / "cancelled"
    args = [f"data.root={tiny_root}", *TINY, "trainer.max_epochs=20", "callbacks.images.every_n_epochs=0", "logger=none", "seed=0,1"]
    child = subprocess.Popen([sys.executable, "-m", "vaelab.train", "-m", *SLURM, *args, f"hydra.sweep.dir={sweep}"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
    assert last.exists(), "job 0 never wrote a checkpoint"
    (task,) = [p.name for p in (sweep / ".submitit").iterdir() if p.name.endswith("_0")]
    assert subprocess.run(["scancel", task], capture_output=True).returncode == 0
    out, err = child.communicate(timeout=300)  # before: still polling sacct after 20 minutes
    assert child.returncode == 1, err[-3000:]
    assert json.loads((sweep / "0" / "status.json").read_text())["status"] == "interrupted"
    assert json.loads((sweep / "1" / "status.json").read_text())["status"] == "completed"
    assert "1 completed, 1 interrupted" in out and "error: 1 of 2 job(s) did not complete: 0" in err
    assert "Traceback" not in err and "Bypassing sacct error" not in err, err


@pytest.mark.parametrize(
    ("override", "key"),
    [("hydra.launcher.partition=nosuchpartition", "hydra.launcher.partition"), ("hydra.launcher.gpus_per_node=1", "hydra.launcher.gpus_per_node")],
)
def test_an_sbatch_refusal_is_one_error_line(cluster, tiny_root: Path, tmp_path: Path, override: str, key: str) -> None:
    # a partition the cluster does not have, or a GPU asked of this CPU-only node: sbatch refuses the array
    sweep = tmp_path / "refused"
    proc = run_cli("vaelab.train", "-m", *SLURM, f"data.root={tiny_root}", *TINY, "logger=none", override, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: sbatch refused the jobs (") and key in lines[0], proc.stderr[-2000:]
    assert not list(sweep.glob("*/status.json"))  # no job ran
