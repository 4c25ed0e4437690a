"""The tools run end to end: bench/benchmark.py (tiny settings, synthetic data) prints every figure, bench/patience_replay.py
replays early stopping, and scripts/readme_results.py keeps the README's results table the committed one."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_script


def test_benchmark_script_prints_all_figures_on_synthetic_data() -> None:
    env = {k: v for k, v in os.environ.items() if k != "VAELAB_DATA_ROOT"}
    env["PYTHONPATH"] = str(REPO / "src")
    args = ["--rounds", "1", "--steps", "6", "--skip", "2", "--c-steps", "3", "--epochs", "0", "--threads", "1"]
    proc = run_script(REPO / "bench" / "benchmark.py", *args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "SYNTHETIC" in out  # no real MNIST given: it says the figures are on synthetic images
    for label in (
        "A real path",
        "B plain loop",
        "C torchvision loop",
        "A/B",
        "A/C",
        "A achieved GFLOP/s",
        "matmul peak GFLOP/s",
        "A / peak",
        "data paths alone",
        "memory",
    ):
        line = next((ln for ln in out.splitlines() if ln.startswith(label)), None)
        assert line is not None, f"{label!r} missing from:\n{out}"
        numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", line.split(label, 1)[1])]
        assert numbers and all(x > 0 for x in numbers[:1]), line
    # the FLOP count is the model's: 784-400-2-400-784, forward 2*(784*400 + 400*4 + 2*400 + 400*784) per image
    forward = 2 * (784 * 400 + 400 * 4 + 2 * 400 + 400 * 784) / 1e6
    assert f"forward {forward:.3f} M" in out
    # the floor of the committed reproduction: its run-epochs (results/runs.csv) at the printed matmul peak
    line = next(ln for ln in out.splitlines() if ln.startswith("reproduction floor"))
    got = re.search(r"(\d+) run-epochs .*?, (\d+) TFLOP .*?: ([\d.]+) min at this matmul peak \((\d+) GFLOP/s\)", line)
    assert got, line
    epochs, tflop, minutes, peak = int(got[1]), int(got[2]), float(got[3]), int(got[4])
    with (REPO / "results" / "runs.csv").open() as f:
        assert epochs == sum(int(r["epochs"]) for r in csv.DictReader(f))
    fwd_bwd = float(re.search(r"forward\+backward ([\d.]+) M", out)[1]) * 1e6
    assert abs(tflop - epochs * (49999 * fwd_bwd + 10000 * forward * 1e6) / 1e12) <= 1  # synthetic: 59,999 images, 10,000 for validation
    assert minutes == pytest.approx(tflop * 1e3 / peak / 60, rel=0.02, abs=0.2)


def test_readme_results_are_the_committed_table() -> None:
    """The README's headline and table are results/val_loss.md's, as scripts/readme_results.py copies them."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_results.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    readme = (REPO / "README.md").read_text()
    headline = next(ln for ln in (REPO / "results" / "val_loss.md").read_text().splitlines() if ln.startswith("The minimal loss"))
    assert readme.count(headline) == 1


def test_readme_results_check_fails_on_a_stale_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nThe minimal loss of the validation set is **1.00** old\n<!-- results:end -->\nend\n")
    cmd = [sys.executable, str(REPO / "scripts" / "readme_results.py"), "--readme", str(readme), "--results", str(REPO / "results" / "val_loss.md")]
    assert subprocess.run([*cmd, "--check"], capture_output=True, text=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True, text=True).returncode == 0
    assert readme.read_text().startswith("intro\n<!-- results:begin -->\nThe minimal loss") and readme.read_text().endswith(
        "<!-- results:end -->\nend\n"
    )


def test_patience_replay_stops_where_lightning_would_and_measures_the_rise(tmp_path: Path) -> None:
    """A U-shaped curve: falls to 10.0 at epoch 5, a plateau, a lower 9.0 at epoch 12, then rises to 11.0.
    Patience 3 stops on the plateau (epoch 8, minimum 10.0 at 5: 1.0 above the whole run's); patience 10
    reaches the true minimum and stops 10 epochs after it. The U: the last 4 epochs average 11.0, 2.0
    above the minimum, while the training loss fell from 5.0 at the minimum to 3.0."""
    val = [14.0, 13.0, 12.0, 11.0, 10.0, 10.5, 10.5, 10.5, 10.5, 10.5, 10.5, 9.0] + [9.5] * 6 + [11.0] * 4
    train = [20.0] * 11 + [5.0] + [4.0] * 6 + [3.0] * 4
    history = [{"epoch": i + 1, "val/loss": v, "train/loss": t} for i, (v, t) in enumerate(zip(val, train))]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"latent_dim": 2, "seed": 7, "history": history}))
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "patience_replay.py"), str(path), "--patience", "3,10", "--min-delta", "0", "--last", "4"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("d=2 seed 7")]
    assert rows[0][5:11] == ["3", "0.00", "8", "10.000", "5", "+1.000"]
    assert rows[1][5:11] == ["10", "0.00", "22", "9.000", "12", "+0.000"]
    assert rows[2][5:] == ["9.000", "12", "+2.00", "+2.00"]


def test_patience_replay_names_a_file_without_history(tmp_path: Path) -> None:
    """A metrics.json without a per-epoch history is one error line naming the file, exit 1."""
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"latent_dim": 1, "seed": 0}))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "patience_replay.py"), str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}: not a run's metrics.json") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
