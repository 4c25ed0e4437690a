"""trainer=ddp with 2 CPU processes (gloo): the CLI path, per-rank sharding and cross-rank metrics.

The validation split of 101 images does not divide over 2 ranks, so a sampler that pads or drops
would change the validation loss by about a loss per image / 101 (several nats / 101): the
tolerance below (1e-6 relative, float32 per-batch sums) is far tighter than that.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ddp_worker
from conftest import REPO, TINY, run_cli

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "logger=none", "callbacks.images.every_n_epochs=0"]
TINY_101 = [o for o in TINY if not o.startswith("data.val_size")] + ["data.val_size=101"]


def worker(mode: str, ckpt: str, root: Path, devices: int, out: Path) -> list[dict]:
    """Run tests/ddp_worker.py; returns what each rank saw, by rank."""
    env = {"PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "ddp_worker.py"), mode, ckpt, str(root), str(devices), str(out), "101"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"{mode}_rank{r}.json").read_text()) for r in range(devices)]


@pytest.fixture(scope="module")
def ddp_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-process DDP training run through the real CLI, into a Hydra run dir."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    proc = run_cli("vaelab.train", f"data.root={tiny_root}", f"hydra.run.dir={run_dir}", *TINY_101, *DDP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir.parent / "console.txt").write_text(proc.stdout + proc.stderr)  # what the user saw
    return run_dir


def test_ddp_cli_trains_with_two_processes_in_one_run_dir(ddp_run: Path) -> None:
    assert json.loads((ddp_run / "status.json").read_text())["status"] == "completed"
    m = json.loads((ddp_run / "metrics.json").read_text())
    assert m["epochs"] == 2 and math.isfinite(m["val_loss_min"]) and math.isfinite(m["test_loss"])
    assert Path(m["best_ckpt"]).is_file()
    # Lightning re-ran `python -m vaelab.train` for rank 1 with hydra.run.dir = this run dir
    assert (ddp_run / "train_ddp_process_1.log").is_file()
    assert json.loads((ddp_run / "run_info.json").read_text())["config"]["trainer"]["devices"] == 2
    # epoch metrics are logged so that Lightning has nothing to warn about under DDP
    console = (ddp_run.parent / "console.txt").read_text()
    assert "sync_dist" not in console, [ln for ln in console.splitlines() if "sync_dist" in ln][:3]


@pytest.mark.slow
def test_validating_a_checkpoint_on_two_ranks_matches_one(ddp_run: Path, tiny_root: Path, tmp_path: Path) -> None:
    ckpt = json.loads((ddp_run / "metrics.json").read_text())["best_ckpt"]
    one = ddp_worker.run("validate", ckpt, str(tiny_root), 1, str(tmp_path / "one"), 101)  # one rank: in this process
    two = worker("validate", ckpt, tiny_root, 2, tmp_path / "two")
    assert two[0] == two[1], "ranks report different validation metrics"
    for key in ("val/loss", "val/recon", "val/kl", "val/nelbo"):
        assert two[0][key] == pytest.approx(one[key], rel=1e-6, abs=0), key
    # and it is the validation loss training recorded for that checkpoint's epoch
    m = json.loads((ddp_run / "metrics.json").read_text())
    assert one["val/loss"] == pytest.approx(m["val_loss_min"], rel=1e-6)


def test_ddp_training_shards_the_epoch_and_reduces_train_metrics(tiny_root: Path, tmp_path: Path) -> None:
    ranks = worker("fit", "-", tiny_root, 2, tmp_path / "fit")
    # 499 training images: each rank takes 249 of them, 5 batches of <= 50
    assert [r["train_batches"] for r in ranks] == [5, 5]
    # train/loss is a sum over both ranks' images: identical on both (each rank's own mean would differ)
    assert ranks[0]["history"] == ranks[1]["history"]
    assert all(math.isfinite(row["train/loss"]) for row in ranks[0]["history"])


def test_ddp_in_a_local_multirun_is_refused_with_a_clear_message(tiny_root: Path, tmp_path: Path) -> None:
    proc = run_cli("vaelab.train", "-m", f"data.root={tiny_root}", f"hydra.sweep.dir={tmp_path / 'sw'}", *TINY_101, *DDP, "seed=0,1")
    assert proc.returncode != 0
    assert "trainer=ddp in a local multirun" in proc.stderr
    status = json.loads((tmp_path / "sw" / "0" / "status.json").read_text())
    assert status["status"] == "failed" and "submitit_slurm" in status["error"]
