#!/usr/bin/env bash
#===- bench/infer_compare.sh - Inference placement policies compared -----===#
#
# Serves the same batches under four expert placements, in one run, and
# prints their latency from the cost model (lina-profile --serve,
# docs/INFERENCE.md):
#   static  expert parallelism;
#   eplb    EPLB-like: redundant experts re-planned every window from the
#           long-run popularity, fixed shares, no per-batch moves;
#   lina    the same replicas chosen by the latency model, whole-row token
#           balancing per batch, paid weight moves (phase 1 behind the
#           dense block, phase 2 after the gate only when they pay);
#   oracle  the best placement of every batch's true rows, moves free.
# Traces: Zipf at several skews (synthetic, 64 experts, top-8; profile and
# evaluation are two seeds of one model), the Mixtral-8x7B decode trace
# (profile on the first half of its tokens, evaluation on the second) and
# an OLMoE-like trace built from the published OLMoE counts (profile on
# c4, evaluation on github: a domain shift). Batches of 1, 8, 32 and 128
# decode tokens and a prefill batch; 8 and 32 simulated GPUs of the
# a100-ib100 cluster file; Mixtral-8x7B and OLMoE-1B-7B expert sizes in
# bf16.
#
# usage: bench/infer_compare.sh [-d DATA_DIR] [-c CLUSTER.json] [-k BATCHES]
#                               [-g "8 32"] [-t "zipf mixtral olmoe"]
#   DATA_DIR defaults to ../shared/data/routing next to the repository.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="$(git rev-parse --show-toplevel 2>/dev/null || pwd)/../shared/data/routing"
CLUSTER=examples/clusters/a100-ib100.json
BATCHES=200 GPUS="8 32" TRACES="zipf mixtral olmoe"
while getopts "d:c:k:g:t:h" opt; do
  case $opt in
    d) DATA=$OPTARG ;; c) CLUSTER=$OPTARG ;; k) BATCHES=$OPTARG ;;
    g) GPUS=$OPTARG ;; t) TRACES=$OPTARG ;;
    *) sed -n '3,26p' "$0"; exit 2 ;;
  esac
done
BIN=${LINA_BUILD_DIR:-build}/bin
[ -x "$BIN/lina-profile" ] || { echo "error: $BIN/lina-profile not found; build the project first" >&2; exit 2; }
[ -f "$CLUSTER" ] || { echo "error: cluster file '$CLUSTER' not found" >&2; exit 2; }
if [[ " $TRACES " == *" mixtral "* || " $TRACES " == *" olmoe "* ]]; then
  if [ ! -f "$DATA/mixtral-8x7b-decode.jsonl" ] || [ ! -d "$DATA/olmoe" ]; then
    echo "error: routing data not found in '$DATA' (expected mixtral-8x7b-decode.jsonl and olmoe/);" >&2
    echo "       pass -d DATA_DIR, or -t zipf for the synthetic traces only" >&2
    exit 2
  fi
fi
command -v python3 >/dev/null || { echo "error: python3 is needed for the OLMoE-like trace" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
P="$BIN/lina-profile"

# name model trace profile
SETS=()
for t in $TRACES; do
  case $t in
    zipf)
      for z in 0.8 1.2 1.6; do
        for seed in 1 2; do
          "$P" --synthesize --layers 4 --experts 64 --top-k 8 --requests 1024 \
            --tokens-per-request 4 --zipf $z --stickiness 0.4 --seed $seed \
            --model-seed 7 -o "$WORK/zipf$z.$seed.jsonl" --quiet
        done
        "$P" "$WORK/zipf$z.1.jsonl" -o "$WORK/zipf$z.profile.json" --quiet
        SETS+=("zipf-$z olmoe-1b-7b $WORK/zipf$z.2.jsonl $WORK/zipf$z.profile.json")
      done ;;
    mixtral)
      lines=$(wc -l < "$DATA/mixtral-8x7b-decode.jsonl")
      half=$(( lines / 32 / 2 * 32 ))
      head -n $half "$DATA/mixtral-8x7b-decode.jsonl" > "$WORK/mixtral.train.jsonl"
      tail -n +$((half + 1)) "$DATA/mixtral-8x7b-decode.jsonl" > "$WORK/mixtral.eval.jsonl"
      "$P" "$WORK/mixtral.train.jsonl" -o "$WORK/mixtral.profile.json" --quiet
      SETS+=("mixtral mixtral-8x7b $WORK/mixtral.eval.jsonl $WORK/mixtral.profile.json") ;;
    olmoe)
      python3 bench/olmoe_like_trace.py "$DATA/olmoe" c4 4096 1 "$WORK/olmoe.c4.jsonl"
      python3 bench/olmoe_like_trace.py "$DATA/olmoe" github 4096 2 "$WORK/olmoe.github.jsonl"
      "$P" "$WORK/olmoe.c4.jsonl" -o "$WORK/olmoe.profile.json" --quiet
      SETS+=("olmoe-like olmoe-1b-7b $WORK/olmoe.github.jsonl $WORK/olmoe.profile.json") ;;
    *) echo "error: unknown trace set '$t' (zipf, mixtral, olmoe)" >&2; exit 2 ;;
  esac
done

printf "%-11s %4s %9s %-6s %9s %9s %9s %8s %11s %7s %7s %7s\n" trace gpus batch policy \
  p50_ms p95_ms p99_ms max/mean moved_MB/b phase2 p95x moe_p95x
MISS_STATIC=0 MISS_EPLB=0 ROWS=0
for set in "${SETS[@]}"; do
  read -r name model trace profile <<< "$set"
  for g in $GPUS; do
    for b in 1 8 32 128 prefill; do
      args=(--batch "$b" --batches "$BATCHES")
      [ "$b" = prefill ] && args=(--batch 2048 --prefill --batches $(( BATCHES / 4 > 0 ? BATCHES / 4 : 1 )))
      out=$(nice -n 10 "$P" --serve "$trace" --profile "$profile" --model "$model" \
              --cluster "$CLUSTER" --devices "$g" "${args[@]}")
      echo "$out" | awk -v n="$name" -v g="$g" -v b="$b" '
        /policy=/ {
          for (i = 2; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
          printf "%-11s %4s %9s %-6s %9.4f %9.4f %9.4f %8.3f %11.2f %7.3f %7.3f %7.3f\n",
            n, g, b, v["policy"], v["p50_ms"], v["p95_ms"], v["p99_ms"],
            v["max_over_mean_rows"], v["bytes_moved_per_batch"] / 1e6,
            v["phase2_rate"], v["p95_speedup"], v["moe_p95_speedup"]
        }'
      p95() { echo "$out" | sed -n "s/.*policy=$1 .*p95_ms=\([0-9.]*\).*/\1/p"; }
      s=$(p95 static) e=$(p95 eplb) l=$(p95 lina)
      ROWS=$((ROWS + 1))
      awk -v l="$l" -v s="$s" 'BEGIN { exit !(l > s * (1 + 1e-9)) }' && MISS_STATIC=$((MISS_STATIC + 1)) \
        && echo "  MISS: lina p95 $l > static $s ($name, $g GPUs, batch $b)"
      awk -v l="$l" -v e="$e" 'BEGIN { exit !(l > e * (1 + 1e-9)) }' && MISS_EPLB=$((MISS_EPLB + 1)) \
        && echo "  MISS: lina p95 $l > EPLB-like $e ($name, $g GPUs, batch $b)"
    done
  done
done
echo "targets: lina p95 <= static in $((ROWS - MISS_STATIC))/$ROWS cases; lina p95 <= EPLB-like in $((ROWS - MISS_EPLB))/$ROWS cases"
