#!/usr/bin/env bash
# The GPU reproduction, timed, as one script for a machine with a GPU (docs/benchmarks.md):
#   (1) scripts/reproduce.sh paper with trainer=gpu to convergence, all 12 jobs of its pool at once;
#   (2) scripts/reproduce.sh literature with trainer=gpu to early stopping, cut at the time left.
# Everything small (logs, metrics, eval.json, the two reports; no checkpoints) comes back in
# OUT/gpu_out.tgz.
#
# Usage:  bench/gpu_reproduce.sh [--wheels DIR] [--data DIR] [--out DIR] [--budget SECONDS]
#
#   --wheels DIR      for a machine that has torch and Lightning but no package index: install the wheels
#                     in DIR (hydra-core, omegaconf, antlr4-python3-runtime, hydra-joblib-launcher, wandb
#                     and its dependencies: `pip download -d DIR ...` on a machine with the index) into a
#                     temporary folder first, and run vaelab from src/. Default: none, the current Python
#                     environment has them.
#   --data DIR        a data root holding MNIST/raw/, or a folder with the four MNIST idx files, plain or
#                     gzipped (*.gz), copied into a temporary data root.
#                     Default: $VAELAB_DATA_ROOT, else <repo>/data.
#   --out DIR         where gpu_out.tgz goes (default outputs/gpu_reproduce)
#   --budget SECONDS  wall time of the whole script; the literature runs get what is left (default 555)
#   -h, --help        print this header
#
# The interpreter: PYTHON (default .venv/bin/python when present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

WHEELS="" DATA=${VAELAB_DATA_ROOT:-$REPO/data} DEST=outputs/gpu_reproduce BUDGET=555
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    --wheels|--data|--out|--budget)
      [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }
      case "$1" in --wheels) WHEELS=$2 ;; --data) DATA=$2 ;; --out) DEST=$2 ;; --budget) BUDGET=$2 ;; esac
      shift ;;
    *) echo "error: unknown argument $1 (see bench/gpu_reproduce.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "error: --budget must be a number of seconds, not $BUDGET" >&2; exit 2; }
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$DEST" && DEST=$(cd "$DEST" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpu_reproduce.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s] $*"; }

if [[ -n "$WHEELS" ]]; then
  compgen -G "$WHEELS/*.whl" >/dev/null || { echo "error: no wheels (*.whl) in $WHEELS" >&2; exit 2; }
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$TMP/site" "$WHEELS"/*.whl >/dev/null 2>&1 \
    || { echo "error: pip could not install the wheels of $WHEELS" >&2; exit 1; }
  export PYTHONPATH="$TMP/site:$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
fi
if [[ -d "$DATA/MNIST/raw" ]]; then
  ROOT=$(cd "$DATA" && pwd)
else
  compgen -G "$DATA/*-ubyte*" >/dev/null || { echo "error: $DATA holds neither MNIST/raw/ nor the MNIST idx files" >&2; exit 2; }
  ROOT=$TMP/data
  mkdir -p "$ROOT/MNIST/raw"
  for f in "$DATA"/*-ubyte*; do
    case "$f" in
      *.gz) gunzip -c "$f" > "$ROOT/MNIST/raw/$(basename "$f" .gz)" ;;
      *) cp "$f" "$ROOT/MNIST/raw/" ;;
    esac
  done
fi
export VAELAB_DATA_ROOT=$ROOT WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1 PYTHON
nvidia-smi -L
"$PYTHON" -c "import torch, pytorch_lightning, hydra, wandb; print('torch', torch.__version__, 'lightning', pytorch_lightning.__version__, 'hydra', hydra.__version__, 'wandb', wandb.__version__)" \
  || { echo "error: torch, Lightning, Hydra or W&B is missing (see --wheels)" >&2; exit 1; }
el "setup done (data root $ROOT)"
S=$(date +%s); "$PYTHON" -c "import vaelab.train"; el "import vaelab.train: $(($(date +%s) - S))s"

S=$(date +%s)
scripts/reproduce.sh paper --out "$TMP/rep" --results "$TMP/results_gpu" trainer=gpu hydra.launcher.n_jobs=12 > "$TMP/reproduce_gpu.log" 2>&1
el "scripts/reproduce.sh paper (GPU, 12 jobs at once) rc=$? in $(($(date +%s) - S))s"
grep -E "^== |stopped:|error" "$TMP/reproduce_gpu.log" | tail -40

LEFT=$((BUDGET - ($(date +%s) - T0)))
el "literature with ${LEFT}s left"
if ((LEFT > 0)); then
  timeout -s TERM "$LEFT" scripts/reproduce.sh literature --out "$TMP/lit" --results "$TMP/results_lit" \
    trainer=gpu trainer.max_epochs=2000 hydra.launcher.n_jobs=6 > "$TMP/literature_gpu.log" 2>&1
  el "literature rc=$?"
  grep -E "^== |stopped:|error" "$TMP/literature_gpu.log" | tail -20
fi
(cd "$TMP" && tar czf "$DEST/gpu_out.tgz" --exclude='*.ckpt' --exclude='wandb' --exclude='images' --exclude='.submitit' \
  reproduce_gpu.log literature_gpu.log results_gpu results_lit rep lit 2>/dev/null)
ls -la "$DEST"; el "all done: $DEST/gpu_out.tgz"
