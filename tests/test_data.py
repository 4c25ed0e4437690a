"""The data module on tiny idx files, read through torchvision's real MNIST path."""

from pathlib import Path

import pytest
import torch

from conftest import make_tiny_mnist
from vaelab.data.datamodule import MNISTDataModule, TensorBatches
from vaelab.errors import UserError


def module(root: Path, **kw) -> MNISTDataModule:
    dm = MNISTDataModule(str(root), val_size=100, batch_size=64, eval_batch_size=30, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_splits_shapes_and_ranges(tiny_root):
    dm = module(tiny_root)
    assert {k: tuple(v.shape) for k, v in dm.splits.items()} == {"train": (500, 784), "val": (100, 784), "test": (200, 784)}
    for x in dm.splits.values():
        assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0
    # the official test set is untouched by the split; train and val partition the training file
    assert dm.labels["train"].numel() + dm.labels["val"].numel() == 600


def test_split_is_seeded(tiny_root):
    a, b, c = module(tiny_root), module(tiny_root), module(tiny_root, split_seed=99)
    assert torch.equal(a.splits["val"], b.splits["val"])
    assert not torch.equal(a.splits["val"], c.splits["val"])
    # train and val partition the 600 (distinct, noisy) training images
    whole = torch.cat([a.splits["train"], a.splits["val"]])
    assert torch.unique(whole, dim=0).shape[0] == 600


def batches(loader: TensorBatches, epoch: int) -> list[torch.Tensor]:
    loader.epoch = lambda: epoch  # what the data module asks: the trainer's current epoch
    return [idx for _, idx in loader]


def test_batch_order_is_a_function_of_seed_and_epoch(tiny_root):
    dm = module(tiny_root, seed=5)
    l1, l2 = dm.train_dataloader(), dm.train_dataloader()
    assert all(torch.equal(a, b) for a, b in zip(batches(l1, 3), batches(l2, 3)))
    assert not torch.equal(torch.cat(batches(l1, 3)), torch.cat(batches(l1, 4)))
    other = module(tiny_root, seed=6).train_dataloader()
    assert not torch.equal(torch.cat(batches(l1, 3)), torch.cat(batches(other, 3)))
    # every training image once per epoch, in batches of batch_size (last one partial)
    order = torch.cat(batches(l1, 0))
    assert sorted(order.tolist()) == list(range(500))
    assert len(l1) == 8 and [len(b) for b in batches(l1, 0)][-1] == 500 - 7 * 64


def test_batches_index_the_split(tiny_root):
    dm = module(tiny_root)
    x, idx = next(iter(dm.val_dataloader()))
    assert torch.equal(x, dm.splits["val"][idx])
    assert idx.tolist() == list(range(30))


def test_ranks_partition_eval_and_share_train():
    images = torch.rand(101, 784)  # 101 does not divide by 3 ranks
    seen = []
    for rank in range(3):
        loader = TensorBatches(images, 7, shuffle=False, seed=0, rank=rank, world_size=3)
        seen += torch.cat([idx for _, idx in loader]).tolist()
    assert sorted(seen) == list(range(101))  # every evaluation image exactly once
    shares = [set(torch.cat(batches(TensorBatches(images, 16, shuffle=True, seed=0, rank=r, world_size=3), 2)).tolist()) for r in range(3)]
    assert [len(s) for s in shares] == [33, 33, 33]  # equal steps per rank, as DDP needs
    assert not (shares[0] & shares[1]) and not (shares[1] & shares[2]) and not (shares[0] & shares[2])


def test_eval_noise_is_fixed_per_image(tiny_root):
    dm = module(tiny_root)
    n1 = dm.eval_noise("val", 2)
    assert n1.shape == (100, 2) and torch.equal(n1, module(tiny_root).eval_noise("val", 2))


def test_missing_files_without_download(tmp_path):
    with pytest.raises(UserError, match="train-images-idx3-ubyte.*missing.*data.download"):
        MNISTDataModule(str(tmp_path), download=False).prepare_data()


def test_failed_download_says_where_to_put_the_files(tmp_path):
    # port 9 on the loopback: nothing listens, the connection is refused at once
    with pytest.raises(UserError) as err:
        MNISTDataModule(str(tmp_path), download=True, mirror="http://127.0.0.1:9/").prepare_data()
    message = str(err.value)
    assert "download failed" in message and "Connection refused" in message and str(tmp_path / "MNIST" / "raw") in message
    assert "\n" not in message
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []  # nothing half-written


def test_missing_root(tmp_path):
    # a fresh folder is made; a missing parent is a mistyped path, refused
    with pytest.raises(UserError, match="does not exist"):
        MNISTDataModule(str(tmp_path / "nope" / "deeper")).prepare_data()
    assert not (tmp_path / "nope").exists()


def test_tiny_files_round_trip_through_torchvision(tmp_path):
    root = make_tiny_mnist(tmp_path, n_train=50, n_test=20, seed=3)
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=False)
    assert ds.data.shape == (20, 28, 28) and ds.targets.shape == (20,)
