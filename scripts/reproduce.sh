#!/usr/bin/env bash
# Reproduce the derivation report's table: "the minimal loss of the validation set is ___ and ___
# for hidden dimension 1 and 2", with evaluation, figures and provenance.
#
#   1. one Hydra multirun of experiment=paper over model.kl=paper,analytic (eq. 3's penalty, the
#      exact KL) x model.latent_dim=1,2 x seed=0,1,2: 12 jobs in one pool        -> $OUT/sweep/0..11
#   2. vaelab.evaluate on every best checkpoint: test loss, −ELBO and IW NLL with k=$K  -> <job>/eval.json
#   3. vaelab.report on the sweep                                                       -> $RESULTS
#
# One pool, not a sweep per kl form: a sweep's last job would leave the other workers idle while
# it ends (with 12 jobs at once on a GPU, the second sweep would wait for the slowest of the first).
# All training runs of one reproduction share the W&B group reproduce_<time> and are tagged with
# their kl form (kl-paper / kl-analytic); the report logs to a run of its own in that group.
# W&B is offline unless WANDB_MODE says otherwise; upload later with `wandb sync <dir>/wandb/offline-run-*`.
#
# Usage:  VAELAB_DATA_ROOT=/path/with/MNIST/raw scripts/reproduce.sh [--quick]     (or: make reproduce)
#
#   --quick   a smoke test of the whole pipeline in about a minute: 1 seed, 2 epochs, a small
#             network, k=16, results into $OUT/results (the committed results/ is not touched).
#             Works on tiny data too (data.val_size=100), e.g. the test suite's synthetic idx files.
#
# Environment (all optional):
#   VAELAB_DATA_ROOT        folder holding MNIST/raw/ (default: <repo>/data, downloaded if missing)
#   PYTHON                  interpreter (default: .venv/bin/python when present, else python3)
#   VAELAB_IW_K             importance samples per test image (default 100: the evaluation of all 12
#                           checkpoints then takes about 2 minutes on 2 CPU cores; k=1000 would take ~20)
#   VAELAB_SEEDS            seeds (default 0,1,2)
#   VAELAB_REPRODUCE_DIR    where the sweeps go (default outputs/reproduce/<UTC time>)
#   VAELAB_RESULTS_DIR      where the report goes (default results; with --quick: $OUT/results)
#   VAELAB_EXTRA_OVERRIDES  extra Hydra overrides for every training job (space separated), e.g.
#                           "trainer=gpu"
#   VAELAB_LAUNCHER         joblib (default: jobs in parallel, 1 torch thread each) or basic (sequential)
#   VAELAB_N_JOBS           jobs at once with joblib (default 2, one per core here; e.g. 12 on a GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/reproduce_common.sh
OUT=${VAELAB_REPRODUCE_DIR:-outputs/reproduce/$STAMP}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
SEEDS=${VAELAB_SEEDS:-0,1,2}
K=${VAELAB_IW_K:-100}
RESULTS=${VAELAB_RESULTS_DIR:-results}
if [[ $QUICK == 1 ]]; then
  SEEDS=${VAELAB_SEEDS:-0}
  K=${VAELAB_IW_K:-16}
  RESULTS=${VAELAB_RESULTS_DIR:-$OUT/results}
  EXTRA=(trainer.max_epochs=2 data.val_size=100 data.batch_size=50 data.eval_batch_size=100 "model.hidden=[32]" "${EXTRA[@]}")
fi
GROUP="reproduce_$STAMP"

log "reproduction into $OUT (seeds $SEEDS, IW k=$K, python $PYTHON${EXTRA[*]:+, extra: ${EXTRA[*]}})"
log "launcher: $LAUNCH_WHY"
failed=0
log "training: experiment=paper, kl forms paper,analytic x latent dims 1,2 x seeds $SEEDS in one pool -> $OUT/sweep"
WANDB=("logger.wandb.group=$GROUP" 'tags=[reproduce,kl-${model.kl}]')
if [[ " ${EXTRA[*]} " == *" logger="* ]]; then WANDB=(); fi
"$PYTHON" -m vaelab.train -m experiment=paper model.kl=paper,analytic model.latent_dim=1,2 "seed=$SEEDS" \
  "hydra.sweep.dir=$OUT/sweep" "${LAUNCH[@]}" "${WANDB[@]}" "${EXTRA[@]}" || { failed=1; echo "warning: some training jobs failed; the report lists them as missing" >&2; }

log "evaluating every best checkpoint on the test set (k=$K)"
evaluate_best_checkpoints "$K" "$OUT" "$OUT/sweep"

log "report -> $RESULTS"
"$PYTHON" -m vaelab.report "$OUT/sweep" --out "$RESULTS" --wandb-dir "$OUT/report" \
  --command "scripts/reproduce.sh${*:+ $*} (VAELAB_IW_K=$K VAELAB_SEEDS=$SEEDS${EXTRA[*]:+ VAELAB_EXTRA_OVERRIDES='${EXTRA[*]}'})" || failed=1

log "done in $((SECONDS - START)) s: sweeps in $OUT, report in $RESULTS"
if [[ $failed == 1 ]]; then echo "error: some jobs failed or were not evaluated (see the 'seeds' column of $RESULTS/val_loss.md)" >&2; exit 1; fi
