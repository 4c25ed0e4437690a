"""Getting a data set's idx files in place (torchvision's download, or a clear error) and reading
one official split with torchvision. The data sets and their files are listed once, in
:data:`vaelab.data.idx_files.DATASETS`; MNIST and Fashion-MNIST share everything else."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vaelab.data.idx_files import DATASETS, check_data_root, check_mnist_raw, raw_dir
from vaelab.errors import UserError

# what to do when a data set cannot be downloaded (offline): beyond putting the files in place
OFFLINE_HINT = {
    "fashion_mnist": "; scripts/fetch_fashion_mnist.sh <data root> copies them from Debian's dataset-fashion-mnist package",
}


def _torchvision_class(dataset: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, DATASETS[dataset][0])


def ensure_data(root: str | Path, download: bool, dataset: str = "mnist") -> None:
    """Make sure the four files of ``dataset`` are under ``root/<class>/raw`` and intact.

    Missing files are downloaded when ``download`` is true; when that fails (offline) the error says
    where the four files belong.
    """
    root = check_data_root(root)
    raw = raw_dir(root, dataset)
    folder, files = DATASETS[dataset]
    missing = [name for name in files if not (raw / name).is_file()]
    if missing and download:
        try:
            _torchvision_class(dataset)(str(root), train=True, download=True)
        except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError when offline
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"{folder} is missing from {raw} and the download failed ({first}): put the four files "
                f"{', '.join(files)} in {raw}, or set data.root / VAELAB_DATA_ROOT to a folder that has {folder}/raw/{OFFLINE_HINT.get(dataset, '')}"
            ) from None
    elif missing:
        raise UserError(
            f"{folder} files {', '.join(missing)} are missing from {raw} and data.download=false: put them there or set data.download=true"
            f"{OFFLINE_HINT.get(dataset, '')}"
        )
    check_mnist_raw(raw, files)


def read_split(root: str | Path, train: bool, dataset: str = "mnist") -> tuple[Tensor, Tensor]:
    """Read one official split with torchvision: (uint8 images ``[N, 28, 28]``, int64 labels ``[N]``)."""
    ds = _torchvision_class(dataset)(str(Path(root).expanduser().resolve()), train=train, download=False)
    return ds.data, ds.targets
