"""Does torch.compile make the training step itself faster on this CPU? A speed probe, not a test.

Times the report's model (784-400-2-400-784, eq. 3 penalty, BCE, fused Adam, batch 128) in a plain
loop, eager against ``torch.compile`` of the forward pass and loss, alternating over rounds, on
random images of MNIST's shape (only speed is measured). It prints the compile time and images/s.

Why: the real path is already within a few percent of the plain eager loop (scripts/benchmark.py),
so beating the torchvision DataLoader loop by more than the plain loop does needs a faster step.

Usage: ``python scripts/compile_probe.py [--rounds 3] [--steps 300]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vaelab.vae.loss import vae_loss  # noqa: E402
from vaelab.vae.model import VAE  # noqa: E402


def step_loss(model: VAE, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    logits, mean, log_scale, _ = model(x, noise)
    return vae_loss(logits, x, mean, log_scale, kl="paper", recon="bce").loss.mean()


def images_per_second(loss_fn, images: torch.Tensor, steps: int, warmup: int = 20) -> float:
    torch.manual_seed(0)
    model = VAE(2, [400], 10.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(1)
    t0 = 0.0
    for i in range(steps + warmup):
        if i == warmup:
            t0 = time.perf_counter()
        start = (i * 128) % (images.shape[0] - 128)
        loss = loss_fn(model, images[start : start + 128], torch.randn(128, 2, generator=gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * 128 / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    images = torch.rand(50000, 784, generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(step_loss)
    t0 = time.perf_counter()
    images_per_second(compiled, images, steps=5, warmup=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; compile + first steps {time.perf_counter() - t0:.1f} s")
    for r in range(args.rounds):
        eager = images_per_second(step_loss, images, args.steps)
        comp = images_per_second(compiled, images, args.steps)
        print(f"round {r + 1}: eager {eager:.0f} img/s, compiled {comp:.0f} img/s, compiled/eager {comp / eager:.3f}", flush=True)


if __name__ == "__main__":
    main()
