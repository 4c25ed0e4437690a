"""Report entry point: ``python -m vaelab.report SWEEP_DIR... [--out DIR]`` (console script
``vaelab-report``).

Reads every job of the given multirun folders (``metrics.json``, ``eval.json``, ``status.json``)
and writes to ``--out`` (default: ``<first sweep>/report/``; the committed ``results/`` is only
written when asked for, ``--out results``):

- ``val_loss.csv`` / ``val_loss.md``: one row per (kl form, latent dim, and any other setting that
  differs between the jobs, shown as a column: jobs are pooled only over seeds): the minimal validation
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
import datetime as dt
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.errors import UserError
from vaelab.report.collect import collect_jobs, search_objective, sweep_command
from vaelab.report.plots import check_checkpoints, write_figures
from vaelab.report.reference import beside, experiment_references
from vaelab.report.tables import markdown, run_rows, search_headline, table_rows, write_csv
from vaelab.runs.layout import RUN_INFO, read_json


def make_report(
    sweeps: Sequence[Path],
    out: Path,
    data_root: str | None = None,
    command: str | None = None,
    wandb_mode: str | None = "offline",
    wandb_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Write the tables and figures of ``sweeps`` into ``out``; returns the table rows."""
    import matplotlib

    matplotlib.use("Agg")
    from vaelab.runs.provenance import git_commit, machine

    jobs = collect_jobs(sweeps)
    if not any(j.ok for j in jobs):
        raise UserError(f"no job of {', '.join(map(str, sweeps))} completed: nothing to report (see each job's status.json)")
    check_checkpoints(jobs)  # a checkpoint that could run code refuses the report before it writes anything
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused report leaves no folder
    objective = search_objective(jobs)  # an Optuna search: its trials ranked by its own objective
    rows = table_rows(jobs, objective)
    commits = sorted({str(j.metrics.get("git_commit")) for j in jobs if j.ok})
    machines = sorted({str(read_json(j.dir / RUN_INFO).get("machine")) for j in jobs if j.ok} - {"None"})
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
    lead = search_headline(rows, jobs, objective) if objective is not None else None
    (out / "val_loss.md").write_text(markdown(rows, provenance, beside(rows, experiment_references(jobs)), lead))
    print((out / "val_loss.md").read_text(), flush=True)
    pngs = write_figures(jobs, out, data_root)
    print(f"wrote {out}/val_loss.csv, val_loss.md, runs.csv and {len(pngs)} figures: {', '.join(p.name for p in pngs.values())}", flush=True)
    if wandb_mode:
        from vaelab.report.wandb_log import log_wandb

        where = log_wandb(jobs, rows, pngs, out, wandb_dir or out, wandb_mode, provenance)
        print(f"W&B report run ({wandb_mode}): {where}", flush=True)
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vaelab-report", description="Tables and figures from vaelab.train multiruns.")
    p.add_argument("sweeps", nargs="+", type=Path, help="multirun folders (hydra.sweep.dir), e.g. outputs/reproduce/<time>/sweep")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <first sweep>/report; --out results updates the committed table)")
    p.add_argument(
        "--data-root",
        default=os.environ.get("VAELAB_DATA_ROOT"),
        help="MNIST root for the latent figures (default: VAELAB_DATA_ROOT, else each run's own data.root)",
    )
    p.add_argument("--command", default=None, help="the command that made the sweeps, for the provenance lines (default: this report's command)")
    p.add_argument(
        "--wandb-mode",
        default=os.environ.get("WANDB_MODE", "offline"),
        choices=["offline", "online", "disabled"],
        help="W&B mode of the report run (default: WANDB_MODE, else offline)",
    )
    p.add_argument("--wandb-dir", type=Path, default=None, help="where the W&B report run goes (default: the output folder)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    from vaelab.config.validate import check_output_dir, exit_with

    args = parse_args(sys.argv[1:] if argv is None else argv)
    missing = [s for s in args.sweeps if not s.is_dir()]
    if missing:
        exit_with(UserError(f"sweep dir {missing[0]} does not exist: give the hydra.sweep.dir of a finished multirun"))
    out = args.out if args.out is not None else args.sweeps[0] / "report"
    check_output_dir(out, "--out", folder=True)  # before any work: a file in the way, a read-only folder
    try:
        make_report(args.sweeps, out, args.data_root, args.command, None if args.wandb_mode == "disabled" else args.wandb_mode, args.wandb_dir)
    except UserError as err:
        exit_with(err)


if __name__ == "__main__":
    main()
