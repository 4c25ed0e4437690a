"""Wall time of one sweep run sequentially (Hydra's basic launcher) and in parallel (joblib).

Runs the latent-dim x seed sweep twice through the real CLI, on real MNIST when
``VAELAB_DATA_ROOT`` holds it, and prints both wall times and the speed-up. The sequential sweep
uses torch's default threads (all cores) per job; the joblib one runs ``n_jobs`` jobs at once with
``cores // n_jobs`` threads each (src/vaelab/conf/hydra/launcher/joblib.yaml).

    python scripts/sweep_speedup.py [--epochs 2] [--dims 1,2] [--seeds 0,1] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep(launcher: list[str], out: Path, args: argparse.Namespace) -> float:
    """Run one multirun; returns its wall time in seconds (fails loudly if any job failed)."""
    cmd = [
        sys.executable,
        "-m",
        "vaelab.train",
        "-m",
        *launcher,
        f"hydra.sweep.dir={out}",
        f"model.latent_dim={args.dims}",
        f"seed={args.seeds}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu",
        *args.overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"error: sweep {' '.join(launcher) or 'basic'} failed:\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dims", default="1,2", help="latent dims swept")
    p.add_argument("--seeds", default="0,1", help="seeds swept")
    p.add_argument("--n-jobs", type=int, default=2, help="joblib jobs at once")
    p.add_argument("overrides", nargs="*", help="extra config overrides for both sweeps")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vaelab_sweep_"))
    n = len(args.dims.split(",")) * len(args.seeds.split(","))
    print(
        f"sweep: {n} jobs (latent_dim={args.dims} x seed={args.seeds}), {args.epochs} epochs each, "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    seq = sweep([], tmp / "basic", args)
    print(f"basic launcher (sequential):      {seq:.1f} s", flush=True)
    par = sweep(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"], tmp / "joblib", args)
    print(f"joblib launcher ({args.n_jobs} jobs at once): {par:.1f} s", flush=True)
    print(f"speed-up: {seq / par:.2f}x")
    # same numbers either way? (threads differ, so only up to floating-point reassociation)
    for job in sorted((tmp / "basic").glob("*/metrics.json")):
        a = json.loads(job.read_text())
        b = json.loads((tmp / "joblib" / job.parent.name / "metrics.json").read_text())
        print(
            f"  job {job.parent.name}: latent_dim={a['latent_dim']} seed={a['seed']} val_loss_min "
            f"sequential {a['val_loss_min']:.4f} / joblib {b['val_loss_min']:.4f}"
        )


if __name__ == "__main__":
    main()
