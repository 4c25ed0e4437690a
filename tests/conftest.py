"""Shared fixtures: tiny MNIST-format idx files; the tasks called in process on a composed config;
helpers that run the real command line for its contract."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# The suite's two xdist workers share the cores, and each trains (in process, or in the commands it
# starts): one torch thread per process, as the joblib launcher gives parallel jobs. With torch's
# default (all cores each), OpenMP threads wait for busy cores and every step slows down several
# times (two tiny 10-epoch runs at once: 14-18 s with torch's default, 9 s with one thread each; the
# whole suite 405 s -> 326 s, measured at 3181e20). Set before numpy and torch are imported;
# a value the developer exported is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from vaelab.runs.layout import RESULT_KEYS  # noqa: E402

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


def model_outside(folder: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, model: str, yaml: str) -> Path:
    """A model outside the package, as docs/architecture.md tells a user to add one: ``folder`` holds
    ``<module>.py`` (``source``) and ``conf/model/<model>.yaml`` (``yaml``), and is put on ``sys.path``
    for the test (the module forgotten again afterwards). Returns ``folder``."""
    import textwrap

    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    (folder / "conf" / "model").mkdir(parents=True)
    (folder / "conf" / "model" / f"{model}.yaml").write_text(yaml)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return folder


# the numbers a run's metrics.json reports, without its wall time, paths and commit: RESULT_KEYS,
# one definition in the run-dir contract (vaelab.runs.layout)


def run_result(run: Path) -> dict:
    """The RESULT_KEYS of ``run``'s metrics.json: what two runs must share to count as the same."""
    metrics = json.loads((run / "metrics.json").read_text())
    return {k: metrics[k] for k in RESULT_KEYS}


# ------------------------------------------------------------------------------ in-process runs
# Tests of logic, numbers and files call the code in this process, as lightning-hydra-template does:
# the config is composed with hydra.compose, HydraConfig is set as Hydra's launcher sets it, and the
# Hydra task (vaelab.train.train_task, vaelab.evaluate.run) is called. Real processes are kept for the
# command-line contract: error lines and exit codes, signals, launchers, the wheel, SLURM, DDP.


def _override_value(overrides: Sequence[str], key: str) -> str | None:
    found = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key]
    return found[-1] if found else None


@contextlib.contextmanager
def composed(config_name: str, overrides: Sequence[str] = (), run_dir: Path | None = None) -> Iterator[DictConfig]:
    """The config ``python -m vaelab.<config_name> overrides`` composes, as its Hydra task gets it:
    ``HydraConfig`` set (single-run mode), ``hydra.runtime.output_dir`` (so ``paths.output_dir``) set to
    ``run_dir`` (default: ``hydra.run.dir=`` among the overrides), the ``hydra`` node removed.
    Hydra's global state is cleared on the way in and out."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from vaelab.config import resolvers
    from vaelab.paths import CONF_DIR

    resolvers.register()
    overrides = list(overrides)
    if run_dir is None and _override_value(overrides, "hydra.run.dir") is not None:
        run_dir = Path(str(_override_value(overrides, "hydra.run.dir")))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = str(Path(run_dir or cfg.hydra.run.dir).absolute())
        HydraConfig.instance().set_config(cfg)
        task = copy.deepcopy(cfg)
        with read_write(task), open_dict(task):
            del task["hydra"]
        yield task
    finally:
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()


@dataclasses.dataclass
class Ran:
    """What a task called in process gave: the exit code a process would have had (0, or the
    ``SystemExit`` code), its stdout and stderr, and the task's return value."""

    returncode: int
    stdout: str
    stderr: str
    value: Any = None


@contextlib.contextmanager
def _isolated(env: dict[str, str] | None) -> Iterator[None]:
    """``env`` (and W&B offline, quiet) set for the call only; torch's thread count, the working
    directory and the environment restored afterwards (WANDB_SERVICE too, which a W&B run started
    here sets: the commands a test starts later must not log through this process's W&B service)."""
    import torch

    threads, cwd = torch.get_num_threads(), os.getcwd()
    saved = {k: os.environ.get(k) for k in {"WANDB_MODE", "WANDB_SILENT", "WANDB_SERVICE", *(env or {})}}
    os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})})
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _call(fn: Callable[[], Any]) -> Ran:
    """``fn()`` with stdout and stderr captured; a ``SystemExit`` becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    code, value = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            value = fn()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue(), value)


def call_task(
    config_name: str, task: Callable[[DictConfig], Any], *overrides: str, run_dir: Path | None = None, env: dict[str, str] | None = None
) -> Ran:
    """Compose ``config_name`` with ``overrides``, call ``task(cfg)`` in this process and return what it
    printed and returned. ``env`` is set for the call only; torch's thread count, the working directory
    and Hydra's state are restored afterwards. Any exception other than ``SystemExit`` propagates, so
    an unexpected error fails the test with its traceback."""
    with _isolated(env), composed(config_name, overrides, run_dir) as cfg:
        return _call(lambda: task(cfg))


def train_in_process(*overrides: str, run_dir: Path | None = None, env: dict[str, str] | None = None) -> Ran:
    """``python -m vaelab.train overrides`` (a single run) in this process: the Hydra task
    :func:`vaelab.train.train_task` on the composed config. W&B runs are offline and finished by the
    task itself (``logger=none`` skips W&B altogether)."""
    from vaelab.train import train_task

    return call_task("train", train_task, *overrides, run_dir=run_dir, env=env)


def evaluate_in_process(*overrides: str, env: dict[str, str] | None = None) -> Ran:
    """``python -m vaelab.evaluate overrides`` in this process (its Hydra task, which writes eval.json,
    prints the result line and logs the W&B evaluation run)."""
    from vaelab.evaluate import run

    return call_task("evaluate", run, *overrides, env=env)


def report_in_process(*argv: str, env: dict[str, str] | None = None) -> Ran:
    """``python -m vaelab.report argv`` in this process (its ``main(argv)``)."""
    from vaelab.report.__main__ import main

    with _isolated(env):
        return _call(lambda: main(list(argv)))


# -------------------------------------------------------------------------------- real processes
def _own_environ() -> dict[str, str]:
    """This environment without WANDB_SERVICE: a W&B run made in this process starts a W&B service
    and names it there; a child that inherited it would log through this process's service (one
    service for the test and the command it runs, e.g. a killed run's id still in use there)."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


def _env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**_own_environ(), "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}


def run_cli(module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` in a new interpreter, like a user would; returns the finished process."""
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=cwd or REPO, env=_env(env), capture_output=True, text=True, timeout=timeout)


def run_script(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python <script> args...`` from the repo root like a user would; returns the finished process.
    ``env`` is the whole environment (default: this one)."""
    command = [sys.executable, str(script), *args]
    return subprocess.run(command, cwd=REPO, env=_own_environ() if env is None else dict(env), capture_output=True, text=True, timeout=timeout)


def spawn_until(args: list[str], path: Path, timeout: float = 180, **popen: Any) -> subprocess.Popen:
    """Start ``python -m vaelab.train args...`` like a user would and return once ``path`` exists
    (or the process ended, or ``timeout`` passed): the moment to kill or signal it mid-run.
    ``stdout=subprocess.PIPE`` keeps its output for ``communicate()``."""
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
