"""GPU-only checks (skipped with a reason on machines without CUDA, CI included): the CUDA-graph
training path gives the same numbers as the eager one and counts every optimiser step."""

from pathlib import Path

import pytest
import torch

from conftest import graph_and_eager, run_result

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA-graph path only runs on a GPU")


def test_cuda_graph_matches_eager_and_counts_steps(tiny_root, tmp_path):
    # 10 batches per epoch in calls of 3, 3, 3, 1: per epoch the graph replays 2-3 calls and the
    # short last call (and the first call, the capture's warm-up) runs eagerly
    proc = graph_and_eager(tiny_root, tmp_path, "seed=5", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert run_result(tmp_path / "1") == run_result(tmp_path / "0")  # graph == eager
    for job in ("0", "1"):
        ckpt = torch.load(Path(tmp_path / job / "checkpoints" / "last.ckpt"), map_location="cpu", weights_only=False)
        assert ckpt["global_step"] == 3 * 10  # every Adam step counted, replayed ones included
