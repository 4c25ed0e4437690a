"""Same seed, same numbers; a run killed mid-training and resumed ends exactly where an
uninterrupted run ends (CPU).

Runs are called in process (the training task on a composed config); the runs that are killed or
signalled are real processes."""

import json
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import wandb_reader
from conftest import TINY, spawn_until, train_in_process
from conftest import run_result as result


def test_same_seed_gives_bit_identical_numbers(tiny_root, tmp_path):
    # three runs in this one process: seed 7 twice, then seed 8 (no state leaks from one run into the next)
    for job, seed in enumerate((7, 7, 8)):
        proc = train_in_process(f"seed={seed}", f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / str(job)}")
        assert proc.returncode == 0, proc.stderr[-2000:]
    a, b, c = (result(tmp_path / job) for job in ("0", "1", "2"))
    assert a == b  # exact float equality, through JSON's round-trip float repr
    assert c["history"] != a["history"]  # and the seed matters


def test_run_info_records_provenance(tiny_root, tmp_path):
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert set(info["versions"]) >= {"torch", "pytorch-lightning", "hydra-core", "wandb"}
    assert all(info["versions"][k] for k in ("torch", "pytorch-lightning", "hydra-core", "wandb"))
    assert info["config"]["model"]["latent_dim"] == 2 and "git_dirty" in info and "git_commit" in info


# lr 0.05 and patience 2 on tiny data: early stopping ends the run at epoch 15 of the 40 allowed
EARLY = ["model.lr=0.05", "callbacks.early_stopping.patience=2", "trainer.max_epochs=40", "callbacks.images.every_n_epochs=0", "seed=3"]


@pytest.fixture(scope="module")
def whole(tiny_root, tmp_path_factory) -> Path:
    """The uninterrupted EARLY run (logger=none), the reference of every interrupted one below: its
    numbers do not depend on the logger."""
    run = tmp_path_factory.mktemp("early") / "whole"
    proc = train_in_process(f"data.root={tiny_root}", *TINY, *EARLY, "logger=none", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tiny_root, tmp_path, whole):
    epochs = 40
    args = [f"data.root={tiny_root}", *TINY, *EARLY]  # with the W&B logger: the resumed run continues the W&B run
    stopped = json.loads((whole / "metrics.json").read_text())
    # the case under test: the run ends by early stopping, its minimum before its last epoch
    assert stopped["stop_reason"] == "early_stopping" and stopped["epochs"] < epochs
    assert stopped["val_loss_min_epoch"] < stopped["epochs"] and stopped["max_epochs"] == epochs

    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.ckpt"
    child = spawn_until([*args, f"hydra.run.dir={killed}"], last)
    time.sleep(0.3)  # into a later epoch
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert last.exists(), "the run never wrote a checkpoint"
    status = json.loads((killed / "status.json").read_text())
    assert status["status"] == "running" and not (killed / "metrics.json").exists(), "killed too late: the run had finished"
    import torch

    saved_epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert saved_epoch < epochs - 1

    proc = train_in_process(*args, "resume=true", f"hydra.run.dir={killed}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"epoch {saved_epoch + 2} (cap {epochs})" in proc.stdout and "epoch 1 (cap" not in proc.stdout
    assert result(killed) == result(whole)  # same stopping epoch (history, epochs), same numbers
    assert json.loads((killed / "metrics.json").read_text())["stop_reason"] == "early_stopping"
    # the resumed process continued the same W&B run
    # (the killed process's run file may be cut short, so its id is read from the folder name)
    rid = (killed / "wandb_run_id").read_text().strip()
    assert wandb_reader.offline_run_ids(killed) == [rid, rid]
    run_dirs = sorted((killed / "wandb").glob("offline-run-*"))
    assert wandb_reader.run_record(wandb_reader.run_file(run_dirs[1])).run_id == rid


@pytest.mark.slow
def test_chaos_sigkill_at_random_moments_then_resume_is_bit_identical(tiny_root, tmp_path, whole):
    # one run SIGKILLed at 4 seeded random moments of its training (before its first checkpoint,
    # mid-epoch, mid-checkpoint-write: wherever they fall), resumed with resume=true after each kill
    args = [f"data.root={tiny_root}", *TINY, *EARLY, "logger=none"]
    # kill moments within the first half of an uninterrupted run's training time, so the test kills
    # mid-run on a fast machine as on a slow one
    span = json.loads((whole / "metrics.json").read_text())["wall_time_s"]
    rng = random.Random(20261127)
    run = tmp_path / "chaos"
    kills = []
    for attempt in range(4):
        resume = ["resume=true"] if attempt else []
        status = run / "status.json"
        before = status.stat().st_mtime_ns if status.exists() else 0
        child = spawn_until([*args, *resume, f"hydra.run.dir={run}"], status, timeout=0)  # started, not waited for
        while child.poll() is None and (not status.exists() or status.stat().st_mtime_ns == before):
            time.sleep(0.02)  # until this attempt writes status "running": its training starts
        time.sleep(rng.uniform(0.0, 0.5 * span))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
            # a kill mid-run, unless the attempt had written metrics.json: then it was killed while
            # exiting (the interpreter's shutdown), its run already complete
            if not (run / "metrics.json").exists():
                kills.append(attempt)
        child.wait()
    assert len(kills) >= 2, f"only attempts {kills} were killed mid-run: the seeded moments fell after the end"
    proc = train_in_process(*args, "resume=true", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result(run) == result(whole)
    assert json.loads((run / "status.json").read_text())["status"] == "completed"


def test_resume_from_the_stopping_epoch_does_not_train_further(tiny_root, tmp_path, whole):
    # killed after the checkpoint of the epoch that triggered early stopping was written, before
    # metrics.json: the resumed run must end there, not train one more epoch
    args = [f"data.root={tiny_root}", *TINY, *EARLY, "logger=none"]
    late = tmp_path / "late"
    shutil.copytree(whole / "checkpoints", late / "checkpoints")
    proc = train_in_process(*args, "resume=true", f"hydra.run.dir={late}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resuming {late}" in proc.stdout
    assert not re.search(r"\] epoch \d+ \(cap", proc.stdout), proc.stdout  # no epoch was trained
    assert result(late) == result(whole)


@pytest.mark.slow
def test_sigterm_stops_with_a_resumable_state(tiny_root, tmp_path, whole):
    # what SLURM sends at a time limit or on preemption: non-zero exit, status "interrupted",
    # last.ckpt intact, and resume=true reaches the numbers of an uninterrupted run
    args = [f"data.root={tiny_root}", *TINY, *EARLY, "logger=none"]
    run = tmp_path / "run"
    started = time.perf_counter()
    child = spawn_until([*args, f"hydra.run.dir={run}"], run / "checkpoints" / "last.ckpt", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-2000:]
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        f"error: interrupted by SIGTERM: the last finished epoch's checkpoint is in {run}/checkpoints/last.ckpt; "
        "continue with resume=true and the same hydra.run.dir (or hydra.sweep.dir for a multirun)"
    ]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and status["signal"] == "SIGTERM"
    interrupted = json.loads((run / "metrics.json").read_text())
    assert interrupted["stop_reason"] == "interrupted"
    first_session = time.perf_counter() - started
    started = time.perf_counter()
    proc = train_in_process(*args, "resume=true", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result(run) == result(whole)
    # wall_time_s sums both sessions: more than the first alone, less than both processes' lifetimes
    wall = json.loads((run / "metrics.json").read_text())["wall_time_s"]
    assert interrupted["wall_time_s"] < wall < first_session + time.perf_counter() - started
    assert json.loads((run / "status.json").read_text())["status"] == "completed"


def test_resume_without_checkpoint_is_a_clear_error(tiny_root, tmp_path):
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "logger=none", "resume=true", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: resume=true but {tmp_path}/checkpoints/last.ckpt does not exist: pass hydra.run.dir=<the run dir to resume> (or hydra.sweep.dir for a multirun)"
    ]


def test_steps_per_call_does_not_change_numbers(tiny_root, tmp_path):
    # 10 batches per epoch: one Adam step per Lightning call, or 3 per call (the last call gets 1);
    # dynamic binarisation too, so the Bernoulli stream must also come out in the same order
    for job, steps in enumerate((1, 3)):
        args = ["seed=7", f"data.steps_per_call={steps}", "data.binarize=dynamic", f"data.root={tiny_root}", *TINY, "logger=none"]
        proc = train_in_process(*args, f"hydra.run.dir={tmp_path / str(job)}")
        assert proc.returncode == 0, proc.stderr[-2000:]
    one, three = (result(tmp_path / job) for job in ("0", "1"))
    assert one == three
    assert len(one["history"]) == 2
