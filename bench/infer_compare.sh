#!/usr/bin/env bash
#===- bench/infer_compare.sh - static vs Lina vs oracle placement ---------===#
#
# Generates a skewed synthetic routing trace (Zipf popularity, inter-layer
# stickiness), profiles a training split of it (same model seed, another
# sampling seed, as the paper profiles routing seen in training), compiles
# the example inference model with --lina-build-placement, and serves the
# evaluation split with `lina-run --mode infer` under the static, lina and
# oracle placements, all in this one run. Prints p50/p95/p99 batch latency
# of each and the ratios static/lina and lina/oracle.
#
# usage: bench/infer_compare.sh [-n RANKS (= the model grid)] [-q REQUESTS] [-b BATCH]
#                               [-z ZIPF] [-s STICKINESS] [-l PATH_LENGTH]
#                               [-c EXPERTS_PER_DEVICE] [MODEL.mlir]
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

RANKS=4 REQUESTS=128 BATCH=8 ZIPF=1.2 STICKY=0.4 PATHLEN=3 SLOTS=6
while getopts "n:q:b:z:s:l:c:h" opt; do
  case $opt in
    n) RANKS=$OPTARG ;; q) REQUESTS=$OPTARG ;; b) BATCH=$OPTARG ;;
    z) ZIPF=$OPTARG ;; s) STICKY=$OPTARG ;; l) PATHLEN=$OPTARG ;;
    c) SLOTS=$OPTARG ;;
    *) sed -n '3,15p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODEL=${1:-examples/moe_infer_top2.mlir}
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-opt lina-translate lina-run lina-profile; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; build the project first" >&2; exit 2; }
done
[ -f "$MODEL" ] || { echo "error: model '$MODEL' not found" >&2; exit 2; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The model's MoE shape, read from its first gate and expert_ffn.
EXPERTS=$(grep -m1 -o 'experts = [0-9]*' "$MODEL" | grep -o '[0-9]*$')
TOPK=$(grep -m1 -o 'top_k = [0-9]*' "$MODEL" | grep -o '[0-9]*$')
LAYERS=$(grep -c 'lina.gate' "$MODEL")
TOKENS=$(( 64 ))
SYN="--layers $LAYERS --experts $EXPERTS --top-k $TOPK --tokens-per-request $TOKENS --zipf $ZIPF --stickiness $STICKY --model-seed 7"

"$BIN/lina-profile" --synthesize $SYN --requests 512 --seed 1 -o "$WORK/train.jsonl" --quiet
"$BIN/lina-profile" --synthesize $SYN --requests "$REQUESTS" --seed 2 -o "$WORK/eval.jsonl" --quiet
"$BIN/lina-profile" "$WORK/train.jsonl" --path-length "$PATHLEN" -o "$WORK/profile.json" --quiet
"$BIN/lina-opt" "$MODEL" \
  --lina-build-placement="profile=$WORK/profile.json devices=$RANKS experts-per-device=$SLOTS" \
  | "$BIN/lina-translate" --lina-to-plan -o "$WORK/plan.json"

echo "model $MODEL: $LAYERS MoE layers, $EXPERTS experts, top-$TOPK; $RANKS ranks, $SLOTS expert slots each"
echo "trace: zipf $ZIPF, stickiness $STICKY; profile from another split (path length $PATHLEN); $REQUESTS requests, batches of $BATCH"
declare -A P50 P95 P99
for placement in static lina oracle; do
  line=$(mpirun -np "$RANKS" "$BIN/lina-run" "$WORK/plan.json" --mode infer \
    --requests "$REQUESTS" --batch "$BATCH" --routing "$WORK/eval.jsonl" \
    --profile "$WORK/profile.json" --placement "$placement" --quiet | grep '^summary:')
  echo "$line"
  P50[$placement]=$(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$line")
  P95[$placement]=$(sed 's/.*p95_ms=\([0-9.]*\).*/\1/' <<<"$line")
  P99[$placement]=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$line")
done
printf '\n%-8s %10s %10s %10s\n' placement p50_ms p95_ms p99_ms
for placement in static lina oracle; do
  printf '%-8s %10s %10s %10s\n' "$placement" "${P50[$placement]}" "${P95[$placement]}" "${P99[$placement]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf '%-8s %10s %10s %10s\n' static/lina "$(ratio "${P50[static]}" "${P50[lina]}")" \
  "$(ratio "${P95[static]}" "${P95[lina]}")" "$(ratio "${P99[static]}" "${P99[lina]}")"
printf '%-8s %10s %10s %10s\n' lina/oracle "$(ratio "${P50[lina]}" "${P50[oracle]}")" \
  "$(ratio "${P95[lina]}" "${P95[oracle]}")" "$(ratio "${P99[lina]}" "${P99[oracle]}")"
