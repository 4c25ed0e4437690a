"""GPU-only checks (skipped with a reason on machines without CUDA, CI included): the CUDA-graph
training path gives the same numbers as the eager one and counts every optimiser step."""

from pathlib import Path

import pytest
import torch

from conftest import TINY, graph_and_eager, run_cli, run_result

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA-graph path only runs on a GPU")


def test_cuda_graph_matches_eager_and_counts_steps(tiny_root, tmp_path):
    # 10 batches per epoch in calls of 3, 3, 3, 1: per epoch the graph replays 2-3 calls and the
    # short last call (and the first call, the capture's warm-up) runs eagerly
    proc = graph_and_eager(tiny_root, tmp_path, "seed=5", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert run_result(tmp_path / "1") == run_result(tmp_path / "0")  # graph == eager
    for job in ("0", "1"):
        ckpt = torch.load(Path(tmp_path / job / "checkpoints" / "last.ckpt"), map_location="cpu", weights_only=True)
        # every Adam step counted: Lightning's global_step counts the steps its optimizer wrapper
        # took, FastVAEModule's graph_steps (vaelab_graph_steps) the ones a graph replayed
        assert ckpt["global_step"] + ckpt.get("vaelab_graph_steps", 0) == 3 * 10


def test_with_a_schedule_the_speed_path_steps_eagerly_and_equals_the_plain_module(tiny_root, tmp_path):
    # a captured step keeps the learning rate it was captured with: under a scheduler no call is
    # replayed (model.cuda_graph=true runs as false), and both equal speed=plain on the GPU
    schedule = ("seed=5", "trainer.max_epochs=4", "model.lr=0.05", "model/scheduler=cosine", "model.scheduler.T_max=4")
    proc = graph_and_eager(tiny_root, tmp_path / "fast", *schedule)
    assert proc.returncode == 0, proc.stderr[-2000:]
    gpu = [a for a in TINY if not a.startswith("trainer.accelerator")] + ["trainer.accelerator=gpu"]
    plain = run_cli(
        "vaelab.train", f"data.root={tiny_root}", *gpu, "logger=none", "speed=plain", f"hydra.run.dir={tmp_path / 'plain' / '0'}", *schedule
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    rates = [row["train/lr"] for row in run_result(tmp_path / "fast" / "1")["history"]]
    assert rates[0] == 0.05 and rates[-1] < rates[0]
    assert run_result(tmp_path / "fast" / "1") == run_result(tmp_path / "fast" / "0") == run_result(tmp_path / "plain" / "0")
    ckpt = torch.load(tmp_path / "fast" / "1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["vaelab_graph_steps"] == 0 and ckpt["global_step"] == 4 * 10
