"""The report's figures as PNG files: loss curves of every run, and the latent plane/line and
reconstructions of the best run of each row (drawn by :mod:`vaelab.report.figures`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.errors import UnsafeCheckpoint, UserError, warn
from vaelab.report.collect import Job, row_settings
from vaelab.report.tables import KL_ORDER


def _curves(jobs: Sequence[Job]):
    from matplotlib.colors import to_hex, to_rgb

    from vaelab.report.figures import Curve

    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    # a row's seeds: shades of the row's colour (darkest first) and a marker each; solid lines all,
    # so no seed reads as the light training curve drawn beside each validation curve
    markers = ["o", "s", "^", "D", "v", "P"]
    curves = []
    done = sorted((j for j in jobs if j.ok), key=lambda j: (j.family, KL_ORDER.get(str(j.kl), 9), j.seed or 0))
    colors = {label: palette[i % len(palette)] for i, label in enumerate(dict.fromkeys(j.label for j in done))}
    seeds = {label: sorted({j.seed or 0 for j in done if j.label == label}) for label in colors}

    def shade(label: str, seed: int) -> str:
        rank, n = seeds[label].index(seed), len(seeds[label])
        mix = 0.55 * rank / max(n - 1, 1)  # 0 (the row's colour) .. 0.55 of the way to white
        return to_hex(tuple(c + (1 - c) * mix for c in to_rgb(colors[label])))

    for j in done:
        hist = j.metrics.get("history", [])
        curves.append(
            Curve(
                label=f"{j.label} seed {j.seed}",
                latent_dim=int(j.latent_dim),
                epochs=[int(h["epoch"]) for h in hist],
                val_loss=[float(h["val/loss"]) for h in hist],
                train_loss=[float(h.get("train/loss", math.nan)) for h in hist],
                color=shade(j.label, j.seed or 0),
                marker=markers[seeds[j.label].index(j.seed or 0) % len(markers)],
            )
        )
    return curves


def _numeric_order(value: Any) -> tuple[int, tuple[float, ...], str]:
    """A sort key that orders numbers and lists of numbers (a hidden-width list such as ``[256]``)
    numerically, before anything else, which sorts as text."""
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        return 0, tuple(float(x) for x in items), ""
    except (TypeError, ValueError):
        return 1, (), str(value)


def _trials(jobs: Sequence[Job], varying: list[str]):
    """One panel per setting that differs between the jobs (an Optuna search's parameters): each
    completed job's minimal validation loss against its value of that setting."""
    import matplotlib.pyplot as plt

    done = [j for j in jobs if j.ok and math.isfinite(j.value("val_loss_min"))]
    fig, axes = plt.subplots(1, len(varying), figsize=(4.2 * len(varying), 3.6), squeeze=False)
    for ax, key in zip(axes[0], varying):
        values = [j.settings.get(key) for j in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            xs = [float(v) for v in values]
            if min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
        else:  # lists, strings: one position per distinct value, numbers in numeric order ([64] before [128])
            labels = [str(v) for v in sorted({str(v): v for v in values}.values(), key=_numeric_order)]
            xs = [labels.index(str(v)) for v in values]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.scatter(xs, [j.value("val_loss_min") for j in done], color="tab:blue")
        for x, j in zip(xs, done):
            ax.annotate(j.name, (x, j.value("val_loss_min")), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(key)
        ax.set_ylabel("min val loss (nats per image)")
    fig.suptitle("trials: minimal validation loss against each setting that differs (label: job)")
    fig.tight_layout()
    return fig


def check_checkpoints(jobs: Sequence[Job]) -> None:
    """Read each completed job's best checkpoint (safely) and raise :class:`UnsafeCheckpoint` for
    one that holds objects vaelab does not store: the report is refused with its line before it
    writes anything. A checkpoint missing or damaged is left to :func:`write_figures`, which skips
    that job's figures with a warning."""
    from vaelab.runs.reading import best_checkpoint, open_checkpoint

    for job in jobs:
        if not job.ok:
            continue
        try:
            open_checkpoint(best_checkpoint(job.dir), key=None)
        except UnsafeCheckpoint:
            raise
        except UserError:  # warned about by write_figures, which needs it
            continue


def _best_of_rows(jobs: Sequence[Job]) -> list[Job]:
    """The completed job of least minimal validation loss of each row (label and latent dim), in
    the tables' order: latent dim, model family, penalty."""
    best: dict[tuple[str, int], Job] = {}
    for j in jobs:
        if j.ok and math.isfinite(j.value("val_loss_min")):
            key = (j.label, int(j.latent_dim))
            if key not in best or j.value("val_loss_min") < best[key].value("val_loss_min"):
                best[key] = j
    return [j for _, j in sorted(best.items(), key=lambda kv: (kv[0][1], kv[1].family, KL_ORDER.get(str(kv[1].kl), 9)))]


def _network_and_data(job: Job, data_root: str | None, cache: dict[tuple, Any]) -> tuple[Any, Any]:
    """The network of ``job``'s best checkpoint and its run's data module (one per data setting, kept
    in ``cache``). A missing or damaged file is a :class:`UserError`."""
    from vaelab.runs.reading import best_checkpoint, datamodule_for_run, load_module, run_data_settings

    vae = load_module(best_checkpoint(job.dir)).vae
    settings = run_data_settings(job.dir)
    key = (data_root or settings.get("root"), settings.get("binarize"), settings.get("val_size"), settings.get("split_seed"))
    if key not in cache:
        cache[key] = datamodule_for_run(job.dir, root=data_root)
    return vae, cache[key]


def write_figures(jobs: Sequence[Job], out: Path, data_root: str | None) -> dict[str, Path]:
    """All PNGs; returns {name: path}. Figures that need the data or a checkpoint are skipped with a
    warning (never silently) when those cannot be loaded."""
    from vaelab.report import figures
    from vaelab.vae import views

    written: dict[str, Path] = {}

    def save(name: str, fig) -> None:
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written[name] = path

    save(
        "val_loss_curves",
        figures.loss_curves(
            _curves(jobs), "loss per epoch of every run: validation (strong line), training (light line); white dot: minimal validation loss"
        ),
    )

    varying = row_settings(jobs)
    if varying:
        save("trials", _trials(jobs, varying))

    data_cache: dict[tuple, Any] = {}
    recon_rows, originals = [], None
    for job in _best_of_rows(jobs):
        label, dim, stem = job.label, int(job.latent_dim), job.label.replace(" ", "_")
        try:
            vae, dm = _network_and_data(job, data_root, data_cache)
        except UnsafeCheckpoint:
            raise  # a checkpoint that could run code is not a missing figure: the report stops with its line
        except UserError as err:
            warn(f"no latent/reconstruction figures for {job.dir}: {err}")
            continue
        x, labels = dm.splits["test"], dm.labels["test"]
        title = f"{label} penalty, latent dim {dim}, seed {job.seed} (best of its row), test set"
        if dim == 2:
            save(f"latent_plane_d2_{stem}", figures.latent_plane(vae, x, labels, title))
        elif dim == 1:
            save(f"latent_line_d1_{stem}", figures.latent_line(vae, x, labels, title))
        if originals is None:
            originals = x[:12]
        recon_rows.append((f"{label} d={dim}", views.reconstruct(vae, originals)))
    if originals is not None:
        save("reconstructions", figures.reconstructions(originals, recon_rows, "test images and reconstructions (decoded means at m)"))
    return written
