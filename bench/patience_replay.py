"""Replay Lightning's early-stopping rule over recorded validation curves, for several patience and
``min_delta`` values: where each setting would stop, the minimum it would report, and whether that
minimum comes before the stop (a converged run). Figures behind the choice in
``conf/callbacks/default.yaml``. Then, per curve, the U itself: where the whole run's
minimum lies, how far the validation loss has risen above it by the end (mean of the last ``--last``
epochs) and how far the training loss fell meanwhile (nats per image): the README's "how far it rises".

    python bench/patience_replay.py results/long_runs/metrics/*.json [--patience 5,10,15,20,30] [--min-delta 0,0.05,0.1] [--last 10]

Each file is a run's metrics.json (its ``history``); best run long, with early stopping off.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def replay(values: list[float], patience: int, min_delta: float) -> tuple[int | None, float, int]:
    """(stop epoch or None, minimal value up to the stop, its epoch): Lightning's EarlyStopping in
    mode "min" (an improvement must beat the best by more than ``min_delta``)."""
    best, wait, low, low_epoch = math.inf, 0, math.inf, 0
    for epoch, value in enumerate(values, start=1):
        if value < low:
            low, low_epoch = value, epoch
        if value < best - min_delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, low, low_epoch
    return None, low, low_epoch


def rise_after_minimum(values: list[float], train: list[float], last: int) -> tuple[int, float, float]:
    """(1-based epoch of the whole run's minimal val/loss, mean val/loss of the last ``last`` epochs
    minus that minimum, train/loss at the minimum's epoch minus its mean over the last ``last``
    epochs), from per-epoch validation and training losses. Both differences are positive for a
    decoder that overfits: validation up, training down."""
    at = min(range(len(values)), key=values.__getitem__)
    tail = slice(-last, None)
    rise = sum(values[tail]) / len(values[tail]) - values[at]
    fall = train[at] - sum(train[tail]) / len(train[tail])
    return at + 1, rise, fall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.json files")
    p.add_argument("--patience", default="5,10,15,20,30")
    p.add_argument("--min-delta", default="0,0.05,0.1")
    p.add_argument("--last", type=int, default=10, help="epochs at the end averaged for the rise (default 10)")
    args = p.parse_args()
    if args.last < 1:
        p.error(f"--last {args.last}: give the number of final epochs to average, at least 1")
    rises = []
    print(f"{'run':28s} {'patience':>8s} {'min_delta':>9s} {'stops at':>8s} {'min':>9s} {'at':>4s} {'vs whole-run min':>16s}  converged")
    for path in args.metrics:
        try:
            m = json.loads(path.read_text())
            values = [float(r["val/loss"]) for r in m["history"]]
            train = [float(r["train/loss"]) for r in m["history"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            sys.exit(
                f"error: {path}: not a run's metrics.json with a per-epoch history ({type(exc).__name__}: {exc}); give the metrics.json of a finished run"
            )
        if not values:
            sys.exit(f"error: {path}: its history is empty; give the metrics.json of a run that trained at least one epoch")
        whole = min(values)
        name = f"d={m['latent_dim']} seed {m['seed']} ({len(values)} ep)"
        at, rise, fall = rise_after_minimum(values, train, args.last)
        rises.append(f"{name:28s} {whole:13.3f} {at:4d} {rise:+17.2f} {fall:+10.2f}")
        for patience in map(int, args.patience.split(",")):
            for delta in map(float, args.min_delta.split(",")):
                stop, low, at = replay(values, patience, delta)
                ok = "yes" if stop and at < stop else ("no stop" if stop is None else "NO: min at the last epoch")
                print(f"{name:28s} {patience:8d} {delta:9.2f} {stop if stop else '-':>8} {low:9.3f} {at:4d} {low - whole:+16.3f}  {ok}")

    print(f"\n{'run':28s} {'whole-run min':>13s} {'at':>4s} {'val rise, last ' + str(args.last):>17s} {'train fall':>10s}")
    print("\n".join(rises))


if __name__ == "__main__":
    main()
