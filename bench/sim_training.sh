#!/usr/bin/env bash
#===- bench/sim_training.sh - Simulated training steps at scale -----------===#
#
# For a Transformer-XL-like and a BERT-Large-like MoE model (16 experts,
# top-2) at 16 and 64 A100 GPUs (100 Gb/s InfiniBand), compiles each model
# twice (as written, and with --lina-training-pipeline), simulates one step
# of each with `lina-run --backend sim`, and prints in one table: the fifo
# step time of the baseline, the Lina step time, their ratio, and the
# contention-free lower bound (the Lina schedule's critical path with every
# collective alone on the network, as if it never shared a link). Writes a
# step-time breakdown chart (PNG) with gnuplot.
#
# usage: bench/sim_training.sh [OUTPUT_DIR]     (default: bench-out/)
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out}
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-opt lina-translate lina-run; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; run scripts/setup.sh first" >&2; exit 2; }
done
mkdir -p "$OUT"
CLUSTER=examples/clusters/a100-ib100-x8.json

# name layers hidden ffn tokens-per-GPU
MODELS=("transformer-xl-moe 18 1024 4096 4096" "bert-large-moe 24 1024 4096 2048")
summary() { sed -E "s/.* $1=([0-9.]+).*/\1/"; }

printf "%-20s %5s %12s %12s %8s %12s %10s\n" model GPUs "fifo (ms)" "lina (ms)" ratio "bound (ms)" "lina/bound"
: > "$OUT/breakdown.dat"
for m in "${MODELS[@]}"; do
  set -- $m
  name=$1 layers=$2 hidden=$3 ffn=$4 tokens=$5
  for gpus in 16 64; do
    dp=$((gpus / 16))
    ir="$OUT/$name-$gpus.mlir"
    python3 bench/gen_moe_step.py --layers "$layers" --hidden "$hidden" --ffn "$ffn" \
      --experts 16 --top-k 2 --tokens "$tokens" --ep 16 --dp "$dp" --dtype bf16 \
      --name "$name on $gpus GPUs" -o "$ir"
    "$BIN/lina-translate" --lina-to-plan "$ir" -o "$OUT/$name-$gpus.base.json"
    "$BIN/lina-opt" "$ir" --lina-training-pipeline="partition-bytes=4194304 chunks=2 cluster=$CLUSTER" \
      | "$BIN/lina-translate" --lina-to-plan -o "$OUT/$name-$gpus.lina.json"
    sim() { "$BIN/lina-run" "$1" --backend sim --cluster "$CLUSTER" --quiet "${@:2}"; }
    base=$(sim "$OUT/$name-$gpus.base.json" --policy fifo)
    lina=$(sim "$OUT/$name-$gpus.lina.json" --policy lina --trace "$OUT/$name-$gpus.lina.trace.json")
    bound=$(sim "$OUT/$name-$gpus.lina.json" --policy lina --contention-free)
    b=$(echo "$base" | summary step_ms) l=$(echo "$lina" | summary step_ms) lb=$(echo "$bound" | summary step_ms)
    printf "%-20s %5d %12.2f %12.2f %7.2fx %12.2f %9.2fx\n" "$name" "$gpus" "$b" "$l" \
      "$(awk -v a="$b" -v c="$l" 'BEGIN{print a/c}')" "$lb" "$(awk -v a="$l" -v c="$lb" 'BEGIN{print a/c}')"
    for which in base lina; do
      line=$([ $which = base ] && echo "$base" || echo "$lina")
      echo "$name-$gpus-$which $(echo "$line" | summary step_ms) $(echo "$line" | summary a2a_blocked_ms) $(echo "$line" | summary allreduce_ms)" >> "$OUT/breakdown.dat"
    done
  done
done

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1000,500
set output "$OUT/sim_training.png"
set title "Simulated step time on A100 + 100 Gb/s IB (fifo baseline vs Lina)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "ms"
set xtics rotate by -30
plot "$OUT/breakdown.dat" using 2:xtic(1) title "step", \
     "" using 3 title "all_to_all blocked", \
     "" using 4 title "all_reduce in flight"
GP
  echo "chart: $OUT/sim_training.png"
else
  echo "chart: skipped (install gnuplot-nox for the PNG)"
fi
