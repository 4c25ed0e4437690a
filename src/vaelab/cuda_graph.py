"""Training steps captured in a CUDA graph: the GPU path of ``model.cuda_graph``.

For a model this small, an eager GPU step is bound by Python and kernel launches (about 40 small
kernels per step; see docs/benchmarks.md, section 5). Capturing whole steps once and replaying them
removes that cost; the maths and the kernels are the same, so the numbers are too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from vaelab.module import VAEModule


class StepGraph:
    """``k`` training steps (forward, loss, backward, Adam) of a :class:`VAEModule` captured in one
    CUDA graph, on static input buffers: a replay copies a call's batches and noise in, then runs
    all ``k`` steps with a single launch."""

    def __init__(self, module: VAEModule, shape: tuple[int, ...]) -> None:
        self.shape = shape
        k, b = shape[0], shape[1]
        dev = module.device
        self.x = torch.zeros(shape, device=dev)
        self.noise = torch.zeros(k, b, module.vae.latent_dim, device=dev)
        self.step = torch.zeros((), dtype=torch.long, device=dev)
        opt = module.optimizers().optimizer  # the torch optimiser: Lightning's wrapper is Python-side
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            for j in range(k):
                loss = module.step_loss(self.x[j], self.noise[j], self.step + j)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def replay(self, batches: list[tuple[Tensor, Tensor]], noise_gen: torch.Generator, global_step: int) -> None:
        """Train on ``batches``; the noise is drawn outside the graph in the eager order."""
        torch.stack([x for x, _ in batches], out=self.x)
        for j in range(self.shape[0]):
            torch.randn(self.noise.shape[1:], generator=noise_gen, device=self.noise.device, out=self.noise[j])
        self.step.fill_(global_step)
        self.graph.replay()
