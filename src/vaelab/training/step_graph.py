"""Training steps captured in a CUDA graph: the GPU path of ``model.cuda_graph``.

For a model this small, an eager GPU step is bound by Python and kernel launches (about 40 small
kernels per step; see docs/benchmarks.md, section 5). Capturing whole steps once and replaying them
removes that cost; the maths and the kernels are the same, so the numbers are too.

This module knows nothing of Lightning or of our module: it takes a step function
``(x, noise, step) -> mean loss`` and a torch optimiser.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# (images [b, 784], noise [b, d], step number as a 0-d tensor) -> the batch's mean loss
StepLoss = Callable[[Tensor, Tensor, Tensor], Tensor]


class StepGraph:
    """``k`` training steps (forward, loss, backward, optimiser step) captured in one CUDA graph, on
    static input buffers: a replay copies a call's batches and noise in, then runs all ``k`` steps
    with a single launch."""

    def __init__(self, step_loss: StepLoss, optimizer: torch.optim.Optimizer, latent_dim: int, shape: tuple[int, ...], device: torch.device) -> None:
        self.shape = shape
        k, b = shape[0], shape[1]
        self.x = torch.zeros(shape, device=device)
        self.noise = torch.zeros(k, b, latent_dim, device=device)
        self.step = torch.zeros((), dtype=torch.long, device=device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            for j in range(k):
                loss = step_loss(self.x[j], self.noise[j], self.step + j)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def replay(self, batches: list[tuple[Tensor, Tensor]], noise_gen: torch.Generator, global_step: int) -> None:
        """Train on ``batches``; the noise is drawn outside the graph in the eager order."""
        torch.stack([x for x, _ in batches], out=self.x)
        for j in range(self.shape[0]):
            torch.randn(self.noise.shape[1:], generator=noise_gen, device=self.noise.device, out=self.noise[j])
        self.step.fill_(global_step)
        self.graph.replay()


class GraphedSteps:
    """When to capture and replay: the first full call of a shape runs eagerly (the warm-up a
    capture needs), the second is captured, every later one of that shape is replayed. Calls of
    another shape (an epoch's short last call) run eagerly."""

    def __init__(self) -> None:
        self._graph: StepGraph | None = None
        self._warm: tuple[int, ...] | None = None

    def run(
        self,
        batches: list[tuple[Tensor, Tensor]],
        step_loss: StepLoss,
        optimizer: torch.optim.Optimizer,
        latent_dim: int,
        noise_gen: torch.Generator,
        global_step: int,
    ) -> bool:
        """Replay ``batches`` through the graph; False when the caller must step eagerly."""
        shape = (len(batches), *batches[0][0].shape)
        if any(x.shape != batches[0][0].shape for x, _ in batches):
            return False
        if self._graph is None or self._graph.shape != shape:
            if self._warm != shape:
                self._warm = shape
                return False
            self._graph = StepGraph(step_loss, optimizer, latent_dim, shape, batches[0][0].device)
        self._graph.replay(batches, noise_gen, global_step)
        return True
