"""MNIST and Fashion-MNIST (``data.dataset``) as one LightningDataModule with a fast, seeded,
tensor-indexing batch path.

torchvision reads the real idx files once; each split is then one float tensor of pixels in [0, 1]
(``[N, 784]``), kept on the training device, and batches are taken by indexing it. The batch order
is a pure function of ``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted
run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from vaelab.data.choices import BINARIZE_MODES, Binarize  # noqa: F401  (re-exported: one definition)
from vaelab.data.datasets import read_split
from vaelab.data.fetch import ensure_data
from vaelab.data.idx_files import DATASETS, check_val_size
from vaelab.errors import UserError


def epoch_generator(seed: int, epoch: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator whose state depends only on ``(seed, epoch, stream)``.

    Streams keep independent uses apart (batch order, binarisation, training noise, ranks). Python's
    hash of a tuple of ints is not randomised between processes, so this is reproducible.
    """
    return torch.Generator(device=device).manual_seed(hash((int(seed), int(epoch), int(stream))) & 0x7FFF_FFFF_FFFF_FFFF)


class TensorBatches:
    """Batches ``(images [b, 784], indices [b])`` taken by indexing one pre-decoded tensor.

    Training order: a permutation drawn from ``(seed, epoch)``; under DDP each rank takes its own
    equal-length strided share of it (the few left-over images of an epoch are skipped, as
    DistributedSampler with ``drop_last`` does). Evaluation order: the identity, each rank taking
    every ``world_size``-th image, so every image is counted exactly once.

    Indices are positions in the split, so callers can attach per-image state (e.g. fixed noise).
    With ``binarize_each_epoch`` every training batch is a fresh Bernoulli draw, seeded from the
    epoch (dynamic binarisation).

    With ``group > 1`` each item is a list of up to ``group`` consecutive batches, the same batches
    in the same order (and the same Bernoulli draws) as ``group=1`` gives; the training step takes
    one optimiser step per batch, so Lightning's fixed per-step cost is paid once per group.
    """

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        binarize_each_epoch: bool = False,
        group: int = 1,
        epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.images = images
        self.group = int(group)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.binarize_each_epoch = binarize_each_epoch
        # the epoch being iterated, asked when an epoch's iteration starts (the data module passes
        # the trainer's current_epoch): order and Bernoulli draws are functions of (seed, epoch)
        self.epoch = epoch

    def _order(self, epoch: int) -> Tensor:
        n = self.images.shape[0]
        device = self.images.device
        if not self.shuffle:
            return torch.arange(self.rank, n, self.world_size, device=device)
        perm = torch.randperm(n, generator=epoch_generator(self.seed, epoch, stream=0))
        per_rank = n // self.world_size
        return perm[self.rank :: self.world_size][:per_rank].to(device)

    def __len__(self) -> int:
        n = self.images.shape[0]
        count = n // self.world_size if self.shuffle else len(range(self.rank, n, self.world_size))
        return -(-count // (self.batch_size * self.group))

    def __iter__(self):
        if self.group == 1:
            yield from self._batches()
            return
        chunk: list[tuple[Tensor, Tensor]] = []
        for batch in self._batches():
            chunk.append(batch)
            if len(chunk) == self.group:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _batches(self):
        epoch = int(self.epoch())
        order = self._order(epoch)
        gen = None
        if self.binarize_each_epoch:
            gen = epoch_generator(self.seed, epoch, stream=1 + self.rank, device=self.images.device)
        for start in range(0, order.shape[0], self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images.index_select(0, idx)
            if gen is not None:
                x = torch.bernoulli(x, generator=gen)
            yield x, idx


class MNISTDataModule(pl.LightningDataModule):
    """MNIST or Fashion-MNIST splits: train = 60,000 − ``val_size`` images, val = ``val_size``
    images held out from the official training set by a split seeded with ``split_seed``, test =
    the official 10,000. Both data sets go through the same path, split, binarisation and checks.

    Args:
        root: folder holding ``MNIST/raw/`` or ``FashionMNIST/raw/`` (torchvision layout).
        batch_size: training batch size (images).
        eval_batch_size: validation/test batch size (images); only speed depends on it.
        val_size: images held out for validation.
        split_seed: seeds the held-out split, the one-time binarisation of validation/test
            images and the fixed evaluation noise; fixed by default so every run shares one split.
        seed: the run seed; with the epoch it fixes the batch order and dynamic binarisation.
        download: try to download the files when they are missing (:mod:`vaelab.data.fetch`).
        mirror: the URL prefix the files are downloaded from (``<mirror>/<file>.gz``); None:
            torchvision's mirrors.
        binarize: ``none`` (grey levels in [0, 1]), ``dynamic`` (fresh Bernoulli draw of each
            training image every epoch; validation/test binarised once) or ``static`` (every split
            binarised once).
        on_device: keep the decoded tensors on the training device (GPU) instead of the CPU.
        steps_per_call: training batches handed to one ``training_step`` call, as a list, for
            :class:`~vaelab.training.fast_steps.FastVAEModule` (one optimiser step per batch; same
            numbers as 1, less Lightning overhead per step); 1 for the plain module. Under DDP it
            is 1: DDP allows one backward per forward of the wrapped module. Lightning counts what
            the loader yields, here a list, as one batch, so a run that counts its batches
            (``trainer.limit_train_batches`` an int, ``fast_dev_run``) gets 1 from the config
            (``vaelab.config.resolvers.steps_per_call``) and every limit means batches. Its public way to take several batches in one call, ``training_step(dataloader_iter)``,
            would let the limits count batches, but Lightning still counts each call as one batch
            in its progress and logging step, no longer moves batches to the device, and keeps no
            batch index it can vouch for; this grouping keeps the loop Lightning's own. The logged
            step is the epoch under both speeds (:class:`vaelab.training.callbacks.EpochAxis`).
        dataset: a name of :data:`vaelab.data.idx_files.DATASETS` (``mnist``, ``fashion_mnist``).
    """

    def __init__(
        self,
        root: str,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 10000,
        split_seed: int = 1234,
        seed: int = 0,
        download: bool = True,
        binarize: Binarize = "none",
        on_device: bool = True,
        steps_per_call: int = 1,
        dataset: str = "mnist",
        mirror: str | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.seed = seed
        self.download = download
        self.mirror = mirror
        self.binarize = binarize
        self.on_device = on_device
        self.steps_per_call = steps_per_call
        if dataset not in DATASETS:
            raise UserError(f"data.dataset={dataset!r} is not a data set: choose one of {', '.join(DATASETS)}")
        self.dataset = dataset
        self.splits: dict[str, Tensor] = {}
        self.labels: dict[str, Tensor] = {}
        self._noise: dict[tuple[str, int], Tensor] = {}
        self._checked = False

    def prepare_data(self) -> None:
        """Download and check the files (Lightning calls this on rank 0 only)."""
        ensure_data(self.root, download=self.download, dataset=self.dataset, mirror=self.mirror)
        self._checked = True

    def setup(self, stage: str | None = None) -> None:
        """Decode every split once into float tensors on the training device."""
        if self.splits:
            return
        if not self._checked:
            ensure_data(self.root, download=self.download, dataset=self.dataset, mirror=self.mirror)
            self._checked = True
        train_u8, train_y = read_split(self.root, train=True, dataset=self.dataset)
        test_u8, test_y = read_split(self.root, train=False, dataset=self.dataset)
        n = train_u8.shape[0]
        check_val_size(self.val_size, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
        pixels = train_u8.reshape(n, -1).float().div_(255.0)
        test = test_u8.reshape(test_u8.shape[0], -1).float().div_(255.0)
        self.splits = {"train": pixels[train_idx], "val": pixels[val_idx], "test": test}
        self.labels = {"train": train_y[train_idx], "val": train_y[val_idx], "test": test_y}
        if self.binarize != "none":
            for i, name in enumerate(("train", "val", "test")):
                if name == "train" and self.binarize == "dynamic":
                    continue
                gen = torch.Generator().manual_seed(self.split_seed + 1 + i)
                self.splits[name] = torch.bernoulli(self.splits[name], generator=gen)
        if self.on_device and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self.splits = {k: v.to(device) for k, v in self.splits.items()}

    def eval_noise(self, split: str, latent_dim: int) -> Tensor:
        """A fixed standard-normal draw per image of ``split`` (``[N, latent_dim]``, on its device).

        Validation and test losses use it for eq. 2's noise, which makes them a deterministic
        function of the weights: independent of batch size, batch order and number of devices.
        """
        key = (split, latent_dim)
        if key not in self._noise:
            gen = torch.Generator().manual_seed(self.split_seed + 100 + latent_dim)
            noise = torch.randn(self.splits[split].shape[0], latent_dim, generator=gen)
            self._noise[key] = noise.to(self.splits[split].device)
        return self._noise[key]

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, split: str, train: bool) -> TensorBatches:
        rank, world = self._rank_world()
        return TensorBatches(
            self.splits[split],
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
            binarize_each_epoch=train and self.binarize == "dynamic",
            group=self.steps_per_call if train and world == 1 else 1,
            epoch=self._current_epoch,
        )

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def train_dataloader(self) -> TensorBatches:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorBatches:
        return self._loader("test", train=False)
