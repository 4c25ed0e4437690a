"""Shared fixtures: tiny MNIST-format idx files, and a helper that runs the real CLI."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vaelab.runs.layout import RESULT_KEYS

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("VAELAB_DATA_ROOT", REPO / "data"))


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """Write an idx file (big-endian header: magic, dims; then uint8 items), as MNIST ships them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack(">i", magic))
        for d in array.shape:
            f.write(struct.pack(">i", d))
        f.write(array.astype(np.uint8).tobytes())


def make_tiny_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Write MNIST/raw/ with ``n_train``/``n_test`` synthetic 28x28 digit-like images.

    Each class is a blurred stroke pattern plus noise, so a VAE has structure to learn.
    """
    rng = np.random.default_rng(seed)
    protos = np.zeros((10, 28, 28))
    for k in range(10):
        r0, c0 = 4 + (k % 5) * 4, 4 + (k // 5) * 10
        protos[k, r0 : r0 + 6, c0 : c0 + 12] = 1.0
        protos[k, 6:22, 13 + (k % 3) - 1] = 0.8

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, n)
        x = protos[labels] + 0.15 * rng.standard_normal((n, 28, 28))
        return np.clip(x * 255, 0, 255).astype(np.uint8), labels.astype(np.uint8)

    raw = root / "MNIST" / "raw"
    for split, n in (("train", n_train), ("t10k", n_test)):
        x, y = images(n)
        write_idx(raw / f"{split}-images-idx3-ubyte", x, 2051)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y, 2049)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with tiny idx files (600 train, 200 test)."""
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


# overrides that make a training run take a couple of seconds on tiny data
TINY = [
    "print_config=false",
    "data.val_size=100",
    "data.batch_size=50",
    "data.eval_batch_size=100",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "model.hidden=[32]",
]

# the numbers a run's metrics.json reports, without its wall time, paths and commit: RESULT_KEYS,
# one definition in the run-dir contract (vaelab.runs.layout)


def run_result(run: Path) -> dict:
    """The RESULT_KEYS of ``run``'s metrics.json: what two runs must share to count as the same."""
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: metrics[k] for k in RESULT_KEYS}


# CLI runs are forked from a server that has imported torch, Lightning and Hydra once (forkserver.py:
# the same `python -m` code path, minus ~9 s of imports per run); VAELAB_TEST_FORK=0 starts real processes
FORK = os.environ.get("VAELAB_TEST_FORK", "1") != "0"
_server = None


def _fork_server():
    global _server
    if _server is None:
        import atexit
        import tempfile

        from forkserver import ForkServer

        _server = ForkServer(Path(tempfile.mkdtemp(prefix="vaelab-fork-")))
        atexit.register(_server.close)
    return _server


def _env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}


def _run_to_end(
    module: str | None, script: Path | None, args: tuple[str, ...], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess:
    """``python -m module args`` (or ``python script args``) to its end, forked or as a real process."""
    if not FORK:
        command = [str(script)] if script else ["-m", str(module)]
        return subprocess.run([sys.executable, *command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    run = _fork_server().start(module, list(args), env, cwd, capture=True, script=script)
    try:
        out, err = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        raise
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


def run_cli(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` like a user would; returns the finished process."""
    return _run_to_end(module, None, args, _env(env), cwd or REPO, timeout)


def run_script(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python <script> args...`` from the repo root like a user would; returns the finished process.
    ``env`` is the whole environment (default: this one)."""
    return _run_to_end(None, script, args, dict(os.environ if env is None else env), REPO, timeout)


def spawn_until(args: list[str], path: Path, timeout: float = 180, **popen: object):
    """Start ``python -m vaelab.train args...`` like a user would and return once ``path`` exists
    (or the process ended, or ``timeout`` passed): the moment to kill or signal it mid-run.
    ``stdout=subprocess.PIPE`` keeps its output for ``communicate()``."""
    import time

    if FORK:
        child = _fork_server().start("vaelab.train", list(args), _env(), REPO, capture=popen.get("stdout") == subprocess.PIPE)
    else:
        popen = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
        child = subprocess.Popen([sys.executable, "-m", "vaelab.train", *args], cwd=REPO, env=_env(), **popen)
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    return child


def graph_and_eager(tiny_root: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    """One multirun on the GPU of the same run with ``model.cuda_graph=false`` (job 0, eager) and
    ``true`` (job 1, CUDA graph), 3 batches per training_step call, into ``out``; ``overrides`` come last, so they win."""
    tiny_gpu = [a for a in TINY if not a.startswith("trainer.accelerator")] + ["trainer.accelerator=gpu"]
    return run_cli(
        "vaelab.train", "-m", "data.steps_per_call=3", "model.cuda_graph=false,true",
        f"data.root={tiny_root}", *tiny_gpu, "logger=none", f"hydra.sweep.dir={out}", *overrides,
    )  # fmt: skip
