"""Replay how the reproduction's jobs fill the launcher's workers, from the run times a report
recorded: one sweep per kl form one after the other (what ``scripts/reproduce.sh`` did before
``876822b``) against all jobs in one pool (what it does now). Figures behind that choice in
docs/benchmarks.md, section 11.

    python scripts/pool_replay.py results/runs.csv [--workers 2,6,12]

Joblib hands the jobs out in job order, each to the first free worker; a job takes the
``wall_time_s`` recorded in ``runs.csv`` whatever runs beside it. That holds on the CPU, where each
job has its own core and thread; with many jobs sharing one GPU the times would change, so the
replay shows the idle time the job order leaves, not a GPU's wall time.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path


def makespan(times: Sequence[float], workers: int) -> float:
    """Seconds until the last job ends when ``times`` (in job order) go to ``workers`` workers,
    each job to the worker that frees up first."""
    free = [0.0] * workers
    for t in times:
        i = free.index(min(free))
        free[i] += t
    return max(free)


def read_runs(path: Path) -> dict[str, list[float]]:
    """Run times (s) per kl form, in job order (the report's ``runs.csv``: columns kl, job, wall_time_s)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    need = ("job", "kl", "wall_time_s")
    if not rows or not set(need) <= rows[0].keys():
        raise ValueError(f"{path} has no rows with the columns {', '.join(need)}")
    order = {"paper": 0, "analytic": 1}  # the reproduction's order: eq. 3's penalty first
    rows.sort(key=lambda r: (order.get(r["kl"], 2), r["kl"], r.get("sweep", ""), int(r["job"])))
    runs: dict[str, list[float]] = {}
    for r in rows:
        runs.setdefault(r["kl"], []).append(float(r["wall_time_s"]))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs_csv", type=Path, help="a report's runs.csv, e.g. results/runs.csv")
    p.add_argument("--workers", default="2,6,12", help="worker counts to replay, comma-separated (default 2,6,12)")
    args = p.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",")]
        if min(workers) < 1:
            raise ValueError
    except ValueError:
        print(f"error: --workers {args.workers!r}: give positive integers, e.g. 2,6,12", file=sys.stderr)
        return 2
    try:
        runs = read_runs(args.runs_csv)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read the run times: {exc} (give a runs.csv written by vaelab.report)", file=sys.stderr)
        return 2
    every = [t for times in runs.values() for t in times]
    print(f"{len(every)} jobs ({', '.join(f'{kl} {len(t)}' for kl, t in runs.items())}), {sum(every):.0f} s of run time in all")
    print(f"{'workers':>7} {'sweeps one after another (s)':>29} {'one pool (s)':>13} {'no idle worker (s)':>19} {'pool saves':>11}")
    for w in workers:
        sweeps = sum(makespan(times, w) for times in runs.values())
        pool = makespan(every, w)
        bound = max(sum(every) / w, max(every))
        print(f"{w:>7} {sweeps:>29.0f} {pool:>13.0f} {bound:>19.0f} {1 - pool / sweeps:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
