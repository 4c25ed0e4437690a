"""The optimiser and the learning-rate schedule as config (conf/model/optimizer/, conf/model/scheduler/):
the default is the report's Adam with a constant rate; a schedule continues exactly across a resume,
killed or not, under both speeds; the rate of each epoch is in the history and the loggers;
resume=true refuses a changed optimiser or schedule by key; a bad one is one error line."""

import csv
import json
import math
import signal
import time
from pathlib import Path

import pytest

from conftest import TINY, run_cli, spawn_until, train_in_process
from conftest import run_result as result

# lr 0.05 on tiny data: val/loss stalls within a few epochs, so a plateau schedule with patience 0
# halves the rate mid-run (epoch 3 of seed 0 sets no new minimum: the rate is halved from epoch 4)
PLATEAU = ["model.lr=0.05", "model/scheduler=plateau", "model.scheduler.patience=0", "callbacks.images.every_n_epochs=0", "logger=none"]


def _args(tiny_root: Path, *extra: str) -> list[str]:
    return [f"data.root={tiny_root}", *(a for a in TINY if not a.startswith("trainer.max_epochs")), *extra]


def _history(run: Path) -> list[dict]:
    return json.loads((run / "metrics.json").read_text())["history"]


@pytest.fixture(scope="module")
def plateau_whole(tiny_root, tmp_path_factory) -> Path:
    """An uninterrupted 6-epoch plateau run (speed=fast, the default): the reference."""
    run = tmp_path_factory.mktemp("plateau") / "whole"
    proc = train_in_process(*_args(tiny_root, *PLATEAU, "trainer.max_epochs=6"), f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


def test_the_default_is_adam_with_a_constant_rate_logged_per_epoch(tiny_root, tmp_path):
    proc = train_in_process(*_args(tiny_root, "trainer.max_epochs=2", "model.lr=0.002", "logger=csv"), f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "run_info.json").read_text())["config"]["model"]
    assert info["optimizer"]["_target_"] == "torch.optim.Adam" and info["scheduler"] is None
    assert [row["train/lr"] for row in _history(tmp_path)] == [0.002, 0.002]
    # the loggers get it per epoch too (the CSV logger's rows, at the epoch's step)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    # (float32, as Lightning logs every metric)
    assert [float(r["train/lr"]) for r in rows if r.get("train/lr")] == pytest.approx([0.002, 0.002], rel=1e-6)


def test_wandb_charts_the_rate_against_the_epoch(tiny_root, tmp_path, plateau_whole):
    import wandb_reader

    args = [a for a in PLATEAU if a != "logger=none"]
    proc = train_in_process(*_args(tiny_root, *args, "trainer.max_epochs=6", "logger=wandb"), f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    f = wandb_reader.run_file(next((tmp_path / "wandb").glob("offline-run-*")))
    assert wandb_reader.metric_definitions(f)["train/lr"]["step_metric"] == "epoch"
    rows = [row for row in wandb_reader.history(f) if "train/lr" in row]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row["train/lr"] for row in rows] == pytest.approx([h["train/lr"] for h in _history(plateau_whole)], rel=1e-6)


def test_a_plateau_schedule_lowers_the_rate_and_both_speeds_agree(tiny_root, tmp_path, plateau_whole):
    rates = [row["train/lr"] for row in _history(plateau_whole)]
    assert rates[0] == 0.05 and min(rates) < 0.05 and rates == sorted(rates, reverse=True), rates
    # the plain LightningModule (automatic optimisation, Lightning's scheduler config) gives the same run
    proc = train_in_process(*_args(tiny_root, *PLATEAU, "trainer.max_epochs=6", "speed=plain"), f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result(tmp_path) == result(plateau_whole)
    # the epoch lines name the rate under a schedule
    assert "epoch 1 (cap 6)" in proc.stdout and " lr=0.05 (" in proc.stdout and f" lr={min(rates):.3g} (" in proc.stdout


@pytest.mark.parametrize("speed", ["fast", "plain"])
def test_a_resumed_plateau_schedule_ends_bit_identical(tiny_root, tmp_path, plateau_whole, speed):
    # 3 epochs, then resume=true with the cap raised to 6: last.ckpt of epoch 3 holds the scheduler
    # after epoch 3's val/loss, so the rate of epoch 4 on is the uninterrupted run's
    args = _args(tiny_root, *PLATEAU, f"speed={speed}", f"hydra.run.dir={tmp_path}")
    assert train_in_process(*args, "trainer.max_epochs=3").returncode == 0
    proc = train_in_process(*args, "trainer.max_epochs=6", "resume=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result(tmp_path) == result(plateau_whole)


def test_a_resumed_cosine_schedule_ends_bit_identical(tiny_root, tmp_path):
    args = _args(tiny_root, "model.lr=0.05", "model/scheduler=cosine", "model.scheduler.T_max=6", "logger=none", "callbacks.images.every_n_epochs=0")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train_in_process(*args, "trainer.max_epochs=6", f"hydra.run.dir={whole}").returncode == 0
    rates = [row["train/lr"] for row in _history(whole)]
    assert rates == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)], rel=1e-12)
    assert train_in_process(*args, "trainer.max_epochs=2", f"hydra.run.dir={parts}").returncode == 0
    assert train_in_process(*args, "trainer.max_epochs=6", "resume=true", f"hydra.run.dir={parts}").returncode == 0
    assert result(parts) == result(whole)


@pytest.mark.slow
def test_a_plateau_run_killed_and_resumed_ends_bit_identical(tiny_root, tmp_path):
    args = _args(tiny_root, *PLATEAU, "trainer.max_epochs=12")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train_in_process(*args, f"hydra.run.dir={whole}").returncode == 0
    last = killed / "checkpoints" / "last.ckpt"
    child = spawn_until([*args, f"hydra.run.dir={killed}"], last)
    time.sleep(0.3)  # into a later epoch
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert last.exists() and not (killed / "metrics.json").exists(), "the kill missed the run's training"
    proc = train_in_process(*args, "resume=true", f"hydra.run.dir={killed}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1 (cap" not in proc.stdout  # continued, not started over
    assert result(killed) == result(whole)
    assert len({row["train/lr"] for row in _history(whole)}) > 1  # the schedule changed the rate


def test_adamw_is_an_option_and_changes_the_numbers(tiny_root, tmp_path):
    common = _args(tiny_root, "trainer.max_epochs=2", "model.lr=0.05", "logger=none", "callbacks.images.every_n_epochs=0")
    adam, adamw = tmp_path / "adam", tmp_path / "adamw"
    assert train_in_process(*common, f"hydra.run.dir={adam}").returncode == 0
    proc = train_in_process(*common, "model/optimizer=adamw", "model.optimizer.weight_decay=0.5", f"hydra.run.dir={adamw}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import torch

    state = torch.load(adamw / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["optimizer_states"][0]
    assert state["param_groups"][0]["weight_decay"] == 0.5 and state["param_groups"][0]["lr"] == 0.05
    assert _history(adamw)[-1]["val/loss"] != _history(adam)[-1]["val/loss"]


def test_resume_refuses_a_changed_optimiser_or_schedule_naming_the_keys(tiny_root, plateau_whole):
    base = [*_args(tiny_root, *PLATEAU, "trainer.max_epochs=6"), f"hydra.run.dir={plateau_whole}", "resume=true"]
    for change, named in (
        (["model.scheduler.patience=3"], "model.scheduler.patience: 0 -> 3"),
        (["model/optimizer=adamw"], "model.optimizer: 'torch.optim.Adam' -> 'torch.optim.AdamW'"),
        (["model/scheduler=none"], "model.scheduler: 'torch.optim.lr_scheduler.ReduceLROnPlateau' -> None"),
    ):
        # (with no scheduler, the recorded run's patience override has no key to set: dropped)
        kept = [a for a in base if not (change == ["model/scheduler=none"] and a.startswith("model.scheduler."))]
        proc = train_in_process(*kept, *change)  # the task in process: the command line's error path is tested below
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
        assert named in lines[0], lines[0]


def test_a_run_recorded_before_the_optimiser_keys_resumes_as_adam_without_a_schedule():
    from vaelab.runs.claim import changed_settings

    current = {
        "model": {
            "lr": 0.001,
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
            "scheduler": None,
        }
    }
    assert changed_settings({"model": {"lr": 0.001}}, current) == []
    current["model"]["optimizer"]["weight_decay"] = 0.1
    assert changed_settings({"model": {"lr": 0.001}}, current) == ["model.optimizer.weight_decay: 0.0 -> 0.1"]


BAD = [
    (["+model.optimizer.lr=0.1"], "model.optimizer.lr", "set model.lr="),
    (["model.optimizer._target_=torch.optim.RMSprop", "~model.optimizer.betas"], "model.fused=true", "set model.fused=false"),
    (["model.optimizer._target_=torch.optim.Nosuch"], "model.optimizer._target_=torch.optim.Nosuch", "cannot be imported"),
    (["model/scheduler=plateau", "+model.scheduler.patiense=3"], "model.scheduler.patiense", "it takes: mode, factor, patience"),
    (["model/scheduler=cosine", "model.scheduler._target_=torch.optim.Adam"], "model.scheduler._target_=torch.optim.Adam", "is not a"),
    (["model/optimizer=nosuch"], "model/optimizer=nosuch", "adam, adamw"),
]


# through the command line: a value the check refuses and a group option Hydra cannot compose (the
# others in process, where the task prints the same line: each command line costs seconds of imports)
COMMAND_LINE = {"model.optimizer._target_=torch.optim.Nosuch", "model/optimizer=nosuch"}


@pytest.mark.parametrize("args,key,fix", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_a_bad_optimiser_or_schedule_is_one_error_line(args, key, fix, tiny_root, tmp_path):
    overrides = [*_args(tiny_root, *args, "logger=none"), f"hydra.run.dir={tmp_path}/run"]
    cli = " ".join(args) in COMMAND_LINE
    proc = run_cli("vaelab.train", *overrides) if cli else train_in_process(*overrides)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: ") and key in lines[0] and fix in lines[0], lines[0]
    if cli:
        assert not (tmp_path / "run").exists()
