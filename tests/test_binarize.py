"""data.binarize: none keeps grey levels, static binarises once, dynamic redraws training images each epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaelab.data.datamodule import MNISTDataModule


def _datamodule(root: Path, binarize: str, seed: int = 0) -> MNISTDataModule:
    dm = MNISTDataModule(str(root), batch_size=64, eval_batch_size=50, val_size=100, seed=seed, download=False, binarize=binarize)
    dm.setup()
    return dm


def _epoch_images(loader, epoch: int, n: int) -> torch.Tensor:
    """All images one epoch of ``loader`` yields, put back in split order (``[n, 784]``)."""
    loader.epoch = lambda: epoch  # what the data module asks: the trainer's current epoch
    out = torch.full((n, 784), -1.0)
    for x, idx in loader:
        out[idx] = x
    return out


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def test_none_keeps_grey_levels(tiny_root: Path) -> None:
    dm = _datamodule(tiny_root, "none")
    x = _epoch_images(dm.train_dataloader(), 0, dm.splits["train"].shape[0])
    assert torch.equal(x, dm.splits["train"])
    assert not _is_binary(x) and x.min() >= 0 and x.max() <= 1


def test_static_is_fixed_everywhere(tiny_root: Path) -> None:
    dm = _datamodule(tiny_root, "static")
    grey = _datamodule(tiny_root, "none")
    n = dm.splits["train"].shape[0]
    e0, e1 = _epoch_images(dm.train_dataloader(), 0, n), _epoch_images(dm.train_dataloader(), 1, n)
    assert _is_binary(e0) and torch.equal(e0, e1)
    for split in ("train", "val", "test"):
        assert _is_binary(dm.splits[split])
        # a Bernoulli draw of the grey image: pixels that were 0 stay 0, pixels that were 1 stay 1
        assert torch.all(dm.splits[split][grey.splits[split] == 0] == 0)
        assert torch.all(dm.splits[split][grey.splits[split] == 1] == 1)
    # binarised once with split_seed: a run with another seed sees the same images
    other = _datamodule(tiny_root, "static", seed=7)
    for split in ("train", "val", "test"):
        assert torch.equal(dm.splits[split], other.splits[split])


def test_dynamic_redraws_training_images_each_epoch(tiny_root: Path) -> None:
    dm = _datamodule(tiny_root, "dynamic")
    grey = dm.splits["train"]
    n = grey.shape[0]
    e0, e1 = _epoch_images(dm.train_dataloader(), 0, n), _epoch_images(dm.train_dataloader(), 1, n)
    assert _is_binary(e0) and _is_binary(e1)
    assert not torch.equal(e0, e1)  # a fresh draw each epoch
    assert torch.equal(e0, _epoch_images(dm.train_dataloader(), 0, n))  # seeded by (seed, epoch): reproducible
    # the draws average to the grey levels: mean over 20 epochs is close to the pixel intensities
    mean = torch.stack([_epoch_images(dm.train_dataloader(), e, n) for e in range(20)]).mean(0)
    assert (mean - grey).abs().mean() < 0.05
    # validation and test are binarised once, the same for every epoch and every run seed
    other = _datamodule(tiny_root, "dynamic", seed=7)
    for split, loader in (("val", dm.val_dataloader), ("test", dm.test_dataloader)):
        size = dm.splits[split].shape[0]
        a, b = _epoch_images(loader(), 0, size), _epoch_images(loader(), 3, size)
        assert _is_binary(a) and torch.equal(a, b)
        assert torch.equal(a, other.splits[split])
        static = _datamodule(tiny_root, "static")
        assert torch.equal(a, static.splits[split])  # dynamic's fixed val/test = static's


@pytest.mark.parametrize("binarize", ["static", "dynamic"])
def test_training_runs_with_binarized_data(binarize: str, tiny_root: Path) -> None:
    """One Lightning epoch on binarised data trains to a finite loss (the module accepts {0,1} pixels)."""
    import pytorch_lightning as pl

    from vaelab.training.module import VAEModule

    dm = MNISTDataModule(str(tiny_root), batch_size=100, eval_batch_size=100, val_size=100, download=False, binarize=binarize)
    module = VAEModule(latent_dim=2, hidden=[16])
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    assert len(module.history) == 1 and torch.isfinite(torch.tensor(module.history[0]["val/loss"]))
