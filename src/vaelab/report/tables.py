"""The report's numbers: per-run rows (runs.csv), per-row statistics over seeds (val_loss.csv), the
headline sentence and the Markdown table, nats per image."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.report.collect import Job, Objective, family, row_settings
from vaelab.training.module import DEFAULT_NET
from vaelab.vae.loss import KL_FORMS
from vaelab.vae.nets import short_name

# the columns every row has before its settings, and the facts after its statistics
BASE_COLUMNS = ("data", "model", "kl", "latent_dim")
# (a search's rows also carry their trials and objective value: SEARCH_FACTS)
ROW_FACTS = ("iw_k", "n_iw", "epochs", "seeds", "n_seeds", "n_not_converged", "stop_reasons", "n_jobs", "missing")
SEARCH_FACTS = ("trials", "objective")
# rows in the order the losses are defined (eq. 3 first), unknown forms last
KL_ORDER = {kl: i for i, kl in enumerate(KL_FORMS)}
# per-seed numbers summarised in the table: (csv stem, metrics/eval key, markdown header)
SUMMARISED = (
    ("val_loss_min", "val_loss_min", "min val loss"),
    ("val_loss_min_epoch", "val_loss_min_epoch", "epoch of min"),
    ("test_loss", "test_loss", "test loss"),
    ("test_nelbo", "test_nelbo", "test −ELBO"),
    ("test_iw_nll", "test_iw_nll", "test IW NLL"),
    ("wall_time_s", "wall_time_s", "train time per run (s)"),
)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def table_rows(jobs: Sequence[Job], objective: Objective | None = None) -> list[dict[str, Any]]:
    """One row per (data set, network, kl form, latent dim, and every other setting that differs
    between the jobs: :func:`~vaelab.report.collect.row_settings`), with mean and std over the
    completed seeds; MNIST and the MLP of the derivation report first. Jobs are pooled only when
    they differ in nothing but the seed.

    For an Optuna search (``objective``) the rows are its trials, best first by the search's own
    objective, each with its job numbers (``trials``) and objective value (``objective``)."""
    varying = row_settings(jobs)
    groups: dict[tuple[Any, ...], list[Job]] = {}
    for job in jobs:
        dim = int(job.latent_dim) if job.latent_dim is not None else -1
        key = (job.dataset, short_name(job.net), str(job.kl), dim, *(repr(job.settings.get(k)) for k in varying))
        groups.setdefault(key, []).append(job)
    rows = []

    def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
        data, arch, kl, dim = key[:4]
        return (data != "mnist", data, arch != short_name(DEFAULT_NET), arch, KL_ORDER.get(kl, 9), kl, dim, *key[4:])

    for key, members in sorted(groups.items(), key=lambda kv: order(kv[0])):
        data, arch, kl, dim = key[:4]
        done = [j for j in members if j.ok]
        row: dict[str, Any] = {"data": data, "model": arch, "kl": kl, "latent_dim": dim if dim >= 0 else "unknown"}
        row.update({k: _setting(members[0].settings.get(k)) for k in varying})
        for stem, key_, _ in SUMMARISED:
            row[f"{stem}_mean"], row[f"{stem}_std"] = _mean_std([j.value(key_) for j in done])
        ks = sorted({int(j.evaluation["k"]) for j in done if "k" in j.evaluation})
        row["iw_k"] = ",".join(map(str, ks))
        row["n_iw"] = sum(1 for j in done if math.isfinite(j.value("test_iw_nll")))
        row["epochs"] = ",".join(map(str, sorted({int(j.metrics.get("epochs", 0)) for j in done})))
        row["seeds"] = ",".join(str(j.seed) for j in sorted(done, key=lambda j: (j.seed is None, j.seed or 0)))
        row["n_seeds"] = len(done)
        row["n_not_converged"] = sum(1 for j in done if not j.converged)
        row["stop_reasons"] = ",".join(sorted({str(j.metrics.get("stop_reason", "unknown")) for j in done}))
        row["n_jobs"] = len(members)
        missing = [j for j in members if not j.ok]
        row["missing"] = "; ".join(f"job {j.sweep.name}/{j.name} seed {j.seed} ({j.why_missing()})" for j in missing)
        if objective is not None:
            row["trials"] = ",".join(j.name for j in members)
            row["objective"] = _mean_std([j.value(objective.metric) for j in done])[0]
        rows.append(row)
    if objective is not None:  # stable: rows of equal value keep the order above
        rows.sort(key=lambda r: objective.best_first(r["objective"]))
    return rows


def _setting(value: Any) -> str:
    """A setting as a table cell: text, so a column has one type (W&B tables insist) and a number
    keeps the digits it was given."""
    return str(value)


def run_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per job, with its status and the settings that tell the jobs apart, for runs.csv."""
    varying = row_settings(jobs)
    rows = []
    for j in sorted(jobs, key=lambda j: (str(j.sweep), int(j.name) if j.name.isdigit() else 0, j.name)):
        row = {
            "sweep": j.sweep.name,
            "job": j.name,
            "data": j.dataset,
            "model": short_name(j.net),
            "kl": j.kl,
            "latent_dim": j.latent_dim,
            "seed": j.seed,
            **{k: _setting(j.settings.get(k)) for k in varying},
            "status": j.status if j.ok else j.why_missing(),
        }
        for _, key, _ in SUMMARISED:
            row[key] = j.value(key)
        row["epochs"] = j.metrics.get("epochs")
        row["max_epochs"] = j.metrics.get("max_epochs")
        row["stop_reason"] = j.metrics.get("stop_reason")
        row["converged"] = "yes" if j.converged else ("not converged" if j.ok else "")
        row["iw_k"] = j.evaluation.get("k")
        row["git_commit"] = j.metrics.get("git_commit")
        rows.append(row)
    return rows


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if math.isfinite(std) else f"{mean:.{digits}f}"


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV; floats with 6 decimals so reruns compare as text."""
    columns = list(rows[0]) if rows else []
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})


def _setting_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The setting columns of the rows (:func:`~vaelab.report.collect.row_settings`)."""
    facts = (*BASE_COLUMNS, *ROW_FACTS, *SEARCH_FACTS)
    return [k for k in (rows[0] if rows else {}) if k not in facts and not k.endswith(("_mean", "_std"))]


def readable(cell: str) -> str:
    """A setting as the Markdown table and the headline show it: a number with 4 significant
    digits (a learning rate drawn by Optuna has 17), anything else as it is; runs.csv and
    val_loss.csv keep every digit."""
    try:
        value = float(cell)
    except ValueError:
        return cell
    if cell.strip().lstrip("-").isdigit() or not math.isfinite(value):
        return cell
    return f"{value:.4g}"


def search_headline(rows: Sequence[dict[str, Any]], jobs: Sequence[Job], objective: Objective) -> str:
    """An Optuna search's sentence: its best trial by the search's objective and direction, with
    its settings, the range of the completed trials, and how many were pruned or failed."""
    done = [r for r in rows if math.isfinite(r["objective"])]
    states = [j.status for j in jobs]
    others = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states) if s != "completed")
    counted = f"{len(jobs)} trials ({states.count('completed')} completed{', ' + others if others else ''})"
    if not done:
        return f"No trial of this search completed: {counted}."
    best = done[0]
    settings = ", ".join(f"{k}={readable(str(best[k]))}" for k in _setting_columns(rows))
    values = sorted(r["objective"] for r in done)
    return (
        f"The best of {counted} by {objective.metric} ({objective.direction}) is trial {best['trials']}: "
        f"{objective.metric} **{best['objective']:.2f}**" + (f" with {settings}" if settings else "") +
        f" (data {best['data']}, model {best['model']}, {best['kl']} penalty, latent dimension {best['latent_dim']}; "
        f"the completed trials ranged {values[0]:.2f}–{values[-1]:.2f})."
    )  # fmt: skip


def headline(rows: Sequence[dict[str, Any]]) -> str:
    """The derivation report's sentence, filled in from the paper-penalty rows (or the first kl form)
    of the first network and data set (the report's MLP on MNIST when present)."""
    if not rows:
        return ""
    data, arch = rows[0]["data"], rows[0]["model"]
    # the first row's network, data set and other settings (the first trial of a search)
    first = [rows[0][k] for k in _setting_columns(rows)]
    ours = [r for r in rows if (r["data"], r["model"]) == (data, arch) and [r[k] for k in _setting_columns(rows)] == first]
    kls = [r["kl"] for r in ours]
    kl = "paper" if "paper" in kls else kls[0]
    picked = [r for r in ours if r["kl"] == kl and r["latent_dim"] in (1, 2)]
    if not picked:
        return ""
    others = len({(r["data"], r["model"]) for r in rows}) > 1
    what = f"{kl} penalty" + (f", {arch} network on {data}" if others or family(arch, data) else "")
    values = " and ".join(f"**{_fmt(r['val_loss_min_mean'], r['val_loss_min_std'])}**" for r in picked)
    dims = " and ".join(str(r["latent_dim"]) for r in picked)
    seeds = "/".join(str(r["n_seeds"]) for r in picked)
    text = f"The minimal loss of the validation set is {values} for hidden (latent) dimension {dims} ({what}, nats per image, mean ± std over {seeds} seeds)."
    unconverged = sum(r["n_not_converged"] for r in picked)
    if unconverged:
        runs = sum(r["n_seeds"] for r in picked)
        text += (
            f" **{unconverged} of these {runs} runs had not converged** (minimum at their last epoch), "
            "so those numbers are upper bounds on the minimum, not minima."
        )
    return text


def markdown(rows: Sequence[dict[str, Any]], provenance: dict[str, str], published: Sequence[str] = (), lead: str | None = None) -> str:
    """The table as Markdown, with the headline sentence (``lead`` instead when given: a search's
    :func:`search_headline`) and where the numbers came from; ``published``: the lines of
    :func:`vaelab.report.reference.beside`, after the table's notes. A search's table has its
    trials first, the best in bold."""
    iw_k = ",".join(sorted({r["iw_k"] for r in rows if r["iw_k"]})) or "–"
    # data set and network columns only when the rows differ in them (the headline names a lone one)
    split = [key for key in ("data", "model") if len({r[key] for r in rows}) > 1]
    settings = _setting_columns(rows)
    search = bool(rows) and "trials" in rows[0]
    header = [*(["trial"] if search else []), *split, "kl form", "latent dim", *settings]
    header += [h if s != "test_iw_nll" else f"{h} (k={iw_k})" for s, _, h in SUMMARISED] + ["seeds"]
    lines = [
        "# Minimal validation loss, nats per image",
        "",
        lead if lead is not None else headline(rows),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = [*(str(r[key]) for key in split), str(r["kl"]), str(r["latent_dim"]), *(readable(str(r[k])) for k in settings)]
        if search:  # the best trial (the first row, when it completed) in bold
            cells.insert(0, f"**{r['trials']}** (best)" if r is rows[0] and math.isfinite(r["objective"]) else str(r["trials"]))
        for stem, _, _ in SUMMARISED:
            digits = 1 if stem in ("val_loss_min_epoch", "wall_time_s") else 2
            cell = _fmt(r[f"{stem}_mean"], r[f"{stem}_std"], digits)
            if stem == "test_iw_nll" and 0 < r["n_iw"] < r["n_seeds"]:
                cell += f" (evaluated: {r['n_iw']} of {r['n_seeds']} seeds)"
            cells.append(cell)
        seeds = f"{r['n_seeds']}/{r['n_jobs']}"
        if r["n_not_converged"]:
            seeds += f", {r['n_not_converged']} not converged¹"
        if r["missing"]:
            seeds += f", missing: {r['missing']}"
        cells.append(seeds)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    unconverged = sum(r["n_not_converged"] for r in rows)
    if unconverged:
        lines += [
            "",
            f"¹ {unconverged} of {sum(r['n_seeds'] for r in rows)} runs not converged: their minimal validation loss is at "
            "their last epoch (see `converged` and `stop_reason` in runs.csv), so the row's value is an upper bound on the minimum. "
            "Raise trainer.max_epochs until early stopping ends every run.",
        ]
    lines += [
        "",
        "Mean ± sample standard deviation (n − 1) over the completed seeds; epochs are 1-based. "
        "Loss = BCE reconstruction + the row's penalty; −ELBO = BCE + exact KL (one fixed noise draw per image); "
        "IW NLL = importance-weighted −log p(x) with k posterior draws per image. With grey-level pixels "
        "(data.binarize=none) the BCE is a cross-entropy, not a normalised log-likelihood; with binarised pixels "
        "−ELBO and IW NLL are in nats of the Bernoulli likelihood.",
        "",
        *published,
    ]
    lines += [f"- {k}: {v}" for k, v in provenance.items()]
    return "\n".join(lines) + "\n"
