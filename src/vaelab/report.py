"""Report entry point: ``python -m vaelab.report SWEEP_DIR... [--out results]`` (console script
``vaelab-report``).

Reads every job of the given multirun folders (``metrics.json``, ``eval.json``, ``status.json``)
and writes to ``--out``:

- ``val_loss.csv`` / ``val_loss.md``: one row per (kl form, latent dim): the minimal validation
  loss, mean ± sample std (n − 1) over seeds (the derivation report's number), the epoch it was
  reached at, test loss, test negative ELBO, test importance-weighted NLL, wall time and the number
  of seeds; failed or missing jobs are listed in the row, never dropped;
- ``runs.csv``: one row per job, the numbers the table is computed from;
- PNG figures: validation-loss curves of every run, the latent plane (d=2) or line (d=1) of the
  best run of each row with its decoded manifold, and reconstructions.

The table and figures are also logged to a W&B run of its own (job type ``report``) in the
sweeps' group; offline unless ``WANDB_MODE`` says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import math
import os
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaelab.errors import UserError
from vaelab.runs import read_json

KL_ORDER = {"paper": 0, "analytic": 1}
# per-seed numbers summarised in the table: (csv stem, metrics/eval key, markdown header)
SUMMARISED = (
    ("val_loss_min", "val_loss_min", "min val loss"),
    ("val_loss_min_epoch", "val_loss_min_epoch", "epoch of min"),
    ("test_loss", "test_loss", "test loss"),
    ("test_nelbo", "test_nelbo", "test −ELBO"),
    ("test_iw_nll", "test_iw_nll", "test IW NLL"),
    ("wall_time_s", "wall_time_s", "train time per run (s)"),
)


@dataclass
class Job:
    """One job of a sweep, whatever became of it."""

    sweep: Path
    name: str  # the job's folder name (Hydra job number)
    status: str  # completed | failed | running | not started | unknown
    error: str = ""
    kl: str | None = None
    latent_dim: int | None = None
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.sweep / self.name

    @property
    def ok(self) -> bool:
        return self.status == "completed" and bool(self.metrics)

    @property
    def converged(self) -> bool:
        """Whether the run passed its minimum: the minimal validation loss came before its last
        epoch. A run whose minimum is its last epoch (stopped by the epoch cap while still
        improving) gives an upper bound on its minimum, not the minimum."""
        return self.ok and 0 < int(self.metrics.get("val_loss_min_epoch", 0)) < int(self.metrics.get("epochs", 0))

    def value(self, key: str) -> float:
        """A number from metrics.json, else eval.json; NaN when neither has it."""
        v = self.metrics.get(key, self.evaluation.get(key))
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan

    def why_missing(self) -> str:
        if self.status == "completed" and not self.metrics:
            return "no metrics.json"
        first = self.error.strip().splitlines()[0] if self.error.strip() else ""
        return f"{self.status}: {first}" if first else self.status


def _job_config(job_dir: Path) -> dict[str, Any]:
    """kl, latent_dim and seed of a job from Hydra's saved config (present even when it failed)."""
    from omegaconf import OmegaConf

    path = job_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = OmegaConf.load(path)
        return {"kl": OmegaConf.select(cfg, "model.kl"), "latent_dim": OmegaConf.select(cfg, "model.latent_dim"), "seed": OmegaConf.select(cfg, "seed")}
    except Exception:
        return {}


def _expected_jobs(sweep: Path) -> list[list[str]]:
    """The override list of every job the sweep's command line asked for (Hydra's basic sweeper:
    the cartesian product of the comma-separated values, in the order given), from multirun.yaml."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = sweep / "multirun.yaml"
    if not path.is_file():
        return []
    try:
        task = list(OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task") or [])
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:
        return []
    lists = []
    for text, ov in zip(task, parsed):
        if ov.is_sweep_override():
            key = ov.get_key_element()
            lists.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            lists.append([text])
    return [list(combo) for combo in itertools.product(*lists)]


def _compose_job(overrides: list[str]) -> dict[str, Any]:
    """kl, latent_dim and seed of a job that never started, by composing its overrides."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vaelab.config import CONF_DIR

    try:
        import vaelab.train  # noqa: F401  (registers the config's resolvers)

        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        return {"kl": OmegaConf.select(cfg, "model.kl"), "latent_dim": OmegaConf.select(cfg, "model.latent_dim"), "seed": OmegaConf.select(cfg, "seed")}
    except Exception:
        return {}


def sweep_command(sweep: Path) -> str | None:
    """The training command line of a sweep, rebuilt from Hydra's multirun.yaml."""
    from omegaconf import OmegaConf

    path = sweep / "multirun.yaml"
    if not path.is_file():
        return None
    task = OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task") or []
    return "python -m vaelab.train -m " + " ".join(shlex.quote(str(t)) for t in task)


def collect_jobs(sweeps: Sequence[Path]) -> list[Job]:
    """Every job of every sweep: the folders Hydra made, plus jobs the command line asked for that
    have no folder (the sweep was stopped before them)."""
    from vaelab.sweep import job_dirs

    jobs: list[Job] = []
    for sweep in sweeps:
        if not sweep.is_dir():
            raise UserError(f"sweep dir {sweep} does not exist: give the hydra.sweep.dir of a finished multirun")
        found = {p.name: p for p in job_dirs(sweep)}
        for p in sweep.iterdir():  # a job dir with metrics.json but no status.json still counts
            if p.is_dir() and (p / "metrics.json").is_file():
                found.setdefault(p.name, p)
        for name, path in found.items():
            status = read_json(path / "status.json")
            metrics = read_json(path / "metrics.json")
            info = {k: metrics.get(k) for k in ("kl", "latent_dim", "seed")} if metrics else _job_config(path)
            state = status.get("status", "completed" if metrics else "unknown")
            jobs.append(Job(sweep, name, state, status.get("error", ""), info.get("kl"), info.get("latent_dim"), info.get("seed"), metrics, read_json(path / "eval.json")))
        for num, overrides in enumerate(_expected_jobs(sweep)):
            if str(num) not in found:
                info = _compose_job(overrides)
                jobs.append(Job(sweep, str(num), "not started", "", info.get("kl"), info.get("latent_dim"), info.get("seed")))
    if not jobs:
        raise UserError(f"no jobs found in {', '.join(map(str, sweeps))}: give multirun folders (hydra.sweep.dir) whose job folders hold status.json/metrics.json")
    return jobs


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def table_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per (kl form, latent dim) with mean and std over the completed seeds."""
    groups: dict[tuple[str, int], list[Job]] = {}
    for job in jobs:
        groups.setdefault((str(job.kl), int(job.latent_dim) if job.latent_dim is not None else -1), []).append(job)
    rows = []
    for (kl, dim), members in sorted(groups.items(), key=lambda kv: (KL_ORDER.get(kv[0][0], 9), kv[0][0], kv[0][1])):
        done = [j for j in members if j.ok]
        row: dict[str, Any] = {"kl": kl, "latent_dim": dim if dim >= 0 else "unknown"}
        for stem, key, _ in SUMMARISED:
            row[f"{stem}_mean"], row[f"{stem}_std"] = _mean_std([j.value(key) for j in done])
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
        rows.append(row)
    return rows


def run_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per job, with its status, for runs.csv."""
    rows = []
    for j in sorted(jobs, key=lambda j: (str(j.sweep), int(j.name) if j.name.isdigit() else 0, j.name)):
        row = {"sweep": j.sweep.name, "job": j.name, "kl": j.kl, "latent_dim": j.latent_dim, "seed": j.seed, "status": j.status if j.ok else j.why_missing()}
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


def headline(rows: Sequence[dict[str, Any]]) -> str:
    """The derivation report's sentence, filled in from the paper-penalty rows (or the first kl form)."""
    kls = [r["kl"] for r in rows]
    kl = "paper" if "paper" in kls else (kls[0] if kls else None)
    picked = [r for r in rows if r["kl"] == kl and r["latent_dim"] in (1, 2)]
    if not picked:
        return ""
    values = " and ".join(f"**{_fmt(r['val_loss_min_mean'], r['val_loss_min_std'])}**" for r in picked)
    dims = " and ".join(str(r["latent_dim"]) for r in picked)
    seeds = "/".join(str(r["n_seeds"]) for r in picked)
    text = f"The minimal loss of the validation set is {values} for hidden (latent) dimension {dims} ({kl} penalty, nats per image, mean ± std over {seeds} seeds)."
    unconverged = sum(r["n_not_converged"] for r in picked)
    if unconverged:
        runs = sum(r["n_seeds"] for r in picked)
        text += (f" **{unconverged} of these {runs} runs had not converged** (minimum at their last epoch), "
                 "so those numbers are upper bounds on the minimum, not minima.")
    return text


def markdown(rows: Sequence[dict[str, Any]], provenance: dict[str, str]) -> str:
    """The table as Markdown, with the headline sentence and where the numbers came from."""
    iw_k = ",".join(sorted({r["iw_k"] for r in rows if r["iw_k"]})) or "–"
    header = ["kl form", "latent dim"] + [h if s != "test_iw_nll" else f"{h} (k={iw_k})" for s, _, h in SUMMARISED] + ["seeds"]
    lines = [
        "# Minimal validation loss, nats per image",
        "",
        headline(rows),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = [str(r["kl"]), str(r["latent_dim"])]
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
        lines += ["", f"¹ {unconverged} of {sum(r['n_seeds'] for r in rows)} runs not converged: their minimal validation loss is at "
                  "their last epoch (see `converged` and `stop_reason` in runs.csv), so the row's value is an upper bound on the minimum. "
                  "Raise trainer.max_epochs until early stopping ends every run."]
    lines += [
        "",
        "Mean ± sample standard deviation (n − 1) over the completed seeds; epochs are 1-based. "
        "Loss = BCE reconstruction + the row's penalty; −ELBO = BCE + exact KL (one fixed noise draw per image); "
        "IW NLL = importance-weighted −log p(x) with k posterior draws per image. With grey-level pixels "
        "(data.binarize=none) the BCE is a cross-entropy, not a normalised log-likelihood; with binarised pixels "
        "−ELBO and IW NLL are in nats of the Bernoulli likelihood.",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in provenance.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- figures
def _curves(jobs: Sequence[Job]):
    from vaelab.figures import Curve

    colors = {"paper": "tab:blue", "analytic": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    curves = []
    for j in sorted((j for j in jobs if j.ok), key=lambda j: (KL_ORDER.get(str(j.kl), 9), j.seed or 0)):
        hist = j.metrics.get("history", [])
        curves.append(
            Curve(
                label=f"{j.kl} seed {j.seed}",
                latent_dim=int(j.latent_dim),
                epochs=[int(h["epoch"]) for h in hist],
                val_loss=[float(h["val/loss"]) for h in hist],
                train_loss=[float(h.get("train/loss", math.nan)) for h in hist],
                color=colors.get(str(j.kl)),
                linestyle=styles[(j.seed or 0) % len(styles)],
            )
        )
    return curves


def write_figures(jobs: Sequence[Job], out: Path, data_root: str | None) -> dict[str, Path]:
    """All PNGs; returns {name: path}. Figures that need the data or a checkpoint are skipped with a
    warning (never silently) when those cannot be loaded."""
    import torch

    from vaelab import figures
    from vaelab.runs import best_checkpoint, datamodule_for_run, load_module, run_data_settings

    written: dict[str, Path] = {}

    def save(name: str, fig) -> None:
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written[name] = path

    save("val_loss_curves", figures.loss_curves(_curves(jobs), "loss per epoch of every run: validation (solid), training (dashed); dot: minimal validation loss"))

    best: dict[tuple[str, int], Job] = {}
    for j in jobs:
        if j.ok and math.isfinite(j.value("val_loss_min")):
            key = (str(j.kl), int(j.latent_dim))
            if key not in best or j.value("val_loss_min") < best[key].value("val_loss_min"):
                best[key] = j
    data_cache: dict[tuple, Any] = {}
    recon_rows, originals = [], None
    for (kl, dim), job in sorted(best.items(), key=lambda kv: (kv[0][1], KL_ORDER.get(kv[0][0], 9))):
        try:
            module = load_module(best_checkpoint(job.dir))
            settings = run_data_settings(job.dir)
            key = (data_root or settings.get("root"), settings.get("binarize"), settings.get("val_size"), settings.get("split_seed"))
            if key not in data_cache:
                data_cache[key] = datamodule_for_run(job.dir, root=data_root)
            dm = data_cache[key]
        except UserError as err:
            print(f"warning: no latent/reconstruction figures for {job.dir}: {err}", file=sys.stderr, flush=True)
            continue
        x, labels = dm.splits["test"], dm.labels["test"]
        title = f"{kl} penalty, latent dim {dim}, seed {job.seed} (best of its row), test set"
        if dim == 2:
            save(f"latent_plane_d2_{kl}", figures.latent_plane(module.vae, x, labels, title))
        elif dim == 1:
            save(f"latent_line_d1_{kl}", figures.latent_line(module.vae, x, labels, title))
        if originals is None:
            originals = x[:12]
        with torch.no_grad():
            recon_rows.append((f"{kl} d={dim}", figures.reconstruct(module.vae, originals)))
    if originals is not None:
        save("reconstructions", figures.reconstructions(originals, recon_rows, "test images and reconstructions (decoded means at m)"))
    return written


# ---------------------------------------------------------------------------------------- W&B
def log_wandb(jobs: Sequence[Job], rows: Sequence[dict[str, Any]], pngs: dict[str, Path], out: Path, wandb_dir: Path, mode: str, provenance: dict[str, str]) -> str | None:
    """The table (a W&B Table) and figures in a run of job type ``report`` in the sweeps' group."""
    import wandb

    from vaelab.wandb_run import resolve_mode

    groups = [((read_json(j.dir / "run_info.json").get("config") or {}).get("logger") or {}).get("wandb", {}) for j in jobs]
    wb = next((g for g in groups if g), {})
    group = wb.get("group") or jobs[0].sweep.name
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=wb.get("project", "vaelab"),
        group=group,
        job_type="report",
        name=f"report_{group}",
        tags=["report"],
        dir=str(wandb_dir),
        mode=resolve_mode(mode),
        config={"provenance": provenance, "out": str(out)},
        reinit="finish_previous",
    )
    columns = list(rows[0])
    table = wandb.Table(columns=columns, data=[[r[c] if not isinstance(r[c], float) or math.isfinite(r[c]) else None for c in columns] for r in rows])
    run.log({"val_loss_table": table, **{f"figures/{k}": wandb.Image(str(p)) for k, p in pngs.items()}})
    for r in rows:
        run.summary[f"val_loss_min/{r['kl']}_d{r['latent_dim']}"] = r["val_loss_min_mean"]
    run_dir = run.dir
    run.finish()
    return run_dir


# ------------------------------------------------------------------------------------ entry
def make_report(sweeps: Sequence[Path], out: Path, data_root: str | None = None, command: str | None = None, wandb_mode: str | None = "offline", wandb_dir: Path | None = None) -> list[dict[str, Any]]:
    """Write the tables and figures of ``sweeps`` into ``out``; returns the table rows."""
    import matplotlib

    matplotlib.use("Agg")
    from vaelab.provenance import git_commit, machine

    jobs = collect_jobs(sweeps)
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(jobs)
    commits = sorted({str(j.metrics.get("git_commit")) for j in jobs if j.ok})
    machines = sorted({str(read_json(j.dir / "run_info.json").get("machine")) for j in jobs if j.ok} - {"None"})
    sweep_cmds = [c for c in (sweep_command(s) for s in sweeps) if c]
    provenance = {
        "commit (training runs)": ", ".join(commits) or "unknown",
        "commit (report)": git_commit() or "unknown",
        "command": command or "python -m vaelab.report " + " ".join(shlex.quote(str(s)) for s in sweeps),
        "sweep commands": " ; ".join(f"`{c}`" for c in sweep_cmds) or "unknown",
        "machine": "; ".join(machines) or machine(),
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "sweeps": ", ".join(str(s) for s in sweeps),
    }
    write_csv(out / "val_loss.csv", rows)
    write_csv(out / "runs.csv", run_rows(jobs))
    (out / "val_loss.md").write_text(markdown(rows, provenance))
    print((out / "val_loss.md").read_text(), flush=True)
    pngs = write_figures(jobs, out, data_root)
    print(f"wrote {out}/val_loss.csv, val_loss.md, runs.csv and {len(pngs)} figures: {', '.join(p.name for p in pngs.values())}", flush=True)
    if wandb_mode:
        where = log_wandb(jobs, rows, pngs, out, wandb_dir or (sweeps[0].parent / "report"), wandb_mode, provenance)
        print(f"W&B report run ({wandb_mode}): {where}", flush=True)
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vaelab-report", description="Tables and figures from vaelab.train multiruns.")
    p.add_argument("sweeps", nargs="+", type=Path, help="multirun folders (hydra.sweep.dir), e.g. outputs/reproduce/<time>/paper")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    p.add_argument("--data-root", default=os.environ.get("VAELAB_DATA_ROOT"), help="MNIST root for the latent figures (default: VAELAB_DATA_ROOT, else each run's own data.root)")
    p.add_argument("--command", default=None, help="the command that made the sweeps, for the provenance lines (default: this report's command)")
    p.add_argument("--wandb-mode", default=os.environ.get("WANDB_MODE", "offline"), choices=["offline", "online", "disabled"], help="W&B mode of the report run (default: WANDB_MODE, else offline)")
    p.add_argument("--wandb-dir", type=Path, default=None, help="where the W&B report run goes (default: <first sweep>/../report)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    from vaelab.config import exit_with

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        make_report(args.sweeps, args.out, args.data_root, args.command, None if args.wandb_mode == "disabled" else args.wandb_mode, args.wandb_dir)
    except UserError as err:
        exit_with(err)


if __name__ == "__main__":
    main()
