#!/usr/bin/env bash
#===- bench/train_compare.sh - Lina vs the naive schedule, one run --------===#
#
# Compiles a training-step model twice -- as written (the baseline: one
# all_reduce per gradient, collectives issued in program order, `fifo`) and
# with Lina's passes (partitioned all_reduce, prioritised and pipelined
# all_to_all, `lina` policy) -- runs both on the CPU backend with MPI ranks,
# alternating baseline and Lina runs, and prints both and their ratios.
#
# usage: bench/train_compare.sh [-n RANKS] [-s STEPS] [-r ROUNDS]
#                               [-p PARTITION_BYTES] [-c CHUNKS] [MODEL.mlir]
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

RANKS=4 STEPS=20 ROUNDS=3 PARTITION=65536 CHUNKS=1
while getopts "n:s:r:p:c:h" opt; do
  case $opt in
    n) RANKS=$OPTARG ;; s) STEPS=$OPTARG ;; r) ROUNDS=$OPTARG ;;
    p) PARTITION=$OPTARG ;; c) CHUNKS=$OPTARG ;;
    *) sed -n '3,12p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODEL=${1:-examples/moe_train_ep4.mlir}
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-opt lina-translate lina-run; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; run scripts/setup.sh first" >&2; exit 2; }
done
[ -f "$MODEL" ] || { echo "error: model '$MODEL' not found" >&2; exit 2; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN/lina-translate" --lina-to-plan "$MODEL" -o "$WORK/baseline.json"
"$BIN/lina-opt" "$MODEL" \
  --lina-training-pipeline="partition-bytes=$PARTITION chunks=$CHUNKS" \
  | "$BIN/lina-translate" --lina-to-plan -o "$WORK/lina.json"

echo "model: $MODEL, $RANKS MPI ranks on $(nproc) cores, $STEPS steps x $ROUNDS rounds"
echo "lina:  --lina-training-pipeline=\"partition-bytes=$PARTITION chunks=$CHUNKS\", policy lina"
echo "base:  the model as written, policy fifo"
# Outputs must agree before timings mean anything.
mpirun -np "$RANKS" "$BIN/lina-run" "$WORK/lina.json" --steps 1 --warmup 0 \
  --check --baseline "$WORK/baseline.json" --quiet | grep '^check:'

run() { # plan policy results.json
  mpirun -np "$RANKS" "$BIN/lina-run" "$1" --policy "$2" --steps "$STEPS" \
    --warmup 2 --quiet --json "$3" > /dev/null
}
for ((r = 0; r < ROUNDS; r++)); do
  run "$WORK/baseline.json" fifo "$WORK/results-base-$r.json"
  run "$WORK/lina.json" lina "$WORK/results-lina-$r.json"
done
# SCHEDULE KEY -> the mean over the rounds of the summary's KEY (lina-run --json).
mean() {
  python3 - "$2" "$WORK/results-$1-"*.json <<'PY'
import json, sys
values = [json.load(open(f))["summary"][sys.argv[1]] for f in sys.argv[2:]]
print(f"{sum(values) / len(values):.3f}", end="")
PY
}
printf "\n%-10s %12s %12s %16s %14s %14s\n" schedule "step (ms)" "best (ms)" \
  "a2a blocked" "a2a (ms)" "all_reduce"
for s in base lina; do
  printf "%-10s %12s %12s %16s %14s %14s\n" "$s" "$(mean "$s" step_ms)" \
    "$(mean "$s" min_step_ms)" "$(mean "$s" a2a_blocked_ms)" \
    "$(mean "$s" a2a_ms)" "$(mean "$s" allreduce_ms)"
done
ratio() { awk -v a="$(mean base "$1")" -v b="$(mean lina "$1")" \
  'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
echo
echo "ratio baseline/lina: step time $(ratio step_ms)x, best step $(ratio min_step_ms)x," \
  "all_to_all blocked $(ratio a2a_blocked_ms)x, all_to_all time $(ratio a2a_ms)x"
