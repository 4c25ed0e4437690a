"""The opt-in speed path: several Adam steps per ``training_step`` call, and on a GPU, whole calls
replayed from one captured CUDA graph. Same batches, noise, maths and numbers as
:class:`~vaelab.training.module.VAEModule`; less fixed cost per step.

For a model this small a step is bound by fixed costs: Lightning's per-call bookkeeping on the CPU,
Python and ~40 kernel launches on a GPU (docs/benchmarks.md). Chosen by
``speed=fast`` (conf/speed/fast.yaml, the default: this class, ``data.steps_per_call`` batches per
call and ``model.cuda_graph``); ``speed=plain`` runs the plain module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from vaelab.training.module import VAEModule

# (images [b, 784], noise [b, d], step number as a 0-d tensor) -> the batch's mean loss
StepLoss = Callable[[Tensor, Tensor, Tensor], Tensor]


class FastVAEModule(VAEModule):
    """:class:`~vaelab.training.module.VAEModule` with manual optimisation: ``batch`` is one
    ``(images, indices)`` pair or a list of them (``data.steps_per_call``), and each batch gets
    one Adam step, the steps Lightning's automatic loop would take.

    Args:
        cuda_graph: on a CUDA device (one process), replay each full call from one captured CUDA
            graph; the optimiser state then lives on the device (``capturable``). Ignored on the CPU
            and under DDP (the graph would bypass DDP's gradient all-reduce), with a learning-rate
            scheduler (a captured step keeps the learning rate it was captured with, so the steps
            run eagerly) and with an optimiser that has no ``capturable`` mode. Not a
            hyper-parameter of the model: a checkpoint loads as a plain :class:`VAEModule`.
        model: the model's arguments, as :class:`~vaelab.training.module.VAEModule` takes them.
    """

    takes_batch_lists = True

    def __init__(self, cuda_graph: bool = True, **model: Any) -> None:
        super().__init__(**model)
        self.cuda_graph = bool(cuda_graph)
        # one optimiser step per batch inside training_step, which Lightning's automatic loop cannot do
        self.automatic_optimization = False
        self._graphs = GraphedSteps()
        # Adam steps replayed by the graph: Lightning counts only the steps its optimizer wrapper
        # takes, so trainer.global_step misses these; saved in checkpoints
        self.graph_steps = 0
        # What a captured CUDA graph reads and writes, so tensors updated in place (a graph replays
        # on the addresses it captured): this epoch's KL warm-up weight (VAEModule.epoch_kl_weight as
        # a tensor), and this epoch's training-loss sum on this rank: each batch's sum (float32)
        # added into a float64 total, as VAEModule's torchmetrics mean adds them (the same train/loss
        # to the bit: tests/test_speed.py). Not that MeanMetric: its update is Python-side state a
        # graph cannot capture (and costs ~0.1 ms per step on the CPU)
        self.register_buffer("_graph_kl_weight", torch.tensor(1.0), persistent=False)
        self._graph_loss_sum: Tensor | None = None
        # images in this epoch's sum (counted outside the graph); None: no step since it was reported
        self._graph_loss_count: int | None = None

    @property
    def optimizer_steps(self) -> int:
        """Adam steps taken so far in this run (what a non-finite loss's message names)."""
        return self.trainer.global_step + self.graph_steps

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._graph_kl_weight.fill_(self.epoch_kl_weight)
        if self._graph_loss_sum is None:
            self._graph_loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._graph_loss_sum.zero_()
        self._graph_loss_count = 0

    def step_loss(self, x: Tensor, noise: Tensor, step: int | Tensor) -> Tensor:
        """The mean training loss of one batch; adds its per-image values to the epoch's sum and
        records ``step`` if the loss is not finite (no host sync: it also runs inside a CUDA graph)."""
        losses = self.training_losses(x, noise, self._graph_kl_weight)
        self._graph_loss_sum.add_(losses.detach().sum())
        loss = losses.mean()
        self.note_nonfinite(loss, step)
        return loss

    def _train_loss(self) -> dict[str, float]:
        if self._graph_loss_count is None:
            return {}
        count = torch.tensor(float(self._graph_loss_count), dtype=torch.float64, device=self.device)
        total = self.trainer.strategy.reduce(torch.stack([self._graph_loss_sum, count]), reduce_op="sum")
        self._graph_loss_count = None
        return {"train/loss": float(total[0] / total[1])} if total[1] > 0 else {}

    def _capturable(self) -> bool:
        """Whether steps may be captured in a CUDA graph: the setting, a CUDA device, a constant
        learning rate and an optimiser with a ``capturable`` mode."""
        takes = "capturable" in inspect.signature(self.optimizer_factory).parameters
        return self.cuda_graph and self.device.type == "cuda" and self.scheduler_factory is None and takes

    def _graphs_on(self) -> bool:
        return self._capturable() and self.trainer.world_size == 1

    def training_step(self, batch: tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        batches = batch if isinstance(batch, list) else [batch]
        opt = self.optimizers()
        # the torch optimiser itself for the graph: Lightning's wrapper is Python-side
        if self._graphs_on() and self._graphs.run(batches, self.step_loss, opt.optimizer, self.vae.latent_dim, self._noise_gen, self.optimizer_steps):
            self._graph_loss_count += len(batches) * batches[0][0].shape[0]
            self.graph_steps += len(batches)
            return
        for x, _ in batches:
            loss = self.step_loss(x, self.draw_noise(x), self.optimizer_steps)
            self._graph_loss_count += x.shape[0]
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt.step()

    def build_optimizer(self, params: Iterable[Tensor], **extra: Any) -> torch.optim.Optimizer:
        return super().build_optimizer(params, **extra, **({"capturable": True} if self._capturable() else {}))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["vaelab_graph_steps"] = self.graph_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.graph_steps = int(checkpoint.get("vaelab_graph_steps", 0))


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

    def replay(self, batches: list[tuple[Tensor, Tensor]], noise_gen: torch.Generator, first_step: int) -> None:
        """Train on ``batches``; the noise is drawn outside the graph in the eager order."""
        torch.stack([x for x, _ in batches], out=self.x)
        for j in range(self.shape[0]):
            torch.randn(self.noise.shape[1:], generator=noise_gen, device=self.noise.device, out=self.noise[j])
        self.step.fill_(first_step)
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
        first_step: int,
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
        self._graph.replay(batches, noise_gen, first_step)
        return True
