"""Checkpoint files: written atomically, and checked before a run resumes from one.

A process killed while saving must never leave a truncated ``last.ckpt`` behind: checkpoints are
written to ``<name>.tmp`` in the same folder, flushed to disk, then renamed over the old file
(``os.replace`` is atomic on POSIX), so ``last.ckpt`` is always either the previous complete file
or the new complete one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vaelab.errors import UserError, no_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint I/O, with same-folder temp file + fsync + rename on save.

    A failed write (disk full, folder not writable) becomes a :class:`UserError` naming the file;
    the temp file is removed and the previous checkpoint stays as it was.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise UserError(
                f"cannot write checkpoint {path}: {exc.strerror or exc}; free disk space or point hydra.run.dir/hydra.sweep.dir at a writable folder"
            ) from None


def check_checkpoint(path: str | Path, latent_dim: int | None = None, hidden: list[int] | None = None, net: str | None = None) -> dict[str, Any]:
    """Load ``path`` on the CPU and check it is a vaelab checkpoint for this model shape
    (``latent_dim``/``hidden`` None: of any shape).

    Returns its hyper-parameters. Raises :class:`UserError` with one line when the file is missing,
    is not a (complete) checkpoint, or was trained with another latent dimension.
    """
    path = Path(path)
    if not path.is_file():
        raise no_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(
            f"ckpt_path={path} is not a readable checkpoint ({type(exc).__name__}); it may be truncated or another kind of file"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise UserError(f"ckpt_path={path} is not a vaelab/Lightning checkpoint (no state_dict or hyper_parameters)")
    hp = ckpt["hyper_parameters"]
    if latent_dim is not None and int(hp.get("latent_dim", -1)) != int(latent_dim):
        raise UserError(
            f"ckpt_path={path} was trained with model.latent_dim={hp.get('latent_dim')}, but this run has model.latent_dim={latent_dim}: "
            f"set model.latent_dim={hp.get('latent_dim')} or pick a checkpoint of the same latent dim"
        )
    if hidden is not None and [int(h) for h in hp.get("hidden", [])] != [int(h) for h in hidden]:
        raise UserError(
            f"ckpt_path={path} was trained with model.hidden={list(hp.get('hidden', []))}, but this run has model.hidden={list(hidden)}: make them match"
        )
    if net is not None and str(hp.get("net")) != str(net):
        raise UserError(
            f"ckpt_path={path} holds a model.net={hp.get('net')} network, but this run has model.net={net}: "
            f"pick the model= option it was trained with"
        )
    return hp


class RunDirRelocation(pl.Callback):
    """Let a run dir that was copied or moved resume from its own files.

    Lightning's ``ModelCheckpoint`` keeps absolute paths in its checkpointed state (its folder, the
    best and last files); resumed elsewhere, it would drop its best score ("dirpath has changed")
    or test the old folder's best file. Before the callbacks' states are loaded, this rewrites every
    path under the checkpoint's recorded folder to the same file under ``checkpoint_dir``, the run
    dir's own ``checkpoints/``. A checkpoint written in place is left as it is.
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = os.path.realpath(str(checkpoint_dir))

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        for state in checkpoint.get("callbacks", {}).values():
            old = state.get("dirpath") if isinstance(state, dict) else None
            if not old or os.path.realpath(str(old)) == self.checkpoint_dir:
                continue
            for key, value in list(state.items()):
                state[key] = self._moved(value, str(old))

    def _moved(self, value: Any, old: str) -> Any:
        if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
            return self.checkpoint_dir + value[len(old.rstrip("/")) :]
        if isinstance(value, dict):
            return {self._moved(k, old): v for k, v in value.items()}
        return value


def remove_stale_best(checkpoint_dir: Path, best: str | None) -> list[Path]:
    """Delete ``best-*.ckpt`` files other than the run's best: a kill between writing a new best
    and deleting the old one leaves the old one behind, which Lightning no longer tracks."""
    keep = Path(best).resolve() if best else None
    stale = [p for p in Path(checkpoint_dir).glob("best-*.ckpt") if p.resolve() != keep]
    for p in stale:
        p.unlink()
    return stale
