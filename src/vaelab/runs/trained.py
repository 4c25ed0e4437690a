"""Using a trained model: load a checkpoint, encode a data split to latent codes, decode latent
points, draw samples from the prior. The Python API behind ``vaelab-sample``; the notebook uses it.
What is done with a network once it is loaded (encode, decode, sample, the grids) is
:mod:`vaelab.vae.views`; this module adds the run dir: the checkpoint, the run's data, the files.

    from vaelab.runs import trained
    vae = trained.load("outputs/runs/<time>/checkpoints/best-epoch040.ckpt")   # nn.Module, eval mode
    codes = trained.encode_split("outputs/runs/<time>/checkpoints/best-epoch040.ckpt", split="test")
    images = trained.decode(vae, codes["m"][:8])                              # [8, 784] in [0, 1]
    samples = trained.prior_samples(vae, 64, seed=0)                          # [64, 784] in [0, 1]

Images are pixel means (``sigmoid`` of the decoder's Bernoulli logits), ``[n, 784]`` in [0, 1].
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vaelab.errors import UserError
from vaelab.runs.layout import GRID_PNG, LATENTS, SAMPLES_PNG
from vaelab.runs.reading import datamodule_for_run, load_module, open_checkpoint, run_dir_of
from vaelab.vae.views import decode, encode, generated_panels, prior_samples  # noqa: F401  (decode, prior_samples: this API's, re-exported)

if TYPE_CHECKING:
    from vaelab.training.checkpoint import Checkpoint

# the most tiles one PNG grid of vaelab.sample draws (n_samples, grid_steps**2): 100 x 100 tiles are
# a 3002 x 3002 px image and 31 MB of decoded pixels; more is no longer a picture to look at, and
# n_samples=10**8 asked for 160 GB before a single file was written
MAX_TILES = 10_000
# the file of each image grid vaelab.sample writes (vaelab.vae.views.generated_panels)
PNG_NAMES = {"samples": SAMPLES_PNG, "latent_grid": GRID_PNG}


def load(ckpt: str | Path | Checkpoint) -> Any:
    """The network (:class:`~vaelab.vae.model.GaussianVAE`) of a checkpoint (a path, or one already
    opened), on the CPU, in eval mode; the checkpoint names its class, so no config is needed."""
    return load_module(ckpt).vae


def encode_split(ckpt: str | Path | Checkpoint, split: str = "test", data_root: str | Path | None = None) -> dict[str, Tensor]:
    """Encode a split (``train``, ``val`` or ``test``) prepared as in the run's training (its data
    set, binarisation and split, from run_info.json): ``{"m", "log_scale", "labels"}``."""
    checkpoint = open_checkpoint(ckpt)
    return _split_codes(load(checkpoint), checkpoint.path, split, data_root)


def _split_codes(vae: Any, ckpt_path: Path, split: str, data_root: str | Path | None) -> dict[str, Tensor]:
    dm = datamodule_for_run(run_dir_of(ckpt_path), root=data_root)
    m, log_scale = encode(vae, dm.splits[split])
    return {"m": m, "log_scale": log_scale, "labels": dm.labels[split]}


def check_grid_sizes(n_samples: object, grid_steps: object) -> None:
    """Refuse, before any work, a count that is not an integer or an image grid of more than
    :data:`MAX_TILES` tiles (``n_samples`` prior draws; ``grid_steps`` per axis of the latent grid,
    squared for d = 2)."""
    side = int(MAX_TILES**0.5)
    for key, value, most, power, holds, example in (
        ("n_samples", n_samples, MAX_TILES, 1, f"samples.png holds 1 to {MAX_TILES:,} prior draws", 64),
        ("grid_steps", grid_steps, side, 2, f"latent_grid.png takes 1 to {side} steps per axis ({side}**2 tiles for d = 2)", 20),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= most:
            continue
        images = value**power if isinstance(value, int) and value > most else 0
        need = f" ({images:,} images: {images * 784 * 4 / 2**30:,.1f} GiB of pixels)" if images else ""
        raise UserError(f"{key}={value} is out of range: {holds}{need}; e.g. {key}={example}")


def sample_files(ckpt: str | Path | Checkpoint, split: str = "test", n_samples: int = 64, grid_steps: int = 20, seed: int = 0,
                 data_root: str | Path | None = None) -> dict[str, tuple[str, bytes]]:  # fmt: skip
    """What ``vaelab.sample`` writes, made in memory from one read of the checkpoint:
    ``{what: (file name, contents)}`` for ``latents`` (``latents_<split>.pt``: the split's ``m``,
    ``log_scale`` and labels), ``samples`` (``samples.png``, ``n_samples`` prior draws) and, for
    d = 1 or 2, ``latent_grid`` (``latent_grid.png``, the decoder over the prior's quantiles)."""
    from torchvision.utils import save_image

    check_grid_sizes(n_samples, grid_steps)
    checkpoint = open_checkpoint(ckpt)
    vae = load(checkpoint)

    latents = io.BytesIO()
    torch.save(_split_codes(vae, checkpoint.path, split, data_root), latents)
    files = {"latents": (LATENTS.format(split=split), latents.getvalue())}
    for what, grid in generated_panels(vae, n_samples, grid_steps, seed).items():
        png = io.BytesIO()
        save_image(grid, png, format="png")
        files[what] = (PNG_NAMES[what], png.getvalue())
    return files


def write_files(out: Path, files: dict[str, tuple[str, bytes]]) -> dict[str, Path]:
    """Write ``files`` (:func:`sample_files`) into ``out``, all or none: each to a temp name in ``out``
    first, then every one renamed into place (a failed write removes the temp files and leaves the
    folder as it was); returns ``{what: path}``."""
    out.mkdir(parents=True, exist_ok=True)
    temps = {what: out / f".{name}.{os.getpid()}.tmp" for what, (name, _) in files.items()}
    try:
        for what, (_, contents) in files.items():
            temps[what].write_bytes(contents)
    except OSError as exc:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        raise UserError(f"cannot write into out={out} ({exc.strerror or exc}); nothing was written: free disk space or choose another out") from None
    for what, (name, _) in files.items():
        os.replace(temps[what], out / name)
    return {what: out / name for what, (name, _) in files.items()}


def write_samples(ckpt: str | Path | Checkpoint, out: Path, split: str = "test", n_samples: int = 64, grid_steps: int = 20, seed: int = 0,
                  data_root: str | Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Write the files of :func:`sample_files` into ``out``, all or none; returns the files written."""
    return write_files(Path(out), sample_files(ckpt, split, n_samples, grid_steps, seed, data_root))
