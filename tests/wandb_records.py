"""Read back the records of an offline W&B run file (``run-<id>.wandb``), for tests.

wandb 0.31 ships no Python reader. The file is a LevelDB-style log: a 7-byte header (``:W&B``,
magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length,
type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter than a chunk header is padding.
Each reassembled record is a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[pb.Record]:
    """Yield every record of a ``.wandb`` file in order."""
    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"{path} is not a W&B run file (header {ident!r}, {magic:#x}, {version})")
    pos, parts = HEADER.size, []
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:
            pos += left
            continue
        _crc, length, kind = CHUNK.unpack_from(data, pos)
        pos += CHUNK.size
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        parts.append(data[pos : pos + length])
        pos += length
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            parts = []
            yield rec


def run_file(run_dir: Path) -> Path:
    """The ``run-*.wandb`` file of an offline run folder."""
    files = list(Path(run_dir).glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one run-*.wandb in {run_dir}, found {len(files)}")
    return files[0]


def run_record(path: Path) -> pb.RunRecord:
    """The run record (id, group, name, config) of a run file."""
    for rec in records(path):
        if rec.WhichOneof("record_type") == "run":
            return rec.run
    raise ValueError(f"{path} holds no run record")


def history(path: Path) -> list[dict[str, object]]:
    """All logged history rows of a run file, each as {key: value}."""
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item})
    return rows


def metric_series(path: Path, key: str) -> list[float]:
    """Values of one metric in logging order."""
    return [row[key] for row in history(path) if key in row]


def _updates(path: Path, kind: str) -> dict[str, object]:
    """Key/value updates of one record kind (``config`` or ``summary``); later ones win."""
    out: dict[str, object] = {}
    for rec in records(path):
        if rec.WhichOneof("record_type") == kind:
            for item in getattr(rec, kind).update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def config(path: Path) -> dict[str, object]:
    """The run's config as logged."""
    return _updates(path, "config")


def summary(path: Path) -> dict[str, object]:
    """The run's summary as logged."""
    return _updates(path, "summary")
