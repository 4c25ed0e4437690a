"""Reading one official split of a data set with torchvision. The data sets and their files are
listed once, in :data:`vaelab.data.idx_files.DATASETS`; getting the files in place (found, or
downloaded and checked) is :mod:`vaelab.data.fetch`."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vaelab.data.idx_files import DATASETS


def read_split(root: str | Path, train: bool, dataset: str = "mnist") -> tuple[Tensor, Tensor]:
    """Read one official split with torchvision: (uint8 images ``[N, 28, 28]``, int64 labels ``[N]``)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, DATASETS[dataset][0])
    ds = cls(str(Path(root).expanduser().resolve()), train=train, download=False)
    return ds.data, ds.targets
