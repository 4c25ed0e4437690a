"""The four idx files of MNIST and of Fashion-MNIST: header, size, count and checksum checks.

Kept free of torch imports so the command line can check the data before any heavy start-up. A
truncated download, a swapped file or a corrupted copy is reported with the file's name instead of
surfacing later as a cryptic reshape error.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from vaelab.errors import UserError

# (file name, idx magic number, item shape, MD5 of the official uncompressed file)
MNIST_FILES: dict[str, tuple[int, tuple[int, ...], str]] = {
    "train-images-idx3-ubyte": (2051, (28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (2049, (), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (2051, (28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (2049, (), "27ae3e4e09519cfbb04c329615203637"),
}
# Fashion-MNIST (Zalando) ships the same four names, headers and counts. The MD5s are those of the
# official files once decompressed (torchvision lists the MD5s of the .gz downloads instead, and a
# recompressed copy, like Debian's dataset-fashion-mnist package, has other .gz MD5s).
FASHION_MNIST_FILES: dict[str, tuple[int, tuple[int, ...], str]] = {
    "train-images-idx3-ubyte": (2051, (28, 28), "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": (2049, (), "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": (2051, (28, 28), "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": (2049, (), "15d484375f8d13e6eb1aabb0c3f46965"),
}
OFFICIAL_COUNTS = {"train": 60000, "t10k": 10000}

# data.dataset -> (torchvision class, which is also the folder under data.root: <root>/<class>/raw/,
# its four files); the one list of data sets, used by the data module and the config check
DATASETS: dict[str, tuple[str, dict[str, tuple[int, tuple[int, ...], str]]]] = {
    "mnist": ("MNIST", MNIST_FILES),
    "fashion_mnist": ("FashionMNIST", FASHION_MNIST_FILES),
}


def raw_dir(root: str | Path, dataset: str) -> Path:
    """Where torchvision keeps ``dataset``'s idx files under ``root``: ``<root>/<class>/raw``."""
    if dataset not in DATASETS:
        raise UserError(f"data.dataset={dataset!r} is not a data set: choose one of {', '.join(DATASETS)}")
    return Path(root) / DATASETS[dataset][0] / "raw"


def check_data_root(root: str | Path, create: bool = False) -> Path:
    """``root`` resolved, or a :class:`UserError` saying how to point ``data.root`` at MNIST.

    ``create``: make ``root`` when it is missing and its parent exists (a fresh folder to download
    into, such as the default ``<repo>/data``); a missing parent means a mistyped path, refused."""
    path = Path(root).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UserError(
            f"data.root={path} is a file, not a folder: set data.root=<dir> or VAELAB_DATA_ROOT to the folder that holds MNIST/raw/ (FashionMNIST/raw/)"
        )
    if not path.is_dir() and create and path.parent.is_dir():
        try:
            path.mkdir()
        except FileExistsError:  # another job made it a moment ago
            pass
        except OSError as exc:
            raise UserError(f"data.root={path} does not exist and cannot be created ({exc.strerror}): set data.root=<a writable dir>") from None
    if not path.is_dir():
        raise UserError(
            f"data.root={path} does not exist: set data.root=<dir> or VAELAB_DATA_ROOT to the folder that holds MNIST/raw/ (FashionMNIST/raw/), "
            "or to a new folder inside an existing one to let vaelab download MNIST there"
        )
    return path


def check_idx_file(path: Path, magic: int, item_shape: tuple[int, ...], md5: str) -> int:
    """See :func:`_check_idx_file`; cached per (path, size, mtime) so repeated checks are free."""
    if not path.is_file():
        raise UserError(f"missing {path}")
    st = path.stat()
    return _check_idx_file(path, magic, item_shape, md5, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _check_idx_file(path: Path, magic: int, item_shape: tuple[int, ...], md5: str, size: int, _mtime: int) -> int:
    """Check an idx file's header and size (and its MD5 when it claims the official count).

    Returns the number of items. Raises :class:`UserError` naming the file on any mismatch, so a
    truncated or corrupted download is reported before torchvision trips on it.
    """
    if not os.access(path, os.R_OK):
        raise UserError(f"{path} is not readable: fix its permissions (chmod a+r)")
    header = 4 + 4 * (1 + len(item_shape))
    with path.open("rb") as f:
        head = f.read(header)
    if len(head) < header:
        raise UserError(f"{path} is truncated ({size} bytes, shorter than its idx header): replace it with the official file")
    found_magic = int.from_bytes(head[0:4], "big")
    if found_magic != magic:
        raise UserError(f"{path} has idx magic number {found_magic}, expected {magic}: it is not this idx file; replace it")
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(1 + len(item_shape))]
    if tuple(dims[1:]) != item_shape:
        raise UserError(f"{path} holds items of shape {tuple(dims[1:])}, expected {item_shape}: replace it with the official file")
    n = dims[0]
    item = 1
    for d in item_shape:
        item *= d
    if size != header + n * item:
        raise UserError(
            f"{path} is {size} bytes but its header promises {header + n * item} ({n} items): "
            "the file is truncated or corrupted; replace it with the official file"
        )
    if n == OFFICIAL_COUNTS[path.name.split("-")[0]]:
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != md5:
            raise UserError(f"{path} has MD5 {digest}, expected the official {md5}: the file is corrupted; replace it")
    return n


def check_mnist_raw(raw: Path, files: dict[str, tuple[int, tuple[int, ...], str]] = MNIST_FILES) -> None:
    """Check all four official files in ``raw`` (MNIST's by default; ``files``: another data set's
    table, e.g. :data:`FASHION_MNIST_FILES`) and that image and label counts agree."""
    counts = {name: check_idx_file(raw / name, *spec) for name, spec in files.items()}
    for split in ("train", "t10k"):
        ni, nl = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if ni != nl:
            raise UserError(
                f"{raw}/{split}-images-idx3-ubyte holds {ni} images but {split}-labels-idx1-ubyte holds {nl} labels: replace them with the official files"
            )


def check_val_size(val_size: int, n: int) -> None:
    """The held-out validation split must leave images to train on: ``1 <= val_size < n`` for a
    training file of ``n`` images. One wording for the config check and the data module."""
    if not 0 < val_size < n:
        raise UserError(f"data.val_size={val_size} must be between 1 and {n - 1} (the training file holds {n} images)")
