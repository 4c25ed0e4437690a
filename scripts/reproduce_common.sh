# Shared by scripts/reproduce.sh and scripts/reproduce_literature.sh (sourced, not run):
# argument parsing, the interpreter, progress lines, and evaluating every best checkpoint.
# --help prints the caller's header: its comment lines after the shebang, up to the first line of code.

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg (only --quick is accepted)" >&2; exit 2 ;;
  esac
done
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
STAMP=$(date -u +%Y-%m-%d_%H-%M-%S)
START=$SECONDS
read -r -a EXTRA <<< "${VAELAB_EXTRA_OVERRIDES:-}"
# Launcher of the training sweeps and of the evaluation: Hydra's joblib launcher, 2 jobs at once with
# 1 torch thread each, unless VAELAB_LAUNCHER=basic (sequential, all cores per job). Measured on this
# 2-core VM: the joblib sweep is 1.37x faster with the same numbers per job (scripts/sweep_speedup.py,
# docs/benchmarks.md section 6). VAELAB_N_JOBS sets the jobs at once (e.g. 12 on a GPU machine).
LAUNCHER=${VAELAB_LAUNCHER:-joblib}
N_JOBS=${VAELAB_N_JOBS:-2}
case "$LAUNCHER" in
  joblib) LAUNCH=(hydra/launcher=joblib "hydra.launcher.n_jobs=$N_JOBS")
          LAUNCH_WHY="joblib, $N_JOBS jobs at once (measured 1.37x faster than sequential on 2 CPU cores, same numbers; VAELAB_LAUNCHER=basic for sequential)" ;;
  basic)  LAUNCH=()
          LAUNCH_WHY="basic (sequential, VAELAB_LAUNCHER=basic)" ;;
  *) echo "error: VAELAB_LAUNCHER=$LAUNCHER is not a launcher of this script: use joblib or basic" >&2; exit 2 ;;
esac
log() { printf '\n== [%s, %dm%02ds] %s\n' "$(date -u +%H:%M:%S)" $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*"; }

# evaluate_best_checkpoints K OUT SWEEP_DIR...: vaelab.evaluate (k=K) on the best checkpoint of every
# finished job into OUT/evaluate; sets failed=1 when a job has no checkpoint or no eval.json after it.
evaluate_best_checkpoints() {
  local k=$1 out=$2; shift 2
  local ckpts
  ckpts=$("$PYTHON" - "$@" <<'PY'
import json, sys
from pathlib import Path
paths = []
for sweep in sys.argv[1:]:
    for m in sorted(Path(sweep).glob("*/metrics.json")):
        ckpt = json.loads(m.read_text()).get("best_ckpt")
        if ckpt and Path(ckpt).is_file():
            paths.append("'" + str(Path(ckpt).resolve()) + "'")
print(",".join(paths))
PY
)
  if [[ -z "$ckpts" ]]; then echo "warning: no checkpoint to evaluate" >&2; failed=1; return; fi
  local threads=()
  if [[ $LAUNCHER == joblib ]]; then threads=("threads=1"); fi
  "$PYTHON" -m vaelab.evaluate -m "ckpt_path=$ckpts" "k=$k" "hydra.sweep.dir=$out/evaluate" "${LAUNCH[@]}" "${threads[@]}" || failed=1
  local m
  for sweep in "$@"; do
    for m in "$sweep"/*/metrics.json; do  # a checkpoint whose evaluation failed has no eval.json
      [[ -f "$(dirname "$m")/eval.json" ]] || { echo "error: $(dirname "$m") was not evaluated (no eval.json)" >&2; failed=1; }
    done
  done
}
