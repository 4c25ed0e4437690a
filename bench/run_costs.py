"""What each part of a training run costs: the training steps, validation every epoch,
checkpointing, image panels, the other callbacks and logging, start-up, and the k=100 evaluation
of the best checkpoint, in seconds per run of the paper setting.

One real training run through the CLI (``experiment=paper``, d=2, real MNIST from
``VAELAB_DATA_ROOT`` when it holds it, W&B offline as in the reproduction) under Lightning's
``SimpleProfiler``, which times every hook and loop step inside the process. (Timing variants of
whole runs against each other cannot resolve parts of a few percent: a machine's speed can drift by
10-15% from one run to the next.) The profiler's totals are grouped into the parts above and
scaled to a run of ``--run-epochs`` epochs (the reproduction's mean); start-up is the process's wall
time less the profiled fit. Then ``vaelab.evaluate k=100`` is timed on the run's best checkpoint. It prints figures and asserts nothing.

    python bench/run_costs.py [--epochs 10] [--run-epochs 80] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# part -> how to recognise its rows in the profiler's report (first match wins; nested rows that
# would count twice, e.g. optimizer_step inside training_step, are left out)
NESTED = ("on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad", "optimizer_step")
PARTS = (
    # hooks of each Adam step run inside training_step (manual optimisation): already in its total
    ("(per-step hooks, inside the training steps)", lambda a: a.rsplit(".", 1)[-1] in NESTED),
    ("training steps (forward, backward, Adam)", lambda a: a.endswith(".training_step")),
    ("validation (10,000 images every epoch)", lambda a: a.endswith(".validation_step")),
    ("checkpoints (best and last.ckpt, every epoch)", lambda a: a == "save_checkpoint"),
    ("image panels (every 5 epochs)", lambda a: a.startswith("[Callback]ImageLogger.")),
    ("batches (the tensor data path)", lambda a: a.endswith("_dataloader_next")),
    ("other callbacks and hooks", lambda a: a.startswith(("[Callback]", "[LightningModule]", "[LightningDataModule]"))),
)


def profile_rows(report: Path) -> dict[str, float]:
    """{action: total seconds} from SimpleProfiler's table (``| action | mean | calls | total | % |``)."""
    rows: dict[str, float] = {}
    for line in report.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] not in ("Action", "Total"):
            try:
                rows[cells[0]] = float(cells[3])
            except ValueError:
                continue
    return rows


def timed_run(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time in seconds of ``cmd`` run from the repo root; exits with its stderr if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10, help="epochs of the profiled run (10 holds two image epochs)")
    p.add_argument("--run-epochs", type=float, default=80.0, help="epochs of a reproduction run, to scale the per-epoch parts")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    threads = [f"threads={args.threads}"] if args.threads else []
    tmp = Path(tempfile.mkdtemp(prefix="vaelab_costs_"))
    run_dir = tmp / "run"
    print(f"run costs: experiment=paper d=2, {args.epochs} epochs profiled, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    cmd = [
        sys.executable, "-m", "vaelab.train", "experiment=paper", "model.latent_dim=2", "trainer.accelerator=cpu", "print_config=false",
        f"trainer.max_epochs={args.epochs}", "+trainer.profiler._target_=pytorch_lightning.profilers.SimpleProfiler",
        f"+trainer.profiler.dirpath={tmp}", "+trainer.profiler.filename=profile", f"hydra.run.dir={run_dir}", *threads,
    ]  # fmt: skip
    wall = timed_run(cmd, env)
    report = tmp / "fit-profile.txt"  # Lightning writes <stage>-<filename>.txt; the test stage has its own
    rows = profile_rows(report)
    parts = {name: 0.0 for name, _ in PARTS}
    for action, total in rows.items():
        name = next((n for n, match in PARTS if match(action)), None)
        if name is not None:
            parts[name] += total
    fit = sum(total for name, total in parts.items() if not name.startswith("("))
    scale = args.run_epochs / args.epochs
    print(f"{'part':48s} {'s per epoch':>11s} {f's per {args.run_epochs:.0f}-epoch run':>20s} {'share':>6s}")
    for name, total in parts.items():
        print(f"{name:48s} {total / args.epochs:11.3f} {total * scale:20.1f} {100 * total / fit:5.1f}%")
    print(f"{'start-up (imports, data, W&B service), once':48s} {'':11s} {wall - fit:20.1f}")
    print(f"(profiled parts: {fit:.1f} s of the {wall:.1f} s wall time; report {report})")

    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    evaluate = timed_run([sys.executable, "-m", "vaelab.evaluate", f"ckpt_path={best}", "k=100", f"out={tmp / 'eval.json'}", *threads], env)
    print(f"{'vaelab.evaluate k=100, best checkpoint, once':48s} {'':11s} {evaluate:20.1f}")


if __name__ == "__main__":
    main()
