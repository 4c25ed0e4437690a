#!/usr/bin/env bash
# Reproduce a results table from nothing: a training sweep, the test-set evaluation of every best
# checkpoint, and the report (tables, figures, provenance).
#
#   paper       (default) the derivation report's table, "the minimal loss of the validation set is ___
#               and ___ for hidden dimension 1 and 2": experiment=paper over model.kl=paper,analytic
#               (eq. 3's penalty, the exact KL) x model.latent_dim=1,2 x seed=0,1,2, 12 jobs in one
#               pool; IW NLL with k=100; report into results/.                      (make reproduce)
#   literature  the Gaussian-VAE protocol of Davidson et al. 2018, Table 1 (binarised MNIST):
#               experiment=literature over model.latent_dim=2,5 x seed=0,1,2; IW NLL with k=500;
#               report into results/literature/.                         (make reproduce-literature)
#
#   1. one Hydra multirun of the training jobs                          -> OUT/sweep/0..N-1
#   2. vaelab.evaluate on every best checkpoint (test loss, -ELBO, IW NLL) -> OUT/sweep/<job>/eval.json
#   3. vaelab.report on the sweep                                        -> RESULTS
#
# Usage:  scripts/reproduce.sh [paper|literature] [options] [overrides...]
#
#   overrides      Hydra overrides for every training job (key=value, +key=value, ~key); one given for
#                  a key the script sets replaces the script's value, e.g. seed=0 (one seed),
#                  trainer=gpu, hydra.launcher.n_jobs=12 (jobs at once), hydra/launcher=basic
#                  (sequential), logger=none. hydra/launcher and hydra.launcher.* overrides apply to
#                  the evaluation too. Default launcher: joblib, 2 jobs at once, 1 torch thread each.
#   --out DIR      where the sweep, the evaluations and the report's W&B run go
#                  (default outputs/reproduce/<UTC time>, literature: outputs/literature/<UTC time>)
#   --results DIR  where the report goes (default results, literature: results/literature;
#                  with --quick: OUT/results, so the committed results are not touched)
#   --k K          importance samples per test image (default 100, literature: 500; --quick: 16)
#   --quick        a smoke test of the whole pipeline in about a minute: seed=0, 2 epochs, a small
#                  network, k=16. Works on tiny data too (data.val_size=100).
#   --dry-run      print the commands and exit, running nothing
#   -h, --help     print this header
#
# The data: MNIST/raw/ under VAELAB_DATA_ROOT (default <repo>/data, downloaded if missing). The
# interpreter: PYTHON (default .venv/bin/python when present, else python3). All training runs of
# one reproduction share the W&B group reproduce_<time> (literature_<time>) and are tagged; W&B is
# offline unless WANDB_MODE says otherwise (upload later: wandb sync <dir>/wandb/offline-run-*).
# Exit status: 0 done; 1 a job failed or was not evaluated (the report lists it); 2 a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=("$@")

usage_error() { echo "error: $1" >&2; exit 2; }

EXPERIMENT="" QUICK=0 DRY=0 OUT="" RESULTS="" K="" USER_OVERRIDES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    paper|literature)
      [[ -z "$EXPERIMENT" ]] || usage_error "two experiments given ($EXPERIMENT and $1): one of paper, literature"
      EXPERIMENT=$1 ;;
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    --out|--results|--k)
      [[ $# -ge 2 && -n "$2" ]] || usage_error "$1 needs a value"
      case "$1" in --out) OUT=$2 ;; --results) RESULTS=$2 ;; --k) K=$2 ;; esac
      shift ;;
    experiment=*) usage_error "the experiment is an argument of its own (paper or literature), not an override: $1" ;;
    -*) usage_error "unknown argument $1 (see scripts/reproduce.sh --help)" ;;
    *=*|~*) USER_OVERRIDES+=("$1") ;;
    *) usage_error "unknown argument $1 (the experiment is paper or literature; an override is key=value)" ;;
  esac
  shift
done
[[ -z "$K" || "$K" =~ ^[1-9][0-9]*$ ]] || usage_error "--k must be a positive integer, not $K"
EXPERIMENT=${EXPERIMENT:-paper}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
STAMP=$(date -u +%Y-%m-%d_%H-%M-%S)
START=$SECONDS

# the experiment's sweep, its W&B group and tags, and its defaults
case "$EXPERIMENT" in
  paper)
    SWEEP=(experiment=paper model.kl=paper,analytic model.latent_dim=1,2 seed=0,1,2)
    WANDB=("logger.wandb.group=reproduce_$STAMP" 'tags=[reproduce,kl-${model.kl}]')
    QUICK_NET="model.hidden=[32]" DEFAULT_K=100 DEFAULT_RESULTS=results ;;
  literature)
    SWEEP=(experiment=literature model.latent_dim=2,5 seed=0,1,2)
    WANDB=("logger.wandb.group=literature_$STAMP" "tags=[literature]")
    QUICK_NET="model.hidden=[32,16]" DEFAULT_K=500 DEFAULT_RESULTS=results/literature ;;
esac
QUICK_OVERRIDES=()
if [[ $QUICK == 1 ]]; then
  QUICK_OVERRIDES=(seed=0 trainer.max_epochs=2 data.val_size=100 data.batch_size=50 data.eval_batch_size=100 "$QUICK_NET")
  DEFAULT_K=16
fi
OUT=${OUT:-outputs/$([[ $EXPERIMENT == paper ]] && echo reproduce || echo literature)/$STAMP}
if [[ $DRY == 0 ]]; then OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd); fi
K=${K:-$DEFAULT_K}
RESULTS=${RESULTS:-$([[ $QUICK == 1 ]] && echo "$OUT/results" || echo "$DEFAULT_RESULTS")}

# key OVERRIDE: what an override sets (hydra/launcher for hydra/launcher=basic, seed for seed=0)
key() { local k=${1%%=*}; k=${k#+}; k=${k#+}; echo "${k#\~}"; }
given() { local o; for o in "${USER_OVERRIDES[@]}"; do [[ "$(key "$o")" == "$1" ]] && return 0; done; return 1; }
# the training overrides: the script's, each dropped where the user gives the same key, then the user's
TRAIN=()
for o in "${SWEEP[@]}" "${QUICK_OVERRIDES[@]}" "hydra/launcher=joblib" "hydra.sweep.dir=$OUT/sweep" "${WANDB[@]}"; do
  given "$(key "$o")" && continue
  [[ "$o" == logger.wandb.* || "$o" == tags=* ]] && given logger && continue  # logger=none has no W&B
  TRAIN+=("$o")
done
TRAIN+=("${USER_OVERRIDES[@]}")
# the launcher overrides, for the evaluation too; joblib's jobs run on one torch thread each
LAUNCH=() LAUNCHER=""
for o in "${TRAIN[@]}"; do
  case "$o" in
    hydra/launcher=*) LAUNCH+=("$o") LAUNCHER=${o#*=} ;;
    hydra.launcher.*|+hydra.launcher.*) LAUNCH+=("$o") ;;
  esac
done
THREADS=()
if [[ $LAUNCHER == joblib ]]; then THREADS=(threads=1); fi

# quoted ARGS...: the arguments as one shell command line, single-quoted where needed
quoted() {
  local a out=()
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./=,:+@%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
log() { printf '\n== [%s, %dm%02ds] %s\n' "$(date -u +%H:%M:%S)" $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*"; }
# the command as typed, the experiment named first, for the report's provenance lines
COMMAND=(scripts/reproduce.sh "$EXPERIMENT")
for a in "${ARGS[@]}"; do [[ "$a" == "$EXPERIMENT" || "$a" == --dry-run ]] || COMMAND+=("$a"); done
TRAIN_CMD=("$PYTHON" -m vaelab.train -m "${TRAIN[@]}")
EVAL_ARGS=("k=$K" "hydra.sweep.dir=$OUT/evaluate" "${LAUNCH[@]}" "${THREADS[@]}")
EVAL_CMD=("$PYTHON" -m vaelab.evaluate -m "ckpt_path=<the best checkpoint of every job>" "${EVAL_ARGS[@]}")
REPORT_CMD=("$PYTHON" -m vaelab.report "$OUT/sweep" --out "$RESULTS" --wandb-dir "$OUT/report" --command "$(quoted "${COMMAND[@]}")")
if [[ $DRY == 1 ]]; then
  printf '%s\n' "$(quoted "${TRAIN_CMD[@]}")" "$(quoted "${EVAL_CMD[@]}")" "$(quoted "${REPORT_CMD[@]}")"
  exit 0
fi

log "reproduction of experiment=$EXPERIMENT into $OUT (IW k=$K, python $PYTHON, launcher ${LAUNCHER:-from the overrides})"
failed=0
log "training -> $OUT/sweep: $(quoted "${TRAIN[@]}")"
"${TRAIN_CMD[@]}" || { failed=1; echo "warning: some training jobs failed; the report lists them as missing" >&2; }

log "evaluating every best checkpoint on the test set (k=$K)"
CKPTS=$("$PYTHON" - "$OUT/sweep" <<'PY'
import json, sys
from pathlib import Path
paths = []
for m in sorted(Path(sys.argv[1]).glob("*/metrics.json")):
    ckpt = json.loads(m.read_text()).get("best_ckpt")
    if ckpt and Path(ckpt).is_file():
        paths.append("'" + str(Path(ckpt).resolve()) + "'")
print(",".join(paths))
PY
)
if [[ -z "$CKPTS" ]]; then
  echo "warning: no checkpoint to evaluate" >&2; failed=1
else
  "$PYTHON" -m vaelab.evaluate -m "ckpt_path=$CKPTS" "${EVAL_ARGS[@]}" || failed=1
fi
for m in "$OUT"/sweep/*/metrics.json; do  # a checkpoint whose evaluation failed has no eval.json
  if [[ -f "$m" && ! -f "$(dirname "$m")/eval.json" ]]; then
    echo "error: $(dirname "$m") was not evaluated (no eval.json)" >&2; failed=1
  fi
done

log "report -> $RESULTS"
"${REPORT_CMD[@]}" || failed=1

log "done in $((SECONDS - START)) s: sweep in $OUT, report in $RESULTS"
if [[ $failed == 1 ]]; then echo "error: some jobs failed or were not evaluated (see the 'seeds' column of $RESULTS/val_loss.md)" >&2; exit 1; fi
