"""Checkpoint files: written atomically; read once, safely, and checked, by every entry point.

A process killed while saving must never leave a truncated ``last.ckpt`` behind: checkpoints are
written to ``<name>.tmp`` in the same folder, flushed to disk, then renamed over the old file
(``os.replace`` is atomic on POSIX), so ``last.ckpt`` is always either the previous complete file
or the new complete one.

Reading one (:func:`read_checkpoint`) never runs code from the file: checkpoints travel (W&B
artifacts, a colleague's run dir, a paper's release), and a pickle can call any function. Files are
unpickled by torch's weights-only loader, which builds only the kinds of objects vaelab stores
(:data:`SAFE_GLOBALS`, the allow-list).
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from vaelab.errors import UnsafeCheckpoint, UserError, no_checkpoint
from vaelab.vae.nets import net_arguments


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

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's loads in training (``resume=true``'s ``last.ckpt``, the test of the best
        checkpoint) go through vaelab's reader: weights-only whatever Lightning asks, one error line
        for a file it refuses, and a file this process has just read and checked (``resume=true``)
        handed over instead of read again. Tensors come on the CPU, as Lightning's default
        ``map_location`` gives them; Lightning moves them to the module's device."""
        return _load(Path(path), str(path), hand_over=True)


# The allow-list: what a vaelab checkpoint may hold beyond what torch's weights-only unpickler
# accepts by itself (tensors and their storages, OrderedDict, dtypes, plain Python values). Every
# key vaelab and Lightning write today is of those kinds (weights, optimiser and LR-scheduler state
# dicts, loop and callback states, hyper-parameters, the epoch history): the list is empty, and a
# test keeps it so (tests/test_safe_checkpoints.py checks a real checkpoint of each speed path). A
# class stored in a checkpoint one day is added here, and only here: this module registers the list
# with torch when imported; every load of vaelab's goes through ``read_checkpoint`` below, and
# Lightning's own loads in training through ``AtomicCheckpointIO.load_checkpoint`` (also asked
# with ``weights_only=True``).
SAFE_GLOBALS: list[Any] = []
torch.serialization.add_safe_globals(SAFE_GLOBALS)


@dataclass(frozen=True)
class Checkpoint:
    """A vaelab checkpoint, read once and checked: its ``path`` and its ``contents`` (the dict
    Lightning saved, tensors on the CPU). Callers take what they need from it (the module, the
    weights, the hyper-parameters) without reading the file again."""

    path: Path
    contents: dict[str, Any]

    @property
    def hparams(self) -> dict[str, Any]:
        """The model's settings (``net``, ``latent_dim``, ``hidden``, ``kl``, ...)."""
        return self.contents["hyper_parameters"]

    @property
    def state_dict(self) -> dict[str, Any]:
        """The module's weights."""
        return self.contents["state_dict"]

    def module(self) -> Any:
        """The :class:`~vaelab.training.module.VAEModule`, on the CPU, in eval mode, built from these
        contents as ``LightningModule.load_from_checkpoint`` builds it (its hyper-parameters that the
        class takes, ``on_load_checkpoint``, the weights), without a second read of the file."""
        from vaelab.training.module import VAEModule

        takes = inspect.signature(VAEModule.__init__).parameters
        any_key = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes.values())
        module = VAEModule(**{k: v for k, v in self.hparams.items() if any_key or k in takes})
        module.on_load_checkpoint(self.contents)
        module.load_state_dict(self.state_dict)
        return module.eval()


def read_checkpoint(
    path: str | Path,
    latent_dim: int | None = None,
    hidden: list[int] | None = None,
    net: str | None = None,
    net_args: Mapping[str, Any] | None = None,
    key: str | None = "ckpt_path",
) -> Checkpoint:
    """Read ``path`` once, safely, on the CPU, and check it is a vaelab checkpoint for this model
    shape (``latent_dim``/``hidden``/``net``/``net_args`` None: of any; ``net_args`` are compared
    as the network is built with them, defaults filled in: :func:`vaelab.vae.nets.net_arguments`).

    The file is unpickled by torch's weights-only loader with :data:`SAFE_GLOBALS`, so an object
    that vaelab never stores (a pickled call of any function) is refused before it is built:
    :class:`~vaelab.errors.UnsafeCheckpoint`, naming what it holds. Raises :class:`UserError` with one
    line, starting ``<key>=<path>`` (the path alone when ``key`` is None, e.g. a run dir's
    ``last.ckpt``), when the file is missing, is not a (complete) checkpoint, or was trained with
    another shape.
    """
    path = Path(path)
    label = f"{key}={path}" if key else str(path)
    if not path.is_file():
        raise no_checkpoint(path) if key == "ckpt_path" else UserError(f"{path} is not a checkpoint file")
    contents = _load(path, label)
    if not isinstance(contents, dict) or "state_dict" not in contents or "hyper_parameters" not in contents:
        raise UserError(f"{label} is not a vaelab/Lightning checkpoint (no state_dict or hyper_parameters)")
    hp = contents["hyper_parameters"]
    if latent_dim is not None and int(hp.get("latent_dim", -1)) != int(latent_dim):
        raise UserError(
            f"{label} was trained with model.latent_dim={hp.get('latent_dim')}, but this run has model.latent_dim={latent_dim}: "
            f"set model.latent_dim={hp.get('latent_dim')} or pick a checkpoint of the same latent dim"
        )
    if hidden is not None and [int(h) for h in hp.get("hidden", [])] != [int(h) for h in hidden]:
        raise UserError(
            f"{label} was trained with model.hidden={list(hp.get('hidden', []))}, but this run has model.hidden={list(hidden)}: make them match"
        )
    if net is not None and str(hp.get("net")) != str(net):
        raise UserError(
            f"{label} holds a model.net={hp.get('net')} network, but this run has model.net={net}: pick the model= option it was trained with"
        )
    if net_args is not None:
        trained, wanted = net_arguments(str(hp.get("net")), hp.get("net_args")), net_arguments(str(hp.get("net")), net_args)
        for name in dict.fromkeys([*trained, *wanted]):
            if trained.get(name, "<absent>") != wanted.get(name, "<absent>"):
                raise UserError(
                    f"{label} was trained with model.net_args.{name}={trained.get(name, '<absent>')}, but this run has "
                    f"model.net_args.{name}={wanted.get(name, '<absent>')}: make them match"
                )
    return Checkpoint(path, contents)


# the last file read, by its identity: a job's checks and its start read one file once (the check
# before Hydra makes the run dir, the task's own check, the weights' load, Lightning's restore on
# resume are one unpickling)
_last_read: dict[tuple[str, int, int, int], Any] = {}


def _load(path: Path, label: str, hand_over: bool = False) -> Any:
    """The unpickled contents of ``path`` (weights-only, on the CPU), read once while the file stays
    the same (path, inode, size, modification time); a refusal is one line naming ``label``.
    ``hand_over``: the caller may change the contents (Lightning's restore does): they are not kept."""
    stat = path.stat()
    identity = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if identity in _last_read:
        return _last_read.pop(identity) if hand_over else _last_read[identity]
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # the weights-only loader refused it: foreign objects, or not a pickle at all
        names = _unsafe_globals(path, str(exc))
        if names:
            raise UnsafeCheckpoint(label, names) from None
        raise UserError(f"{label} is not a readable checkpoint (not a torch pickle); it may be truncated or another kind of file") from None
    except Exception as exc:  # any other failure of the loader is a damaged or foreign file, e.g. truncated
        raise UserError(f"{label} is not a readable checkpoint ({type(exc).__name__}); it may be truncated or another kind of file") from None
    if not hand_over:
        _last_read.clear()
        _last_read[identity] = contents
    return contents


def _unsafe_globals(path: Path, refusal: str) -> list[str]:
    """The objects (``module.name``) the weights-only loader refused in ``path``, read from its pickle
    without building them (torch's scan of a zip checkpoint; for a legacy file, the name in torch's
    ``refusal`` message). Empty when the file holds none: it is then not a torch pickle at all."""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError):  # not a zip checkpoint
        names = re.findall(r"GLOBAL (\S+) was not an allowed global", refusal)
    return sorted(set(names) - allowed)


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


def remove_stale_best(checkpoint_dir: Path, best: str | None, pattern: str) -> list[Path]:
    """Delete the files matching ``pattern`` (the best checkpoints' names, ``best-*.ckpt``) other
    than the run's best: a kill between writing a new best and deleting the old one leaves the old
    one behind, which Lightning no longer tracks."""
    keep = Path(best).resolve() if best else None
    stale = [p for p in Path(checkpoint_dir).glob(pattern) if p.resolve() != keep]
    for p in stale:
        p.unlink()
    return stale
