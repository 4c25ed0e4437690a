#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md section 7, as one script for a lent GPU machine that has torch
# and Lightning but not hydra/omegaconf/wandb (as this workplace's device machines are):
#   (1) scripts/reproduce.sh with trainer=gpu to convergence, timed alone (VAELAB_N_JOBS=12: all 12 jobs of its one pool at once);
#   (2) the literature protocol (experiment=literature) to early stopping, cut by a deadline.
# (The 400-epoch runs without early stopping it also ran once are committed in results/gpu/long_runs/.)
# Everything small comes back in $OUT/gpu_out.tgz (no checkpoints).
# It expects, in the repo root: .whl/ = wheels of hydra-core 1.3.8, omegaconf 2.3.1,
# antlr4-python3-runtime 4.9.3, hydra-joblib-launcher 1.2.0 and wandb 0.31.0 with its dependencies
# (pip download --python-version 3.12 ...), and .devdata/mnist/*.gz = the four MNIST idx files gzipped.
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >/dev/null 2>&1 || { echo "pip failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src VAELAB_DATA_ROOT=/tmp/data WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1 PYTHON=python3
mkdir -p /tmp/data/MNIST/raw; for f in .devdata/mnist/*.gz; do gunzip -c "$f" > /tmp/data/MNIST/raw/$(basename "$f" .gz); done
nvidia-smi -L; python3 -c "import torch, pytorch_lightning, hydra, wandb; print('torch', torch.__version__, 'lightning', pytorch_lightning.__version__, 'hydra', hydra.__version__, 'wandb', wandb.__version__)"
el "setup done"
S=$(date +%s); python3 -c "import vaelab.train" ; el "import vaelab.train: $(( $(date +%s) - S ))s"
S=$(date +%s)
VAELAB_N_JOBS=12 VAELAB_EXTRA_OVERRIDES="trainer=gpu" VAELAB_REPRODUCE_DIR=/tmp/rep VAELAB_RESULTS_DIR=/tmp/results_gpu \
  bash scripts/reproduce.sh > /tmp/reproduce_gpu.log 2>&1; rc=$?
el "make reproduce (GPU, 12 jobs at once) rc=$rc in $(( $(date +%s) - S ))s"
grep -E "^== |stopped:|error" /tmp/reproduce_gpu.log | tail -40
LEFT=$(( 555 - ($(date +%s) - T0) ))
el "literature with ${LEFT}s left"
VAELAB_N_JOBS=6 VAELAB_EXTRA_OVERRIDES="trainer=gpu trainer.max_epochs=2000" VAELAB_REPRODUCE_DIR=/tmp/lit VAELAB_RESULTS_DIR=/tmp/results_lit \
  timeout -s TERM $LEFT bash scripts/reproduce_literature.sh > /tmp/literature_gpu.log 2>&1
el "literature rc=$?"
grep -E "^== |stopped:|error" /tmp/literature_gpu.log | tail -20
cd /tmp && tar czf $OUT/gpu_out.tgz --exclude='*.ckpt' --exclude='wandb' --exclude='images' --exclude='.submitit' reproduce_gpu.log literature_gpu.log results_gpu results_lit rep lit 2>/dev/null
ls -la $OUT; el "all done"
