"""Faults and bad input: each gives one clear line and a non-zero exit, and loses nothing.

The training task is called in process (its ``SystemExit`` code is the exit code); one data fault and a
failing multirun job go through the real command line."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import wandb_reader
from conftest import TINY, make_tiny_mnist, run_cli, train_in_process, write_idx


def one_error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # library warnings printed before the failure may precede it; the error itself is one line, last
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return errors[0]


def train(root: Path, run: Path, *extra: str):
    """The training task on ``root``, in this process."""
    return train_in_process(f"data.root={root}", *TINY, "logger=none", f"hydra.run.dir={run}", *extra)


# ------------------------------------------------------------------ data files
@pytest.fixture
def copy_root(tiny_root, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    return root


def test_truncated_idx_file(copy_root, tmp_path):
    f = copy_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    line = one_error_line(train(copy_root, tmp_path / "run"))
    assert str(f) in line and "truncated or corrupted" in line
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_a_data_fault_through_the_command_line(copy_root, tmp_path):
    """The same fault as above, from the command line: one line on stderr, exit code 2, no traceback."""
    f = copy_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    proc = run_cli("vaelab.train", f"data.root={copy_root}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert str(f) in line and "truncated or corrupted" in line
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_wrong_magic_number(copy_root, tmp_path):
    raw = copy_root / "MNIST" / "raw"
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "t10k-images-idx3-ubyte")  # the wrong file
    line = one_error_line(train(copy_root, tmp_path / "run"))
    assert "t10k-images-idx3-ubyte has idx magic number 2049, expected 2051" in line


def test_image_label_count_mismatch(copy_root, tmp_path):
    write_idx(copy_root / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(599), 2049)
    line = one_error_line(train(copy_root, tmp_path / "run"))
    assert "600 images but train-labels-idx1-ubyte holds 599 labels" in line


def test_md5_checked_for_official_sized_files(tmp_path):
    root = make_tiny_mnist(tmp_path / "data", n_train=600, n_test=10000)  # official test count, fake content
    line = one_error_line(train(root, tmp_path / "run"))
    assert "t10k-images-idx3-ubyte has MD5" in line and "expected the official 2646ac647ad5339dbf082846283269ea" in line


def test_root_without_mnist_and_offline(tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_error_line(train(tmp_path / "empty", tmp_path / "run", "data.download=false"))
    assert f"missing from {tmp_path}/empty/MNIST/raw" in line and "data.download" in line


def test_root_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_error_line(train(tmp_path / "file", tmp_path / "run"))
    assert "data.root=" in line and "VAELAB_DATA_ROOT" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not stop root from reading")
def test_unreadable_file(copy_root, tmp_path):
    f = copy_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.chmod(0)
    line = one_error_line(train(copy_root, tmp_path / "run"))
    assert str(f) in line and "not readable" in line


# ----------------------------------------------------------------- output dir
def test_output_dir_under_a_file(tiny_root, tmp_path):
    (tmp_path / "f").write_text("x")
    # checked on the command line, before Hydra makes the run dir: a real process
    line = one_error_line(run_cli("vaelab.train", f"data.root={tiny_root}", *TINY, "logger=none", f"hydra.run.dir={tmp_path / 'f' / 'run'}"))
    assert f"{tmp_path}/f is a file, not a folder" in line and "hydra.run.dir" in line


def test_disk_full_while_checkpointing(tiny_root, tmp_path, monkeypatch):
    """A failing writer (writes to /dev/full fail with ENOSPC) stands in for a full disk: the
    checkpoint's temp file is opened there (a link planted in the run dir would be refused)."""
    import builtins

    from vaelab.training import checkpoint

    def full_disk(file, mode="r", *args, **kwargs):
        return builtins.open("/dev/full" if str(file).endswith(".ckpt.tmp") else file, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", full_disk, raising=False)  # the module's own open()
    run = tmp_path / "run"
    line = one_error_line(train(tiny_root, run))
    assert "cannot write checkpoint" in line and "No space left on device" in line
    # nothing half-written left: no checkpoint file, and the failed temp file is gone
    assert not list((run / "checkpoints").glob("*.ckpt"))
    assert not (run / "checkpoints" / "best-epoch001.ckpt.tmp").exists()
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    assert not (run / "metrics.json").exists()


# ----------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def good_run(tiny_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("good") / "run"
    proc = train(tiny_root, run, "trainer.max_epochs=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


def test_ckpt_path_missing(tiny_root, tmp_path):
    line = one_error_line(train(tiny_root, tmp_path / "run", f"ckpt_path={tmp_path}/nope.ckpt"))
    assert f"ckpt_path={tmp_path}/nope.ckpt does not exist" in line


def test_ckpt_path_not_a_checkpoint(tiny_root, tmp_path):
    (tmp_path / "bad.ckpt").write_bytes(os.urandom(1000))
    line = one_error_line(train(tiny_root, tmp_path / "run", f"ckpt_path={tmp_path}/bad.ckpt"))
    assert "is not a readable checkpoint" in line


def test_ckpt_path_truncated(tiny_root, good_run, tmp_path):
    data = (good_run / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    line = one_error_line(train(tiny_root, tmp_path / "run", f"ckpt_path={tmp_path}/cut.ckpt"))
    assert "is not a readable checkpoint" in line


def test_ckpt_path_other_latent_dim(tiny_root, good_run, tmp_path):
    ckpt = good_run / "checkpoints" / "last.ckpt"
    line = one_error_line(train(tiny_root, tmp_path / "run", f"ckpt_path={ckpt}", "model.latent_dim=1"))
    assert "was trained with model.latent_dim=2, but this run has model.latent_dim=1" in line


# --------------------------------------------------------------- sweeps, W&B
def test_multirun_with_a_failing_job(tiny_root, tmp_path):
    sweep = tmp_path / "sw"
    proc = run_cli("vaelab.train", "-m", "model.latent_dim=1,0", f"data.root={tiny_root}", *TINY, f"hydra.sweep.dir={sweep}")
    assert proc.returncode != 0
    assert "error: 1 of 2 job(s) did not complete: 1 (see their status.json)" in proc.stderr
    assert json.loads((sweep / "0" / "metrics.json").read_text())["latent_dim"] == 1  # the other job ran
    failed = json.loads((sweep / "1" / "status.json").read_text())
    assert failed["status"] == "failed" and "model.latent_dim=0" in failed["error"]
    assert "1: FAILED" in proc.stdout
    # the failed job has a W&B run of its own, marked failed (exit code 1), in the sweep's group
    run_dir = next((sweep / "1" / "wandb").glob("offline-run-*"))
    exits = wandb_reader.exit_codes(wandb_reader.run_file(run_dir))
    assert exits == [1]
    assert wandb_reader.run_record(wandb_reader.run_file(run_dir)).run_group == "sw"


@pytest.mark.parametrize(
    "env",
    [
        {"WANDB_MODE": "online", "WANDB_API_KEY": ""},
        {"WANDB_MODE": "online", "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"},
    ],
    ids=["no-login", "no-network"],
)
def test_wandb_online_falls_back_to_offline(tiny_root, tmp_path, env):
    proc = train_in_process(f"data.root={tiny_root}", *TINY, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}", env={**env, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [ln for ln in proc.stderr.splitlines() if "W&B online mode asked" in ln]
    assert len(warnings) == 1 and "logging offline instead" in warnings[0]
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    assert wandb_reader.metric_series(wandb_reader.run_file(run_dir), "val/loss")


# ---------------------------------------------------------------- divergence
def test_divergence_stops_with_the_step_and_keeps_the_good_checkpoint(tiny_root, tmp_path):
    """Train one good epoch, then blow the learning rate up: the run stops naming the step, and
    last.ckpt still holds the good epoch's finite weights."""
    import pytorch_lightning as pl

    from vaelab.data.datamodule import MNISTDataModule
    from vaelab.training.checkpoint import AtomicCheckpointIO
    from vaelab.training.module import TrainingDiverged, VAEModule

    class BlowUp(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                for group in trainer.optimizers[0].param_groups:
                    group["lr"] = 1e30

    def make(max_epochs, callbacks=()):
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/loss", save_last=True)
        return pl.Trainer(
            max_epochs=max_epochs,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            callbacks=[ckpt, *callbacks],
            plugins=[AtomicCheckpointIO()],
            num_sanity_val_steps=0,
        )

    dm = MNISTDataModule(str(tiny_root), val_size=100, batch_size=50)
    module = VAEModule(latent_dim=2, hidden=[32])
    trainer = make(3, [BlowUp()])
    with pytest.raises(TrainingDiverged, match=r"not finite at step \d+ \(epoch 2\).*last.ckpt"):
        trainer.fit(module, datamodule=dm)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())
