"""Training on the real MNIST files (skipped with a reason when they are absent)."""

import json
import os
from pathlib import Path

import pytest

from conftest import train_in_process

ROOT = os.environ.get("VAELAB_DATA_ROOT")
RAW = Path(ROOT or "/nonexistent") / "MNIST" / "raw"
pytestmark = pytest.mark.skipif(
    not (RAW / "train-images-idx3-ubyte").is_file(),
    reason=f"real MNIST not found: set VAELAB_DATA_ROOT to a folder with MNIST/raw/ (looked in {RAW})",
)


def test_val_loss_falls_on_real_mnist(tmp_path):
    proc = train_in_process(
        "trainer.accelerator=cpu",
        "trainer.max_epochs=3",
        "+trainer.limit_train_batches=60",
        "data.steps_per_call=1",
        "logger=none",
        "callbacks.images.every_n_epochs=0",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    losses = [row["val/loss"] for row in metrics["history"]]
    # nats per image on the 10,000 held-out images: an untrained decoder is at ~543 (784 log 2),
    # one epoch of 60 steps is well below that, and training keeps lowering it
    assert len(losses) == 3
    assert losses[0] < 300 and losses[2] < losses[0] - 15, losses
    assert metrics["test_loss"] < losses[0]
