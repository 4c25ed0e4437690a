"""What each part of a training run costs: validation every epoch, checkpointing, image panels,
W&B, and the k=100 evaluation of the best checkpoint, in seconds per run of the paper setting.

Runs the real CLI (``experiment=paper``, d=2, real MNIST from ``VAELAB_DATA_ROOT`` when it holds
it) for ``--epochs`` epochs in several variants, each leaving one part out, alternating the
variants over ``--rounds`` rounds. It prints the median wall time of each variant and the
difference to the full run, per epoch and per run of ``--run-epochs`` epochs (the reproduction's
mean). Then it times ``vaelab.evaluate k=100`` on one best checkpoint. It prints figures and
asserts nothing.

    python scripts/run_costs.py [--epochs 4] [--rounds 2] [--run-epochs 90] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_CHECKPOINTS = ["~callbacks.model_checkpoint", "~callbacks.last_checkpoint"]
VARIANTS = {
    "full run (validation, checkpoints, images every 5 epochs, W&B offline)": ["logger=wandb"],
    "without W&B (logger=none)": ["logger=none"],
    "without image panels": ["logger=wandb", "callbacks.images.every_n_epochs=0"],
    "image panels every epoch": ["logger=wandb", "callbacks.images.every_n_epochs=1"],
    "without checkpoints": ["logger=wandb", *NO_CHECKPOINTS],
    "without validation (and so no checkpoints, no early stopping)": [
        "logger=wandb",
        *NO_CHECKPOINTS,
        "~callbacks.early_stopping",
        "+trainer.limit_val_batches=0",
    ],
}


def run(overrides: list[str], out: Path, env: dict[str, str]) -> float:
    """Wall time of one training run through the CLI (fails loudly if it fails)."""
    cmd = [sys.executable, "-m", "vaelab.train", "experiment=paper", "model.latent_dim=2", f"hydra.run.dir={out}", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs per timed run")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all variants (median taken)")
    p.add_argument("--run-epochs", type=float, default=90.0, help="epochs of a reproduction run, to scale per-epoch costs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    common = [f"trainer.max_epochs={args.epochs}", "trainer.accelerator=cpu", *([f"threads={args.threads}"] if args.threads else [])]
    tmp = Path(tempfile.mkdtemp(prefix="vaelab_costs_"))
    print(f"run costs: experiment=paper d=2, {args.epochs} epochs per run, {args.rounds} rounds, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for i, (name, extra) in enumerate(VARIANTS.items()):
            walls[name].append(run([*common, *extra], tmp / f"r{r}_v{i}", env))
    full = statistics.median(walls[next(iter(VARIANTS))])
    print(f"{'variant':66s} {'median s':>9s} {'vs full, s/epoch':>17s} {f'per {args.run_epochs:.0f}-epoch run, s':>22s}")
    for name, values in walls.items():
        med = statistics.median(values)
        per_epoch = (full - med) / args.epochs
        print(f"{name:66s} {med:9.1f} {per_epoch:17.3f} {per_epoch * args.run_epochs:22.1f}")
    print("(a positive difference is what the left-out part costs; 'every epoch' is negative: the extra cost of 4 more panels per 5 epochs)")

    metrics = json.loads((tmp / "r0_v0" / "metrics.json").read_text())
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vaelab.evaluate", f"ckpt_path={metrics['best_ckpt']}", "k=100", f"out={tmp / 'eval.json'}",
         *([f"threads={args.threads}"] if args.threads else [])],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"error: vaelab.evaluate failed:\n{proc.stderr[-3000:]}")
    print(f"vaelab.evaluate k=100 on one best checkpoint (10,000 test images): {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
