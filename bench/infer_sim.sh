#!/usr/bin/env bash
#===- bench/infer_sim.sh - lina-run --mode infer on the simulator ---------===#
#
# Serves the same batches under four placements with `lina-run --mode
# infer --backend sim`, both sides in one run: static expert parallelism,
# EPLB-like (redundant experts re-planned every window, fixed shares),
# lina and oracle (each batch's best placement, every copy paid). Every
# batch is one step plan (the weight copies and the real, skewed token
# traffic as all_to_all_v) that the Scheduler runs on the simulator
# (docs/INFERENCE.md, "On the scheduler"). Plans are imported in bf16:
# OLMoE-sized experts (64 of 2048 x 1024, top-8, as a DeepSeek-format
# config without shared experts, 3 MoE layers) for the Zipf-1.2 trace of
# bench/infer_compare.sh and the OLMoE-like trace (profile c4, served
# github), Mixtral-8x7B (4 MoE layers, 8 GPUs only) for the Mixtral decode
# trace; batches of 1 to 2048 tokens. Prints p50/p95/p99 per placement,
# the rows of the busiest device over the mean, the bytes copied per batch
# and static's p95 over each placement's (p95x), then how often lina's p95
# is within static's and EPLB-like's.
#
# usage: bench/infer_sim.sh [-d DATA_DIR] [-c CLUSTER.json] [-g "8 32"]
#   DATA_DIR defaults to ../shared/data/routing next to the repository.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="$(git rev-parse --show-toplevel 2>/dev/null || pwd)/../shared/data/routing"
CLUSTER=examples/clusters/a100-ib100.json
GPUS="8 32"
while getopts "d:c:g:h" opt; do
  case $opt in
    d) DATA=$OPTARG ;; c) CLUSTER=$OPTARG ;; g) GPUS=$OPTARG ;;
    *) sed -n '3,21p' "$0"; exit 2 ;;
  esac
done
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-run lina-profile lina-import lina-translate; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; build the project first" >&2; exit 2; }
done
[ -d "$DATA" ] || { echo "error: no routing data in '$DATA' (use -d)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# OLMoE-sized experts in a format lina-import reads.
python3 - "$WORK/olmoe-like.json" <<'PY'
import json, sys
c = json.load(open("examples/models/deepseek-moe-16b.json"))
c.update({"moe_intermediate_size": 1024, "n_shared_experts": 0,
          "num_experts_per_tok": 8, "first_k_dense_replace": 0,
          "intermediate_size": 1024})
json.dump(c, open(sys.argv[1], "w"))
PY
for g in $GPUS; do
  "$BIN/lina-import" "$WORK/olmoe-like.json" --ep "$g" --dp 1 --micro-batch 1 \
    --seq 256 --mode infer --layers 3 --dtype bf16 \
    | "$BIN/lina-translate" --lina-to-plan -o "$WORK/olmoe.$g.json"
done
"$BIN/lina-import" examples/models/mixtral-8x7b.json --ep 8 --dp 1 --micro-batch 1 \
  --seq 16 --mode infer --layers 4 --dtype bf16 \
  | "$BIN/lina-translate" --lina-to-plan -o "$WORK/mixtral.8.json"

P="$BIN/lina-profile"
for seed in 1 2; do
  "$P" --synthesize --layers 4 --experts 64 --top-k 8 --requests 1024 \
    --tokens-per-request 4 --zipf 1.2 --stickiness 0.4 --seed $seed \
    --model-seed 7 -o "$WORK/zipf.$seed.jsonl" --quiet
done
"$P" "$WORK/zipf.1.jsonl" -o "$WORK/zipf.profile.json" --quiet
python3 bench/olmoe_like_trace.py "$DATA/olmoe" c4 4096 1 "$WORK/olmoe.c4.jsonl"
python3 bench/olmoe_like_trace.py "$DATA/olmoe" github 4096 2 "$WORK/olmoe.github.jsonl"
"$P" "$WORK/olmoe.c4.jsonl" -o "$WORK/olmoe.profile.json" --quiet
lines=$(wc -l < "$DATA/mixtral-8x7b-decode.jsonl")
half=$(( lines / 32 / 2 * 32 ))
head -n $half "$DATA/mixtral-8x7b-decode.jsonl" > "$WORK/mixtral.train.jsonl"
tail -n +$((half + 1)) "$DATA/mixtral-8x7b-decode.jsonl" > "$WORK/mixtral.eval.jsonl"
"$P" "$WORK/mixtral.train.jsonl" -o "$WORK/mixtral.profile.json" --quiet

printf "%-10s %4s %6s %-7s %9s %9s %9s %8s %11s %7s\n" trace gpus tokens policy \
  p50_ms p95_ms p99_ms max/mean copied_MB/b p95x
ROWS=0 MISS_STATIC=0 MISS_EPLB=0
serve() { # name plan trace profile requests batch tokens-per-batch gpus
  local out s e l
  out=$(for policy in static eplb lina oracle; do
    nice -n 10 "$BIN/lina-run" "$2" --mode infer --backend sim --cluster "$CLUSTER" \
      --requests "$5" --batch "$6" --routing "$3" --profile "$4" \
      --placement $policy --quiet | grep '^summary:'
  done)
  s=$(echo "$out" | sed -n 's/.*placement=static .*p95_ms=\([0-9.]*\).*/\1/p')
  echo "$out" | awk -v n="$1" -v g="$8" -v t="$7" -v s="$s" '
    {
      for (i = 2; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "%-10s %4s %6s %-7s %9.3f %9.3f %9.3f %8.3f %11.1f %7.3f\n", n, g, t,
        v["placement"], v["p50_ms"], v["p95_ms"], v["p99_ms"],
        v["max_over_mean_load"], v["weight_bytes_moved"] / v["batches"] / 1e6,
        s / v["p95_ms"]
    }'
  e=$(echo "$out" | sed -n 's/.*placement=eplb .*p95_ms=\([0-9.]*\).*/\1/p')
  l=$(echo "$out" | sed -n 's/.*placement=lina .*p95_ms=\([0-9.]*\).*/\1/p')
  ROWS=$((ROWS + 1))
  if awk -v l="$l" -v s="$s" 'BEGIN { exit !(l > s) }'; then
    MISS_STATIC=$((MISS_STATIC + 1))
    echo "  MISS: lina p95 $l > static $s ($1, $8 GPUs, $7 tokens)"
  fi
  if awk -v l="$l" -v e="$e" 'BEGIN { exit !(l > e) }'; then
    MISS_EPLB=$((MISS_EPLB + 1))
    echo "  MISS: lina p95 $l > EPLB-like $e ($1, $8 GPUs, $7 tokens)"
  fi
}
# Batches of 1 (Zipf: 4), 8, 32, 128 and 2048 tokens; at most 256 batches.
for g in $GPUS; do
  for b in 1 2 8 32 512; do # Zipf requests have 4 tokens
    r=$(( b * 256 < 1024 ? b * 256 : 1024 ))
    serve zipf-1.2 "$WORK/olmoe.$g.json" "$WORK/zipf.2.jsonl" "$WORK/zipf.profile.json" $r $b $((b * 4)) "$g"
  done
  for b in 1 8 32 128 2048; do
    r=$(( b * 256 < 4096 ? b * 256 : 4096 ))
    serve olmoe-like "$WORK/olmoe.$g.json" "$WORK/olmoe.github.jsonl" "$WORK/olmoe.profile.json" $r $b $b "$g"
  done
  if [ "$g" = 8 ]; then
    for b in 1 8 32 128; do
      serve mixtral "$WORK/mixtral.8.json" "$WORK/mixtral.eval.jsonl" "$WORK/mixtral.profile.json" 256 $b $b 8
    done
  fi
done
echo "targets: lina p95 <= static in $((ROWS - MISS_STATIC))/$ROWS cases; lina p95 <= EPLB-like in $((ROWS - MISS_EPLB))/$ROWS cases"
