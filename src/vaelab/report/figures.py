"""Matplotlib figures of trained VAEs: loss curves, the latent line or plane, decoded manifolds,
reconstructions and traversals. Shared by the report (PNG files) and the notebook (inline).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show``; callers
save or display it. Latent coordinates are the encoder means ``m`` (no sampling noise); codes,
decoded images and reconstructions come from :mod:`vaelab.vae.views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import Tensor

from vaelab.vae import views

DIGIT_COLORS = "tab10"
# encoded means outside these percentiles are outliers for the axis range of decoded grids
RANGE_PERCENTILES = (1.0, 99.0)


@dataclass
class Curve:
    """One run's loss curves (validation, and training where given), nats per image."""

    label: str  # legend text, e.g. "paper seed 0"
    latent_dim: int
    epochs: Sequence[int]  # 1-based
    val_loss: Sequence[float]  # nats per image
    color: str | None = None
    linestyle: str = "-"
    marker: str | None = None  # e.g. one per seed, so runs of one colour family stay apart
    train_loss: Sequence[float] | None = None  # drawn thin and light in the same colour


def _image_row(images: np.ndarray) -> np.ndarray:
    """``[n, 784]`` pixel values -> one ``[28, 28 n]`` strip."""
    return np.concatenate(list(images.reshape(-1, 28, 28)), axis=1) if len(images) else np.zeros((28, 0))


def _codes(vae: torch.nn.Module, x: Tensor) -> np.ndarray:
    """Encoder means ``m`` of every image of ``x`` (``[n, latent_dim]`` numpy, for matplotlib)."""
    return views.encode(vae, x)[0].cpu().numpy()


def _pixels(vae: torch.nn.Module, c: np.ndarray) -> np.ndarray:
    """Decoded pixel means (``[n, 784]`` numpy) of latent points ``c`` (numpy)."""
    return views.decode(vae, torch.as_tensor(c, dtype=torch.float32)).cpu().numpy()


def loss_curves(curves: Sequence[Curve], title: str = "validation loss", zoom: bool = True) -> Figure:
    """Top row: the whole curves, one panel per latent dim, one line per run (validation, with the
    run's marker; training thin and light in the same colour), each run's validation minimum marked
    with a white dot, so the U (fall,
    minimum, rise as the decoder overfits) shows. With ``zoom``, a second row zooms on the minima:
    from a little before the earliest minimum to the last epoch, and a few nats above them.
    The top row's y axis starts at the 3rd epoch's values, so the first epochs do not flatten it."""
    dims = sorted({c.latent_dim for c in curves}) or [0]
    rows = 2 if zoom else 1
    fig = Figure(figsize=(5.5 * len(dims), 4.0 * rows), layout="constrained")
    grid = fig.subplots(rows, len(dims), squeeze=False)
    for col, d in enumerate(dims):
        mine = [c for c in curves if c.latent_dim == d]
        tops, bests = [], []  # (epoch, value) of each run's minimum
        for ax in grid[:, col]:
            for c in mine:
                y = np.asarray(c.val_loss, dtype=float)
                every = max(1, len(y) // 8)  # a few markers per curve, not one per epoch
                (line,) = ax.plot(c.epochs, y, c.linestyle, color=c.color, label=c.label, lw=1.2, marker=c.marker, markevery=every, ms=3.5)
                if c.train_loss is not None:
                    ax.plot(c.epochs, np.asarray(c.train_loss, dtype=float), "-", color=line.get_color(), lw=0.8, alpha=0.3)
                if np.isfinite(y).any():
                    i = int(np.nanargmin(y))
                    ax.plot(c.epochs[i], y[i], "o", mfc="white", mec=line.get_color(), mew=1.2, ms=5)
                    if ax is grid[0, col]:
                        tops.append(y[min(2, len(y) - 1)])  # from the 3rd epoch on: the plateau stays readable
                        bests.append((c.epochs[i], y[i]))
            ax.grid(alpha=0.3)
            ax.set(xlabel="epoch", ylabel="loss (nats per image)")
        low = min((v for _, v in bests), default=np.nan)
        # the top row also shows how far training loss falls below validation loss (the overfit gap)
        train_low = min((float(np.nanmin(c.train_loss)) for c in mine if c.train_loss is not None and np.isfinite(c.train_loss).any()), default=low)
        floor = min(low, train_low)
        if tops and np.isfinite(tops).all() and max(tops) > floor:
            pad = 0.05 * (max(tops) - floor)
            grid[0, col].set_ylim(floor - pad, max(tops) + pad)
        trained = any(c.train_loss is not None for c in mine)
        grid[0, col].set_title(f"latent dim {d}: whole run (white dot: minimum)")
        handles, _ = grid[0, col].get_legend_handles_labels()
        key = [Line2D([], [], color="0.3", lw=1.2, label="validation")] + (
            [Line2D([], [], color="0.3", lw=0.8, alpha=0.3, label="training (light)")] if trained else []
        )
        grid[0, col].legend(handles=handles + key, fontsize=7)
        if zoom and bests:
            first = min(e for e, _ in bests)
            last = max((c.epochs[-1] for c in mine if len(c.epochs)), default=first)
            high = max(v for _, v in bests)
            grid[1, col].set_xlim(max(1, first - 0.25 * (last - first + 4)), last + 1)
            grid[1, col].set_ylim(low - 0.3, high + 2.0)
            grid[1, col].set_title(f"latent dim {d}: around the minima (to +2 nats)")
    fig.suptitle(title)
    return fig


def _range(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, RANGE_PERCENTILES)
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1.0, float(hi) + 1.0)


def latent_plane(vae: torch.nn.Module, x: Tensor, labels: Tensor, title: str = "", steps: int = 20) -> Figure:
    """Latent dim 2: the images encoded into the plane, coloured by digit, beside the decoder's
    manifold over the same square (``steps x steps`` points between the 1st and 99th percentile of
    the encoded means on each axis)."""
    m = _codes(vae, x)
    y = labels.cpu().numpy()
    (x0, x1), (y0, y1) = _range(m[:, 0]), _range(m[:, 1])
    fig = Figure(figsize=(12, 5.6), layout="constrained")
    ax_scatter, ax_grid = fig.subplots(1, 2)
    sc = ax_scatter.scatter(m[:, 0], m[:, 1], c=y, cmap=DIGIT_COLORS, s=2, alpha=0.6, vmin=-0.5, vmax=9.5, rasterized=True)
    fig.colorbar(sc, ax=ax_scatter, ticks=range(10), label="digit")
    ax_scatter.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=0.8))
    ax_scatter.set(title=f"{len(y)} images encoded (m)", xlabel="c1", ylabel="c2")
    c1, c2 = np.linspace(x0, x1, steps), np.linspace(y1, y0, steps)  # top row = largest c2
    grid = np.stack(np.meshgrid(c1, c2), axis=-1).reshape(-1, 2)
    rows = _pixels(vae, grid).reshape(steps, steps, 784)
    ax_grid.imshow(np.concatenate([_image_row(r) for r in rows], axis=0), cmap="gray", extent=(x0, x1, y0, y1), aspect="auto")
    ax_grid.set(title="decoded manifold (dashed square)", xlabel="c1", ylabel="c2")
    fig.suptitle(title)
    return fig


def latent_line(vae: torch.nn.Module, x: Tensor, labels: Tensor, title: str = "", steps: int = 20, bins: int = 60) -> Figure:
    """Latent dim 1: the density of the encoded images along the line, one curve per digit
    (normalised histograms), above the decoded strip over the same range."""
    m = _codes(vae, x)[:, 0]
    y = labels.cpu().numpy()
    lo, hi = _range(m)
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    cmap = colormaps[DIGIT_COLORS]
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    ax_density, ax_strip = fig.subplots(2, 1, sharex=True, height_ratios=[6, 1])
    for digit in range(10):
        values = m[y == digit]
        if len(values):
            density, _ = np.histogram(values, bins=edges, density=True)
            ax_density.plot(centres, density, color=cmap(digit), label=str(digit), lw=1.2)
    ax_density.set(title=f"{len(m)} images encoded (m): density per digit", ylabel="density")
    ax_density.legend(ncol=10, fontsize=7, loc="upper center")
    c = np.linspace(lo, hi, steps)[:, None]
    ax_strip.imshow(_image_row(_pixels(vae, c)), cmap="gray", extent=(lo, hi, 0, 1), aspect="auto")
    ax_strip.set(xlabel="c", yticks=[], title="decoded strip")
    fig.suptitle(title)
    return fig


def reconstructions(originals: Tensor, rows: Sequence[tuple[str, Tensor]], title: str = "reconstructions") -> Figure:
    """Originals on top, then one row per model of its reconstructions (decoded means at ``m``,
    :func:`vaelab.vae.views.reconstruct`)."""
    all_rows = [("original", originals), *rows]
    fig = Figure(figsize=(1.0 * originals.shape[0] + 2, 1.1 * len(all_rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(all_rows), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, all_rows):
        ax.imshow(_image_row(images.detach().cpu().numpy()), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, loc="left", fontsize=8)
    fig.suptitle(title)
    return fig


def traversals(vae: torch.nn.Module, x: Tensor, steps: int = 11, span: float = 3.0) -> Figure:
    """For each image (row) and latent axis, decode ``m`` with that coordinate moved from −span to
    +span around its encoded value, the others kept."""
    m = _codes(vae, x)
    d = m.shape[1]
    offsets = np.linspace(-span, span, steps)
    fig = Figure(figsize=(1.0 * steps + 1, 1.1 * len(m) * d + 0.8), layout="constrained")
    axes = fig.subplots(len(m) * d, 1, squeeze=False)[:, 0]
    for i, mi in enumerate(m):
        for j in range(d):
            c = np.repeat(mi[None], steps, axis=0)
            c[:, j] += offsets
            ax = axes[i * d + j]
            ax.imshow(_image_row(_pixels(vae, c)), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"image {i}, c{j + 1}", loc="left", fontsize=8)
    fig.suptitle(f"traversals: each latent coordinate moved by {offsets[0]:+.1f} … {offsets[-1]:+.1f}")
    return fig
