"""Getting a data set's four idx files in place: found, or downloaded once, checked, and moved in.

Written here rather than through torchvision's ``download=True``, which does the job worse for a
run that must never read a half file: it writes the ``.gz`` straight under its final name (a cut
download leaves a file that looks like the real one), checks only the ``.gz`` MD5, and its mirror
list is a class attribute rather than a setting. Here every file is downloaded and decompressed
into a private temp folder beside ``raw/``, checked with vaelab's own checks (size, idx header,
count, MD5 of the decompressed file: :mod:`vaelab.data.idx_files`), and only then renamed into
``raw/`` (``os.replace``: atomic). Torch-free, so the config check can fetch the data before any
heavy start-up and before a run dir exists.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from vaelab.data.idx_files import DATASETS, check_data_root, check_idx_file, check_mnist_raw, raw_dir
from vaelab.errors import UserError

# what to do when a data set cannot be downloaded (offline): beyond putting the files in place
OFFLINE_HINT = {
    "fashion_mnist": "; scripts/fetch_fashion_mnist.sh <data root> copies them from Debian's dataset-fashion-mnist package",
}
# the temp folders of downloads in progress, under raw/: .download-<pid>-<random>
_PARTIAL = ".download-"
# seconds without a byte before a mirror counts as failed
TIMEOUT_S = 60


def default_mirrors(dataset: str) -> list[str]:
    """The mirrors torchvision downloads ``dataset`` from (``torchvision.datasets.<class>.mirrors``),
    tried in order: one list, torchvision's, so vaelab's default follows its updates."""
    import torchvision.datasets

    return list(getattr(torchvision.datasets, DATASETS[dataset][0]).mirrors)


def ensure_data(root: str | Path, download: bool, dataset: str = "mnist", mirror: str | None = None) -> Path:
    """Make sure the four files of ``dataset`` are under ``root/<class>/raw`` and intact; return that folder.

    ``root`` is created when it is missing and its parent exists (a fresh folder such as the default
    ``<repo>/data``; a mistyped deep path is still refused). Missing files are downloaded when
    ``download`` is true, from ``mirror`` (a URL prefix holding ``<file>.gz``; None: torchvision's
    mirrors); a failed download says why and where the four files belong, and leaves nothing behind.
    """
    root = check_data_root(root, create=download)
    raw = raw_dir(root, dataset)
    folder, files = DATASETS[dataset]
    missing = [name for name in files if not (raw / name).is_file()]
    if missing and download:
        mirrors = [mirror] if mirror else default_mirrors(dataset)
        try:
            _download(raw, missing, mirrors, dataset)
        except UserError as exc:
            raise UserError(
                f"{folder} is missing from {raw} and the download failed ({exc}): put the four files "
                f"{', '.join(files)} in {raw}, set data.root / VAELAB_DATA_ROOT to a folder that has {folder}/raw/, "
                f"or set data.mirror to a mirror that has their .gz files{OFFLINE_HINT.get(dataset, '')}"
            ) from None
    elif missing:
        raise UserError(
            f"{folder} files {', '.join(missing)} are missing from {raw} and data.download=false: put them there or set data.download=true"
            f"{OFFLINE_HINT.get(dataset, '')}"
        )
    check_mnist_raw(raw, files)
    return raw


def _download(raw: Path, names: list[str], mirrors: list[str], dataset: str) -> None:
    """Download, decompress and check ``names`` into a temp folder under ``raw``, then move them in.

    Raises :class:`UserError` (one line: the last mirror's failure) and removes the temp folder on
    any failure, so ``raw`` holds either the checked files or what it held before.
    """
    raw.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(raw)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL}{os.getpid()}-", dir=raw))
    try:
        print(f"downloading {DATASETS[dataset][0]} ({len(names)} file(s)) from {mirrors[0]} into {raw}, once", flush=True)
        for name in names:
            _fetch_one(name, DATASETS[dataset][1][name], mirrors, tmp)
        for name in names:
            os.replace(tmp / name, raw / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch_one(name: str, spec: tuple[int, tuple[int, ...], str], mirrors: list[str], tmp: Path) -> None:
    """``<mirror>/<name>.gz`` from the first mirror whose file passes the idx checks (``spec``:
    :data:`vaelab.data.idx_files.MNIST_FILES`' entry), decompressed to ``tmp/name``."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{name}.gz"
        gz = tmp / f"{name}.gz"
        try:
            _get(url, gz)
            with gzip.open(gz, "rb") as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            gz.unlink()
            check_idx_file(tmp / name, *spec)
            return
        except UserError as exc:  # a complete download that is not the file (truncated, corrupted)
            failures.append(str(exc).replace(str(tmp / name), url))
        except (urllib.error.URLError, OSError, EOFError, ValueError) as exc:  # offline, HTTP error, not gzip, cut short
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url}: {type(exc).__name__}: {reason}")
        finally:
            gz.unlink(missing_ok=True)
        (tmp / name).unlink(missing_ok=True)
    raise UserError(failures[-1] if len(failures) == 1 else f"{len(failures)} mirrors failed, the last {failures[-1]}")


def _get(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest``: a progress bar on a terminal, one line per file otherwise (logs)."""
    from tqdm import tqdm

    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not sys.stderr.isatty(), leave=False)
        with bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
    size = dest.stat().st_size
    print(f"  {dest.name}: {size / 1e6:.1f} MB from {url} in {time.perf_counter() - start:.1f} s", flush=True)


def _remove_abandoned(raw: Path) -> None:
    """Remove temp folders of downloads whose process is gone (a download killed mid-way)."""
    for partial in raw.glob(f"{_PARTIAL}*"):
        pid = partial.name[len(_PARTIAL) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
