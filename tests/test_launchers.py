"""Sweeps through the parallel and cluster launchers, run for real on tiny data.

joblib and submitit_local run the latent-dim sweep as separate processes; each job must complete,
use its share of the cores, and log its own W&B run into the sweep's one group. The SLURM config
is checked through the sbatch file submitit itself renders from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import wandb_reader
from conftest import REPO, TINY, run_cli, train_in_process
from vaelab.config.resolvers import usable_cores

SWEEP = ["model.latent_dim=1,2", "logger=wandb", "callbacks.images.every_n_epochs=0"]


def check_sweep(sweep: Path, proc: subprocess.CompletedProcess, threads: int) -> dict[int, dict]:
    """Both jobs completed with their own W&B run in the sweep's group; returns metrics by latent dim."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    metrics, run_ids, groups = {}, set(), set()
    for job in jobs:
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        m = json.loads((job / "metrics.json").read_text())
        metrics[m["latent_dim"]] = m
        info = json.loads((job / "run_info.json").read_text())
        assert info["config"]["threads"] == threads, "the job did not get its share of the cores"
        files = list((job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, f"{job}: expected one W&B run, found {files}"
        runs = wandb_reader.run_records(files[0])
        assert len(runs) == 1
        run_ids.add(runs[0].run_id)
        groups.add(runs[0].run_group)
        assert runs[0].display_name == f"ld{m['latent_dim']}_s0"
    assert sorted(metrics) == [1, 2]
    assert len(run_ids) == 2, "the two jobs share a W&B run"
    assert groups == {sweep.name}, f"runs are not in one group named after the sweep: {groups}"
    return metrics


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_processes(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "joblib_sweep"
    proc = run_cli("vaelab.train", "-m", "hydra/launcher=joblib", f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", *TINY, *SWEEP)
    # 2 jobs at once: each gets half the cores (1 thread each on this 2-core machine)
    metrics = check_sweep(sweep, proc, threads=max(1, usable_cores() // 2))
    # a job's numbers do not depend on the launcher: the same run alone, in this process, agrees
    alone = tmp_path / "alone"
    threads = f"threads={max(1, usable_cores() // 2)}"
    proc = train_in_process(f"data.root={tiny_root}", f"hydra.run.dir={alone}", *TINY, "model.latent_dim=2", "logger=none", threads)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((alone / "metrics.json").read_text())["history"] == metrics[2]["history"]


@pytest.mark.slow
def test_submitit_local_sweep(tiny_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "submitit_sweep"
    proc = run_cli(
        "vaelab.train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        f"data.root={tiny_root}",
        f"hydra.sweep.dir={sweep}",
        *TINY,
        *SWEEP,
    )
    check_sweep(sweep, proc, threads=1)  # cpus_per_task=1
    logs = list((sweep / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, f"expected one submitit log per job, found {logs}"


def test_slurm_config_renders_the_sbatch_script_with_overrides() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "slurm" / "slurm_script.py"),
            "--jobs",
            "4",
            "hydra.sweep.dir=/scratch/sw",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=90",
            "trainer=ddp",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = set(proc.stdout.splitlines())
    for expected in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --gpus-per-node=2",  # trainer=ddp: devices=2
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=4GB",
        "#SBATCH --array=0-3%4",
        "#SBATCH --job-name=train",
    ):
        assert expected in lines, f"{expected!r} missing from:\n{proc.stdout}"
    assert "srun" in proc.stdout and "submitit.core._submit /scratch/sw/.submitit/%j" in proc.stdout


def test_slurm_jobs_on_the_cpu_ask_for_no_gpu() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "slurm" / "slurm_script.py"), "--jobs", "2", "hydra.sweep.dir=/scratch/sw", "trainer=cpu",
                           "hydra.launcher.cpus_per_task=2", "hydra.launcher.mem_gb=3"], capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # submitit writes --gpus-per-node=0, which a CPU node accepts (tests/test_slurm.py runs such jobs)
    assert [ln for ln in proc.stdout.splitlines() if "gpus" in ln or "gres" in ln] == ["#SBATCH --gpus-per-node=0"], proc.stdout
    assert {"#SBATCH --cpus-per-task=2", "#SBATCH --mem=3GB"} <= set(proc.stdout.splitlines())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
