"""scripts/reproduce.sh --quick end to end on tiny data: train both kl forms in one sweep, evaluate, report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_reproduce_quick(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "repro"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "VAELAB_DATA_ROOT": str(tiny_root),
        "VAELAB_REPRODUCE_DIR": str(out),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        # the sequential launcher: half the processes (each imports torch and Lightning) of the default
        # joblib one, whose sweeps tests/test_launchers.py runs
        "VAELAB_LAUNCHER": "basic",
    }
    proc = subprocess.run([str(REPO / "scripts" / "reproduce.sh"), "--quick"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "launcher: basic" in proc.stdout
    # progress: which job, epoch, val/loss
    assert "[ld=1 seed=0 kl=paper] epoch 2/2" in proc.stdout and "[ld=2 seed=0 kl=analytic] epoch 2/2" in proc.stdout
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


def test_help_prints_the_whole_header_and_no_code() -> None:
    """--help prints each script's header comment, from after the shebang to its last line, and exits 0;
    an unknown argument is one error line and exit 2."""
    for name, last in (("reproduce.sh", "#   VAELAB_N_JOBS "), ("reproduce_literature.sh", "# VAELAB_EXTRA_OVERRIDES, VAELAB_LAUNCHER")):
        script = REPO / "scripts" / name
        proc = subprocess.run([str(script), "--help"], cwd=REPO, capture_output=True, text=True, timeout=30)
        lines = proc.stdout.splitlines()
        assert proc.returncode == 0 and lines == script.read_text().splitlines()[1 : len(lines) + 1]
        assert all(line.startswith("#") for line in lines) and lines[-1].startswith(last), lines[-2:]
        bad = subprocess.run([str(script), "--bogus"], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and bad.stderr == "error: unknown argument --bogus (only --quick is accepted)\n"
