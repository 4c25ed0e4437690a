#!/usr/bin/env bash
# Calibrate against the literature: experiment=literature (Gaussian VAE, MLP 784-256-128 and mirrored,
# dynamically binarised MNIST, exact KL) over model.latent_dim=2,5 x seed=0,1,2, then the test-set
# importance-weighted NLL with k=500 of every best checkpoint, then vaelab.report into results/literature.
# Compare -IW NLL with Davidson et al. 2018, Table 1 (N-VAE): -135.73 (d=2), -110.21 (d=5).
# Took 28.5 min on 2 CPU cores at 411b186 (see the epoch budget in src/vaelab/conf/experiment/literature.yaml).
#
# Usage:  VAELAB_DATA_ROOT=/path/with/MNIST/raw scripts/reproduce_literature.sh [--quick]   (or: make reproduce-literature)
#   --quick   smoke test: 1 seed, 2 epochs, k=16, results into $OUT/results
# Environment: PYTHON, VAELAB_IW_K (default 500), VAELAB_SEEDS (default 0,1,2), VAELAB_REPRODUCE_DIR
# (default outputs/literature/<UTC time>), VAELAB_RESULTS_DIR (default results/literature),
# VAELAB_EXTRA_OVERRIDES, VAELAB_LAUNCHER, VAELAB_N_JOBS: as in scripts/reproduce.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/reproduce_common.sh
OUT=${VAELAB_REPRODUCE_DIR:-outputs/literature/$STAMP}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
SEEDS=${VAELAB_SEEDS:-0,1,2}
K=${VAELAB_IW_K:-500}
RESULTS=${VAELAB_RESULTS_DIR:-results/literature}
if [[ $QUICK == 1 ]]; then
  SEEDS=${VAELAB_SEEDS:-0}
  K=${VAELAB_IW_K:-16}
  RESULTS=${VAELAB_RESULTS_DIR:-$OUT/results}
  EXTRA=(trainer.max_epochs=2 data.val_size=100 data.batch_size=50 data.eval_batch_size=100 "model.hidden=[32,16]" "${EXTRA[@]}")
fi
WANDB=("logger.wandb.group=literature_$STAMP" "tags=[literature]")
if [[ " ${EXTRA[*]} " == *" logger="* ]]; then WANDB=(); fi

failed=0
log "training: experiment=literature, latent dims 2,5 x seeds $SEEDS -> $OUT/sweep"
log "launcher: $LAUNCH_WHY"
"$PYTHON" -m vaelab.train -m experiment=literature model.latent_dim=2,5 "seed=$SEEDS" "hydra.sweep.dir=$OUT/sweep" \
  "${LAUNCH[@]}" "${WANDB[@]}" "${EXTRA[@]}" || failed=1

log "evaluating every best checkpoint on the binarised test set (k=$K)"
evaluate_best_checkpoints "$K" "$OUT" "$OUT/sweep"

log "report -> $RESULTS"
"$PYTHON" -m vaelab.report "$OUT/sweep" --out "$RESULTS" --wandb-dir "$OUT/report" \
  --command "scripts/reproduce_literature.sh${*:+ $*} (VAELAB_IW_K=$K VAELAB_SEEDS=$SEEDS)" || failed=1
log "done in $((SECONDS - START)) s"
if [[ $failed == 1 ]]; then echo "error: some jobs failed or were not evaluated (see $RESULTS/val_loss.md)" >&2; exit 1; fi
