"""Benchmark: vaelab's real training path against a plain PyTorch loop, and the data paths.

Prints measured figures only (nothing is asserted); see docs/benchmarks.md for recorded runs.

In one process, after a warm-up, it alternates over ``--rounds`` rounds:

A. vaelab's real training path: the Hydra-composed ``experiment=paper`` config (model, data module
   fast path, callbacks, ``pl.Trainer`` settings of the experiments), ``trainer.fit`` for ``--steps``
   training steps; steps are timed from inside the loop (batch start to batch start), so the
   Trainer's one-off start-up is not counted but all of its per-step work is;
B. a plain PyTorch loop written here: same VAE shape, ``vaelab.vae.loss.vae_loss``, batch size, fused
   Adam, the same tensor batches and the same seeded training noise; no Lightning;
C. the pytorch/examples VAE loop: ``torchvision.datasets.MNIST`` + ``ToTensor`` + ``DataLoader``
   (shuffle, batch 128), default Adam, ``loss.item()`` every step, same model shape;

and a large fp32 matrix multiply (the machine's measured peak). It then prints images/s per path,
the ratios A/B and A/C (median and range over rounds), the achieved GFLOP/s of A (forward+backward
FLOPs per image counted by ``torch.utils.flop_counter``) against the matmul peak, the data paths
alone (fast path vs DataLoader, no model), the wall time of full epochs of the real path (50,000
training images plus 10,000 validation images, checkpointing included) and the peak memory.

Usage: ``python bench/benchmark.py [--device cuda] [--speed plain] [--eager] [--steps-per-call K] [--rounds 5] [--steps 150]``
(``make benchmark``). Real MNIST is read from ``VAELAB_DATA_ROOT`` when it holds MNIST/raw/, else
synthetic images of the same sizes are used and the output says so.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import resource
import statistics
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

import pytorch_lightning as pl  # noqa: E402

from vaelab.data.datamodule import TensorBatches, epoch_generator  # noqa: E402
from vaelab.data.idx_files import MNIST_FILES  # noqa: E402
from vaelab.paths import CONF_DIR  # noqa: E402
from vaelab.training.runtime import configure_torch  # noqa: E402
from vaelab.vae.loss import vae_loss  # noqa: E402
from vaelab.vae.model import VAE  # noqa: E402


# ------------------------------------------------------------------ data
def write_synthetic_mnist(root: Path, n_train: int = 59999, n_test: int = 9999, seed: int = 0) -> None:
    """MNIST-format idx files of random digit-sized images (one fewer than the official counts,
    so the MD5 check for official files does not apply); only speed is measured on them."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, magic, shape in (("images-idx3", 2051, (n, 28, 28)), ("labels-idx1", 2049, (n,))):
            arr = rng.integers(0, 256 if kind.startswith("images") else 10, shape, dtype=np.uint8)
            with (raw / f"{split}-{kind}-ubyte").open("wb") as f:
                f.write(struct.pack(">i", magic))
                for d in shape:
                    f.write(struct.pack(">i", d))
                f.write(arr.tobytes())


def data_root(tmp: Path) -> tuple[Path, bool]:
    """(root holding MNIST/raw, whether it is the real MNIST)."""
    env = os.environ.get("VAELAB_DATA_ROOT")
    if env and all((Path(env) / "MNIST" / "raw" / name).is_file() for name in MNIST_FILES):
        return Path(env), True
    root = tmp / "synthetic"
    write_synthetic_mnist(root)
    return root, False


# ------------------------------------------------------------ config
def compose_experiment(root: Path, real: bool, device: str, out_dir: Path, args: argparse.Namespace):
    """The experiments' own config (``experiment=paper``), as ``python -m vaelab.train`` composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from vaelab.config.resolvers import register

    register()  # the vaelab.* resolvers of the YAML files

    overrides = [
        "experiment=paper",
        "logger=none",
        f"data.root={root}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        f"model.latent_dim={args.latent_dim}",
        f"data.batch_size={args.batch_size}",
        f"hydra.run.dir={out_dir}",
    ]
    overrides.append(f"speed={args.speed}")
    if args.eager:
        overrides.append("model.cuda_graph=false")
    if args.steps_per_call is not None:
        overrides.append(f"data.steps_per_call={args.steps_per_call}")
    if not real:
        overrides.append("data.val_size=9999")  # 59,999 synthetic images -> 50,000 train
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def instantiate_path(cfg, datamodule=None, **trainer_overrides):
    """Model, data module and Trainer exactly as vaelab.train.train builds them (a data module
    passed in is reused: its decoded splits stay, as in one training run)."""
    import hydra

    if datamodule is None:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    from pytorch_lightning.callbacks import ProgressBar

    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if not cfg.trainer.get("enable_progress_bar"):  # as vaelab.train: Lightning refuses a bar callback with the bar off
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    extra = trainer_overrides.pop("callbacks", [])
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks + extra, logger=False, **trainer_overrides)
    return module, datamodule, trainer


# ---------------------------------------------------------------- timing
class StepClock(pl.Callback):
    """Time stamps at the start of every ``training_step`` call (synchronised on CUDA at the ends),
    with the images each call trains on (a call holds ``data.steps_per_call`` batches)."""

    def __init__(self, skip: int, device: str) -> None:
        self.skip = skip
        self.device = device
        self.stamps: list[float] = []
        self.images: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx >= self.skip:
            if self.device == "cuda" and (batch_idx == self.skip or batch_idx == trainer.num_training_batches - 1):
                torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())
            self.images.append(sum(x.shape[0] for x, _ in (batch if isinstance(batch, list) else [batch])))

    def rate(self) -> float:
        """Images per second between the first and the last stamped call start."""
        return sum(self.images[:-1]) / (self.stamps[-1] - self.stamps[0])


class EpochClock(pl.Callback):
    """Wall time of each training epoch, its validation and checkpointing included."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.times.append(time.perf_counter() - self._t)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_a(cfg, datamodule, steps: int, skip: int, device: str) -> float:
    """The real path: a fresh model and Trainer fit for about ``steps + skip`` optimiser steps
    (whole ``training_step`` calls of ``data.steps_per_call`` steps each), no validation."""
    per_call = int(cfg.data.steps_per_call)
    skip_calls = -(-skip // per_call)
    clock = StepClock(skip_calls, device)
    module, datamodule, trainer = instantiate_path(
        cfg,
        datamodule,
        max_epochs=1,
        limit_train_batches=skip_calls + -(-steps // per_call) + 1,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(module, datamodule=datamodule)
    return clock.rate()


def run_b(images: torch.Tensor, order: torch.Tensor, cfg, skip: int, device: str) -> float:
    """The plain loop: same model shape, loss, optimiser and noise stream; its batches are gathered
    from the same preloaded tensor in the same order as A's (``order``: image indices); no Lightning."""
    m = cfg.model
    bs = int(cfg.data.batch_size)
    torch.manual_seed(int(cfg.seed))
    vae = VAE(int(m.latent_dim), list(m.hidden), float(m.log_scale_max)).to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=float(m.lr), fused=bool(m.fused) or None)
    gen = epoch_generator(int(cfg.seed), 0, 1000, device)
    steps = order.shape[0] // bs
    t0 = 0.0
    for i in range(steps):
        if i == skip:
            sync(device)
            t0 = time.perf_counter()
        x = images.index_select(0, order[i * bs : (i + 1) * bs])
        noise = torch.randn(x.shape[0], vae.latent_dim, generator=gen, device=x.device)
        logits, mean, log_scale, _ = vae(x, noise)
        loss = vae_loss(logits, x, mean, log_scale, kl=m.kl, recon=m.recon, beta=float(m.beta)).loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return (steps - skip) * bs / (time.perf_counter() - t0)


def run_d(images: torch.Tensor, order: torch.Tensor, cfg, skip: int, steps_per_graph: int = 1) -> float:
    """CUDA only: the plain loop B with ``steps_per_graph`` whole training steps (batch gather,
    forward, backward, fused Adam) captured in one CUDA graph and replayed. It removes Python and
    kernel-launch cost, so ``D/B`` measures how much of B's step time those cost (what limits the
    GPU for this small model). The noise comes from the default CUDA generator inside the graph,
    so its numbers differ from B's; only speed is measured."""
    m = cfg.model
    bs = int(cfg.data.batch_size)
    torch.manual_seed(int(cfg.seed))
    vae = VAE(int(m.latent_dim), list(m.hidden), float(m.log_scale_max)).cuda()
    opt = torch.optim.Adam(vae.parameters(), lr=float(m.lr), fused=True, capturable=True)
    k = steps_per_graph
    idx = torch.zeros(k, bs, dtype=torch.long, device="cuda")
    idx.copy_(order[: k * bs].view(k, bs))

    def steps() -> None:
        for j in range(k):
            x = images.index_select(0, idx[j])
            logits, mean, log_scale, _ = vae(x)
            loss = vae_loss(logits, x, mean, log_scale, kl=m.kl, recon=m.recon, beta=float(m.beta)).loss.mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph (allocates grads and Adam state)
        for _ in range(3):
            steps()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        steps()
    n_replays = order.shape[0] // (bs * k)
    t0 = 0.0
    for i in range(n_replays):
        if i == max(1, skip // k):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        idx.copy_(order[i * k * bs : (i + 1) * k * bs].view(k, bs), non_blocking=True)
        graph.replay()
    torch.cuda.synchronize()
    return (n_replays - max(1, skip // k)) * k * bs / (time.perf_counter() - t0)


def torchvision_loader(root: Path, train_idx: torch.Tensor, batch_size: int, device: str):
    """pytorch/examples' VAE data path: torchvision MNIST + ToTensor + DataLoader (shuffled)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    kwargs = {"num_workers": 1, "pin_memory": True} if device == "cuda" else {}
    return DataLoader(Subset(ds, train_idx.tolist()), batch_size=batch_size, shuffle=True, **kwargs)


def run_c(loader, cfg, steps: int, skip: int, device: str) -> float:
    """pytorch/examples' training loop on the DataLoader path (default Adam, ``.item()`` per step)."""
    m = cfg.model
    vae = VAE(int(m.latent_dim), list(m.hidden), float(m.log_scale_max)).to(device)
    opt = torch.optim.Adam(vae.parameters(), lr=float(m.lr))
    train_loss = 0.0
    t0 = 0.0
    for i, (data, _) in enumerate(loader):
        if i == skip:
            sync(device)
            t0 = time.perf_counter()
        if i == steps + skip:
            break
        data = data.to(device)
        opt.zero_grad()
        logits, mean, log_scale, _ = vae(data)
        loss = vae_loss(logits, data.flatten(1), mean, log_scale, kl=m.kl, recon=m.recon, beta=float(m.beta)).loss.sum()
        loss.backward()
        train_loss += loss.item()
        opt.step()
    sync(device)
    return steps * int(cfg.data.batch_size) / (time.perf_counter() - t0)


def data_only_rates(datamodule, loader, steps: int, device: str) -> tuple[float, float]:
    """Images/s of the two data paths alone (no model): fast tensor batches vs the DataLoader."""
    tb = TensorBatches(datamodule.splits["train"], datamodule.batch_size, shuffle=True, seed=0)
    t0 = time.perf_counter()
    n = 0
    for i, (x, _) in enumerate(tb):
        n += x.shape[0]
        if i + 1 == steps:
            break
    sync(device)
    fast = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    for i, (x, _) in enumerate(loader):
        x = x.to(device)
        n += x.shape[0]
        if i + 1 == steps:
            break
    sync(device)
    return fast, n / (time.perf_counter() - t0)


def matmul_peak(device: str, n: int = 2048, reps: int = 5) -> float:
    """Best fp32 GFLOP/s of an ``n x n`` by ``n x n`` matrix multiply on this device."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def train_flops_per_image(cfg, device: str) -> tuple[float, float]:
    """(forward+backward FLOPs, forward FLOPs) per image of one training step, counted by
    torch.utils.flop_counter (matrix multiplies; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = cfg.model
    bs = int(cfg.data.batch_size)
    vae = VAE(int(m.latent_dim), list(m.hidden), float(m.log_scale_max)).to(device)
    x = torch.rand(bs, 784, device=device)
    noise = torch.randn(bs, vae.latent_dim, device=device)
    with FlopCounterMode(display=False) as fwd:
        logits, mean, log_scale, _ = vae(x, noise)
        loss = vae_loss(logits, x, mean, log_scale, kl=m.kl, recon=m.recon).loss.mean()
    forward = fwd.get_total_flops()
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return (forward + bwd.get_total_flops()) / bs, forward / bs


def peak_memory(device: str) -> str:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    text = f"peak RSS of this process {rss_mb:.0f} MiB"
    if device == "cuda":
        text += f"; CUDA max allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    return text


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"median {fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


# ------------------------------------------------------------------ main
def reproduction_floor(runs_csv: Path, flops: float, fwd_flops: float, n_train: int, n_val: int, peak: float) -> str:
    """The least time the committed reproduction's training could take on this machine: all its
    run-epochs (``runs.csv``; each trains on ``n_train`` images and validates on ``n_val``) at the
    fp32 matmul peak, i.e. with no time outside the matrix multiplies. Wall times of the
    reproduction measured on another day scale by this figure; evaluation and start-up come on top.
    The FLOPs are the benchmark's latent dim's (2); d=1's network has 0.2% fewer."""
    if not runs_csv.is_file():
        return f"no {runs_csv.relative_to(REPO)} to count the reproduction's epochs from"
    with runs_csv.open() as f:
        epochs = sum(int(r["epochs"]) for r in csv.DictReader(f) if r.get("epochs"))
    tflop = epochs * (n_train * flops + n_val * fwd_flops) / 1e12
    return (
        f"{epochs} run-epochs in {runs_csv.relative_to(REPO)}, {tflop:.0f} TFLOP of training and validation: "
        f"{tflop * 1e3 / peak / 60:.1f} min at this matmul peak ({peak:.0f} GFLOP/s), the floor of its training time here"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--rounds", type=int, default=5, help="A/B/C rounds after the warm-up")
    p.add_argument("--steps", type=int, default=150, help="timed training steps per path and round")
    p.add_argument("--skip", type=int, default=10, help="untimed steps at the start of each round")
    p.add_argument("--c-steps", type=int, default=60, help="timed steps of the DataLoader path per round (0: skip it)")
    p.add_argument("--epochs", type=int, default=2, help="full epochs timed at the end (real path; 0: skip)")
    p.add_argument("--graph-steps", type=int, default=8, help="CUDA only: training steps per CUDA-graph replay of path D (0: skip D)")
    p.add_argument(
        "--steps-per-call",
        type=int,
        default=None,
        help="path A: training batches per Lightning training_step call (default: the config's data.steps_per_call)",
    )
    p.add_argument(
        "--speed",
        choices=("fast", "plain"),
        default="fast",
        help="path A's module: the speed path (default) or the plain LightningModule (speed=plain)",
    )
    p.add_argument("--eager", action="store_true", help="path A with model.cuda_graph=false (on CUDA: no graph replay of training_step calls)")
    p.add_argument("--latent-dim", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    args = p.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is false")
    configure_torch(args.threads)  # as vaelab.train does with the config's `threads`
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    tmp = Path(tempfile.mkdtemp(prefix="vaelab_bench_"))
    root, real = data_root(tmp)
    from vaelab.runs.provenance import git_commit, git_dirty, machine

    print(f"vaelab benchmark  commit {git_commit()}{' (dirty)' if git_dirty() else ''}  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {machine()}")
    print(
        f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"data: {'real MNIST at ' + str(root) if real else 'SYNTHETIC images (VAELAB_DATA_ROOT has no MNIST/raw): speed only'}")

    cfg = compose_experiment(root, real, args.device, tmp / "run", args)
    print(
        f"config: experiment=paper latent_dim={cfg.model.latent_dim} hidden={list(cfg.model.hidden)} "
        f"batch {cfg.data.batch_size} steps_per_call={cfg.data.steps_per_call} module={cfg.model._target_.rpartition('.')[2]} cuda_graph={cfg.model.get('cuda_graph')} fused={cfg.model.fused} "
        f"deterministic={cfg.trainer.deterministic}"
    )

    # shared inputs: the fast path's tensors (for B) and the DataLoader (for C)
    _, datamodule, trainer = instantiate_path(cfg, max_epochs=1)
    datamodule.trainer = trainer
    datamodule.setup("fit")
    n_batches = args.steps + args.skip
    train_images = datamodule.splits["train"]
    order = TensorBatches(train_images, int(cfg.data.batch_size), shuffle=True, seed=int(cfg.seed))._order(0)
    order = order[: n_batches * int(cfg.data.batch_size)]
    n = 60000 if real else 59999
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(cfg.data.split_seed)))
    loader = torchvision_loader(root, perm[int(cfg.data.val_size) :], int(cfg.data.batch_size), args.device)

    flops, fwd_flops = train_flops_per_image(cfg, args.device)
    print(
        f"FLOPs per image: forward {fwd_flops / 1e6:.3f} M, forward+backward {flops / 1e6:.3f} M "
        f"({flops / fwd_flops:.2f}x forward; the input layer needs no input gradient)"
    )

    print("warm-up ...", flush=True)
    run_a(cfg, datamodule, 30, 5, args.device)
    run_b(train_images, order[: 40 * int(cfg.data.batch_size)], cfg, 5, args.device)
    if args.c_steps:
        run_c(loader, cfg, 10, 2, args.device)
    matmul_peak(args.device)

    graphs = args.device == "cuda" and args.graph_steps > 0
    if graphs:
        run_d(train_images, order, cfg, args.skip, args.graph_steps)
    a_rates, b_rates, c_rates, peaks, d_rates = [], [], [], [], []
    print(f"{'round':>5} {'A real img/s':>13} {'B plain img/s':>14} {'C torchvision img/s':>20} {'A/B':>6} {'A/C':>6} {'matmul GFLOP/s':>15}")
    for r in range(args.rounds):
        a = run_a(cfg, datamodule, args.steps, args.skip, args.device)
        b = run_b(train_images, order, cfg, args.skip, args.device)
        c = run_c(loader, cfg, args.c_steps, 2, args.device) if args.c_steps else float("nan")
        pk = matmul_peak(args.device)
        if graphs:
            d_rates.append(run_d(train_images, order, cfg, args.skip, args.graph_steps))
        a_rates.append(a)
        b_rates.append(b)
        c_rates.append(c)
        peaks.append(pk)
        print(f"{r + 1:>5} {a:>13.0f} {b:>14.0f} {c:>20.0f} {a / b:>6.3f} {a / c:>6.2f} {pk:>15.1f}", flush=True)

    ab = [a / b for a, b in zip(a_rates, b_rates)]
    ac = [a / c for a, c in zip(a_rates, c_rates)]
    frac = [a * flops / 1e9 / pk for a, pk in zip(a_rates, peaks)]
    print()
    print(f"A real path          img/s {spread(a_rates)}")
    print(f"B plain loop         img/s {spread(b_rates)}")
    print(f"C torchvision loop   img/s {spread(c_rates)}")
    print(f"A/B                  {spread(ab, '{:.3f}')}")
    print(f"A/C                  {spread(ac, '{:.2f}')}")
    print(f"A achieved GFLOP/s   {spread([a * flops / 1e9 for a in a_rates], '{:.1f}')}")
    print(f"matmul peak GFLOP/s  {spread(peaks, '{:.1f}')}  (fp32 2048x2048x2048)")
    print(f"A / peak             {spread(frac, '{:.1%}')}")

    if graphs:
        print(
            f"D graph-captured B   img/s {spread(d_rates)}   ({args.graph_steps} steps per CUDA graph replay; "
            f"D/B {spread([d / b for d, b in zip(d_rates, b_rates)], '{:.2f}')}: the share of B's step time "
            "that is Python and kernel launches)"
        )
    n_train, n_val = datamodule.splits["train"].shape[0], datamodule.splits["val"].shape[0]
    print(f"reproduction floor   {reproduction_floor(REPO / 'results' / 'runs.csv', flops, fwd_flops, n_train, n_val, statistics.median(peaks))}")
    fast, dl = data_only_rates(datamodule, loader, 100, args.device)
    print(f"data paths alone     fast tensor batches {fast:.0f} img/s, torchvision DataLoader {dl:.0f} img/s ({fast / dl:.0f}x)")

    if args.epochs <= 0:
        print(f"memory               {peak_memory(args.device)}")
        return
    clock = EpochClock()
    module, dm, trainer = instantiate_path(cfg, datamodule, max_epochs=args.epochs, callbacks=[clock])
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    sync(args.device)
    fit_s = time.perf_counter() - t0
    n_train, n_val = dm.splits["train"].shape[0], dm.splits["val"].shape[0]
    print(
        f"epoch wall time      {', '.join(f'{t:.2f} s' for t in clock.times)} per epoch "
        f"({n_train} train + {n_val} val images, checkpoint and callbacks included); "
        f"whole fit of {args.epochs} epochs incl. start-up {fit_s:.2f} s"
    )
    print(
        f"memory               {peak_memory(args.device)}; the data module's decoded splits hold "
        f"{sum(t.numel() * t.element_size() for t in dm.splits.values()) / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
