"""scripts/reproduce.sh: --quick end to end on tiny data (train both kl forms in one sweep, evaluate,
report); the experiment, options and Hydra overrides it is given, as the commands it runs; --help and
usage errors."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "reproduce.sh"


def _run(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run([str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_reproduce_quick(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "repro"
    env = {"VAELAB_DATA_ROOT": str(tiny_root), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    # the sequential launcher (an override that replaces the script's joblib, for the evaluation too):
    # half the processes (each imports torch and Lightning) of the default joblib one, whose sweeps
    # tests/test_launchers.py runs
    proc = _run("paper", "--quick", "--out", str(out), "hydra/launcher=basic", env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "launcher basic" in proc.stdout and "hydra/launcher=joblib" not in proc.stdout
    # progress: which job, epoch, val/loss
    assert "[ld=1 seed=0 kl=paper] epoch 2 (cap 2)" in proc.stdout and "[ld=2 seed=0 kl=analytic] epoch 2 (cap 2)" in proc.stdout
    # one pool of 4 jobs (kl outer, then latent dim) in one sweep folder, one multirun.yaml
    assert sorted(p.name for p in (out / "sweep").iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
    assert (out / "sweep" / "multirun.yaml").is_file()
    for job, kl, latent_dim in (("0", "paper", 1), ("1", "paper", 2), ("2", "analytic", 1), ("3", "analytic", 2)):
        metrics = json.loads((out / "sweep" / job / "metrics.json").read_text())
        evaluation = json.loads((out / "sweep" / job / "eval.json").read_text())
        assert (metrics["kl"], metrics["latent_dim"], evaluation["k"]) == (kl, latent_dim, 16)
        assert evaluation["test_loss"] == metrics["test_loss"] or abs(evaluation["test_loss"] - metrics["test_loss"]) < 1e-3
        run_info = json.loads((out / "sweep" / job / "run_info.json").read_text())
        wandb_cfg = run_info["config"]["logger"]["wandb"]
        assert wandb_cfg["group"].startswith("reproduce_") and wandb_cfg["tags"] == ["reproduce", f"kl-{kl}"]
    with (out / "results" / "val_loss.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["kl"], r["latent_dim"]) for r in rows] == [("paper", "1"), ("paper", "2"), ("analytic", "1"), ("analytic", "2")]
    assert all(r["n_seeds"] == "1" and r["iw_k"] == "16" for r in rows)
    assert len(list((out / "results").glob("*.png"))) == 6
    assert list((out / "report" / "wandb").glob("offline-run-*"))
    # the provenance line names the command as typed, with its experiment
    assert f"- command: scripts/reproduce.sh paper --quick --out {out} hydra/launcher=basic" in (out / "results" / "val_loss.md").read_text()


def _dry_run(*args: str) -> tuple[list[str], list[str], list[str]]:
    """The training, evaluation and report commands ``scripts/reproduce.sh --dry-run args`` prints."""
    proc = _run("--dry-run", *args)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    train, evaluate, report = (shlex.split(line) for line in proc.stdout.splitlines())
    assert train[:4] == [sys.executable, "-m", "vaelab.train", "-m"] and evaluate[1:4] == ["-m", "vaelab.evaluate", "-m"]
    assert report[1:3] == ["-m", "vaelab.report"]
    return train[4:], evaluate[4:], report[3:]


def test_the_experiment_picks_sweep_k_results_and_wandb_group(tmp_path: Path) -> None:
    """paper (the default) and literature: each its sweep, IW k, results folder and W&B group; one
    pool with the joblib launcher, whose jobs evaluate on one torch thread each."""
    train, evaluate, report = _dry_run("--out", str(tmp_path))
    assert train[:4] == ["experiment=paper", "model.kl=paper,analytic", "model.latent_dim=1,2", "seed=0,1,2"]
    assert "hydra/launcher=joblib" in train and f"hydra.sweep.dir={tmp_path}/sweep" in train
    assert train[-2].startswith("logger.wandb.group=reproduce_") and train[-1] == "tags=[reproduce,kl-${model.kl}]"
    assert evaluate[1:] == ["k=100", f"hydra.sweep.dir={tmp_path}/evaluate", "hydra/launcher=joblib", "threads=1"]
    assert report == [
        f"{tmp_path}/sweep",
        "--out",
        "results",
        "--wandb-dir",
        f"{tmp_path}/report",
        "--command",
        f"scripts/reproduce.sh paper --out {tmp_path}",
    ]
    assert not tmp_path.joinpath("sweep").exists()  # --dry-run runs nothing

    train, evaluate, report = _dry_run("literature")
    assert train[:3] == ["experiment=literature", "model.latent_dim=2,5", "seed=0,1,2"]
    assert train[-2].startswith("logger.wandb.group=literature_") and train[-1] == "tags=[literature]"
    assert "k=500" in evaluate and report[report.index("--out") + 1] == "results/literature"
    assert [a for a in train if a.startswith("hydra.sweep.dir=")][0].startswith("hydra.sweep.dir=outputs/literature/")


def test_overrides_replace_the_scripts_values_and_reach_every_job(tmp_path: Path) -> None:
    """An override for a key the script sets replaces its value (seed, the launcher); the others are added
    at the end; launcher overrides reach the evaluation too; logger=none drops the W&B group and tags;
    --quick's small settings give way to the user's; --k and --results set the evaluation and report."""
    args = ["literature", "--quick", "seed=3,4", "trainer=gpu", "hydra.launcher.n_jobs=6", "model.hidden=[64, 32]", "logger=none"]
    train, evaluate, report = _dry_run(*args, "--k", "7", "--results", str(tmp_path / "r"))
    assert "seed=3,4" in train and not [a for a in train if a.startswith("seed=") and a != "seed=3,4"]
    assert "trainer.max_epochs=2" in train and "model.hidden=[32,16]" not in train
    assert train[-5:] == args[2:] and not [a for a in train if a.startswith(("logger.wandb", "tags="))]
    assert evaluate[1:] == ["k=7", evaluate[2], "hydra/launcher=joblib", "hydra.launcher.n_jobs=6", "threads=1"]
    assert report[report.index("--out") + 1] == str(tmp_path / "r")
    # the report's provenance: the command as typed, the experiment named first
    assert shlex.split(report[-1]) == ["scripts/reproduce.sh", "literature", *args[1:], "--k", "7", "--results", str(tmp_path / "r")]
    train, evaluate, _ = _dry_run("hydra/launcher=basic")
    assert "hydra/launcher=joblib" not in train and train.count("hydra/launcher=basic") == 1
    assert evaluate[1:] == ["k=100", evaluate[2], "hydra/launcher=basic"]  # all cores per job: no threads=1


def test_help_prints_the_whole_header_and_no_code() -> None:
    """--help prints the script's header comment, from after the shebang to its last line, and exits 0."""
    proc = _run("--help")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines == SCRIPT.read_text().splitlines()[1 : len(lines) + 1]
    assert all(line.startswith("#") for line in lines) and lines[-1].startswith("# Exit status:"), lines[-2:]
    assert "# Usage:  scripts/reproduce.sh [paper|literature] [options] [overrides...]" in lines


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--bogus"], "unknown argument --bogus (see scripts/reproduce.sh --help)"),
        (["mnist"], "unknown argument mnist (the experiment is paper or literature; an override is key=value)"),
        (["paper", "literature"], "two experiments given (paper and literature): one of paper, literature"),
        (["experiment=literature"], "the experiment is an argument of its own (paper or literature), not an override: experiment=literature"),
        (["--k", "0"], "--k must be a positive integer, not 0"),
        (["seed=0", "--out"], "--out needs a value"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(tmp_path: Path, args: list[str], error: str) -> None:
    proc = _run(*args, "--out", str(tmp_path / "out")) if args[-1] != "--out" else _run(*args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"error: {error}\n")
    assert not (tmp_path / "out").exists()  # nothing run, nothing written
