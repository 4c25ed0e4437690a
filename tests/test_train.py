"""Training on tiny data: a multirun through the real CLI (jobs, W&B offline runs in one group, the
sweep summary); single runs called in process (metrics, ckpt_path, fast_dev_run, the config tree)."""

import json
from pathlib import Path

import pytest
import torch

import wandb_reader
from conftest import TINY, run_cli, train_in_process


@pytest.fixture(scope="module")
def sweep(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("sweep") / "sw"
    proc = run_cli("vaelab.train", "-m", "model.latent_dim=1,2", f"data.root={tiny_root}", *TINY, f"hydra.sweep.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_multirun_writes_two_jobs(sweep):
    out, stdout = sweep
    jobs = sorted(p for p in out.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    for job, dim in zip(jobs, (1, 2)):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["latent_dim"] == dim and metrics["seed"] == 0 and metrics["kl"] == "paper"
        assert set(metrics) >= {"val_loss_min", "val_loss_min_epoch", "test_loss", "test_nelbo", "wall_time_s", "git_commit"}
        losses = [row["val/loss"] for row in metrics["history"]]
        assert len(losses) == 2 and metrics["val_loss_min"] == min(losses)
        assert metrics["val_loss_min_epoch"] == 1 + losses.index(min(losses))
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert Path(metrics["best_ckpt"]).is_file() and Path(metrics["best_ckpt"]).parent == job / "checkpoints"
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        assert len(list((job / "images").glob("latent_grid_epoch002.png"))) == 1
        # the sweep summary says where things went
        assert str(job / "metrics.json") in stdout
    assert "epoch 2 (cap 2)" in stdout and "val/loss=" in stdout


def test_multirun_gives_two_wandb_runs_in_one_group(sweep):
    out, _ = sweep
    runs = []
    for job in ("0", "1"):
        run_dirs = list((out / job / "wandb").glob("offline-run-*"))
        assert len(run_dirs) == 1
        runs.append(wandb_reader.run_file(run_dirs[0]))
    records = [wandb_reader.run_record(f) for f in runs]
    assert records[0].run_id != records[1].run_id
    assert records[0].run_group == records[1].run_group == out.name
    assert [r.display_name for r in records] == ["ld1_s0", "ld2_s0"]
    for job, f in zip(("0", "1"), runs):
        history = json.loads((out / job / "metrics.json").read_text())["history"]
        logged = wandb_reader.metric_series(f, "val/loss")
        assert logged == pytest.approx([row["val/loss"] for row in history], rel=1e-6)
        config = wandb_reader.config(f)
        assert config["model"]["latent_dim"] == int(job) + 1 and config["provenance"]["versions"]["torch"]


def test_ckpt_path_starts_a_new_run_from_those_weights(tiny_root, tmp_path):
    first = tmp_path / "first"
    args = [f"data.root={tiny_root}", *TINY, "logger=none"]
    proc = train_in_process(*args, f"hydra.run.dir={first}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = json.loads((first / "metrics.json").read_text())["history"]
    second = tmp_path / "second"
    proc = train_in_process(*args, "trainer.max_epochs=3", f"ckpt_path={first}/checkpoints/last.ckpt", f"hydra.run.dir={second}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = json.loads((second / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in after] == [1, 2, 3]  # a fresh history in its own run dir
    assert "epoch 1 (cap 3)" in proc.stdout
    assert after[0]["val/loss"] < before[0]["val/loss"]  # but it started from the trained weights
    info = json.loads((second / "run_info.json").read_text())
    assert info["init_from"]["ckpt_path"] == str((first / "checkpoints" / "last.ckpt").resolve())
    assert info["init_from"]["config"]["model"]["latent_dim"] == 2
    assert json.loads((first / "metrics.json").read_text())["history"] == before  # the source run is untouched


def test_fast_dev_run(tiny_root, tmp_path):
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "debug=fast_dev_run", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1


def test_fast_dev_run_trains_one_batch_under_both_speeds(tiny_root, tmp_path):
    # speed=plain's one call is one batch; the default speed (several batches per call otherwise)
    # must train on that same batch alone: the same training loss and the same weights after it
    losses = []
    for speed in ("fast", "plain"):
        run = tmp_path / speed
        proc = train_in_process(f"data.root={tiny_root}", *TINY, "debug=fast_dev_run", f"speed={speed}", f"hydra.run.dir={run}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        losses.append([(r["train/loss"], r["val/loss"]) for r in json.loads((run / "metrics.json").read_text())["history"]])
    assert losses[0] == losses[1] and len(losses[0]) == 1


def test_limit_train_batches_counts_batches_under_both_speeds(tiny_root, tmp_path):
    # an int trainer.limit_train_batches trains that many batches an epoch under the default speed
    # too (it takes one batch a call then: conf/speed/fast.yaml), with speed=plain's numbers
    results = []
    for speed in ("fast", "plain"):
        run = tmp_path / speed
        proc = train_in_process(
            f"data.root={tiny_root}", *TINY, "+trainer.limit_train_batches=3", f"speed={speed}", "logger=none", f"hydra.run.dir={run}"
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        history = json.loads((run / "metrics.json").read_text())["history"]
        results.append(([(r["train/loss"], r["val/loss"]) for r in history], ckpt["global_step"]))
    assert results[0] == results[1] and results[0][1] == 2 * 3  # 2 epochs of 3 Adam steps


def test_history_is_whole_when_the_best_epoch_is_not_the_last(tiny_root, tmp_path):
    # lr 0.05, seed 0: the best val/loss is at epoch 2 of 3. Testing loads the best checkpoint, whose
    # stored history ends at epoch 2; metrics.json must still hold all 3 epochs (curves, "epochs")
    args = [a for a in TINY if not a.startswith("trainer.max_epochs")]
    proc = train_in_process(
        f"data.root={tiny_root}", *args, "trainer.max_epochs=3", "model.lr=0.05", "seed=0", "logger=none", f"hydra.run.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val_loss_min_epoch"] == 2  # the case under test: best epoch before the last
    assert metrics["epochs"] == 3 and [row["epoch"] for row in metrics["history"]] == [1, 2, 3]
    assert metrics["val_loss_min"] == min(row["val/loss"] for row in metrics["history"])


def test_the_resolved_config_is_printed_as_a_tree_by_default(tiny_root, tmp_path):
    args = [f"data.root={tiny_root}", *(a for a in TINY if not a.startswith("print_config=")), "logger=none", "debug=fast_dev_run"]
    shown = train_in_process(*args, "model.latent_dim=3", f"hydra.run.dir={tmp_path / 'shown'}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    start = lines.index("config (resolved)")
    branches = [ln[4:] for ln in lines[start:] if ln.startswith(("├── ", "└── "))]
    assert branches[:6] == ["data", "model", "trainer", "callbacks", "logger: null", "paths"]  # logger=none: a leaf
    assert f"│       root: {tiny_root}" in lines and "│       latent_dim: 3" in lines  # resolved values, overrides applied
    assert "seed: 0" in branches and "print_config: true" in branches
    quiet = train_in_process(*args, "print_config=false", f"hydra.run.dir={tmp_path / 'quiet'}")
    assert quiet.returncode == 0 and "config (resolved)" not in quiet.stdout
