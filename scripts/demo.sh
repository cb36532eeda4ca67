#!/usr/bin/env bash
#===- scripts/demo.sh - The main job: what Lina does, measured -------------===#
#
# Builds Lina (scripts/setup.sh), then:
#   1. compiles an MoE training step (examples/moe_train_ep4.mlir) twice:
#      as written (the baseline) and through Lina's passes;
#   2. runs both on 4 MPI ranks of this machine and checks that they compute
#      the same outputs and gradients;
#   3. times both here, and writes a Perfetto timeline of a Lina step;
#   4. simulates the same kind of model at 64 A100 GPUs, where the network
#      is the bottleneck Lina attacks: the DeepSpeed-like schedule, Lina,
#      and a provable lower bound on any schedule of the Lina plan.
# Everything it writes goes to out/demo/ (git-ignored).
#
# usage: scripts/demo.sh [-s STEPS] [-r ROUNDS]
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=10 ROUNDS=2
while getopts "s:r:h" opt; do
  case $opt in
    s) STEPS=$OPTARG ;; r) ROUNDS=$OPTARG ;;
    *) sed -n '3,16p' "$0"; exit 2 ;;
  esac
done

echo "== Lina demo: a compiler + runtime that schedule MoE all-to-all and"
echo "   gradient all-reduce so that they stop waiting for each other."
echo "   Building first (a few minutes the first time, seconds afterwards)."
scripts/setup.sh > /tmp/lina-demo-setup.$$.log 2>&1 || {
  cat /tmp/lina-demo-setup.$$.log; rm -f /tmp/lina-demo-setup.$$.log; exit 1; }
rm -f /tmp/lina-demo-setup.$$.log

BIN=${LINA_BUILD_DIR:-build}/bin
OUT=out/demo
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
export TMPDIR=${TMPDIR:-/tmp}
MODEL=examples/moe_train_ep4.mlir
# FILE KEY -> the value KEY of the summary of a `lina-run --json` FILE.
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$1" "$2"; }

echo
echo "== 1/4 Compile $MODEL (2-layer MoE, 4 expert-parallel ranks)"
"$BIN/lina-translate" --lina-to-plan "$MODEL" -o "$OUT/baseline.plan.json"
"$BIN/lina-opt" "$MODEL" --lina-training-pipeline="partition-bytes=65536 chunks=1" \
  | "$BIN/lina-translate" --lina-to-plan -o "$OUT/lina.plan.json"
echo "   baseline: the model as written, every collective in program order"
echo "   Lina:     all-reduce split into 64 KiB partitions that yield to all-to-all"
echo "   plans:    $OUT/baseline.plan.json, $OUT/lina.plan.json"

echo
echo "== 2/4 Check that Lina computes what the baseline computes (4 MPI ranks)"
mpirun -np 4 "$BIN/lina-run" "$OUT/lina.plan.json" --steps 1 --warmup 0 \
  --check --baseline "$OUT/baseline.plan.json" --quiet | grep '^check:' | sed 's/^/   /'

echo
echo "== 3/4 Time both on this machine: $ROUNDS rounds x $STEPS steps each, 4 ranks on $(nproc) cores"
: > "$OUT/cpu-base.txt"; : > "$OUT/cpu-lina.txt"
for ((r = 1; r <= ROUNDS; r++)); do
  mpirun -np 4 "$BIN/lina-run" "$OUT/baseline.plan.json" --policy fifo \
    --steps "$STEPS" --warmup 2 --quiet --json "$OUT/cpu-base.json" > /dev/null
  mpirun -np 4 "$BIN/lina-run" "$OUT/lina.plan.json" --policy lina \
    --steps "$STEPS" --warmup 2 --quiet --json "$OUT/cpu-lina.json" > /dev/null
  field "$OUT/cpu-base.json" step_ms >> "$OUT/cpu-base.txt"
  field "$OUT/cpu-lina.json" step_ms >> "$OUT/cpu-lina.txt"
  printf "   round %d/%d: baseline %.1f ms/step, Lina %.1f ms/step\n" "$r" "$ROUNDS" \
    "$(tail -1 "$OUT/cpu-base.txt")" "$(tail -1 "$OUT/cpu-lina.txt")"
done
mpirun -np 4 "$BIN/lina-run" "$OUT/lina.plan.json" --steps 2 --warmup 1 --quiet \
  --trace "$OUT/lina-trace.json" > /dev/null
mean() { awk '{s += $1} END {printf "%.1f", s / NR}' "$1"; }
CB=$(mean "$OUT/cpu-base.txt") CL=$(mean "$OUT/cpu-lina.txt")
awk -v b="$CB" -v l="$CL" 'BEGIN {
  printf "   mean step time: baseline %.1f ms, Lina %.1f ms\n", b, l
  if (l > b)
    printf "   -> on one machine Lina is %.0f%% SLOWER: the ranks share the cores and the\n      \"network\" is shared memory, so there is no contention to remove, and the\n      extra partitions cost more than they save. Step 4 shows the case Lina is for.\n", 100 * (l / b - 1)
  else
    printf "   -> on one machine Lina is %.0f%% faster.\n", 100 * (1 - l / b)
}'
echo "   timeline of a Lina step: $OUT/lina-trace.json (open in ui.perfetto.dev:"
echo "   one process per rank, one track per queue)"

echo
echo "== 4/4 Simulate 64 A100 GPUs (8 nodes x 8, NVLink inside a node, 800 Gb/s per node)"
echo "   model: Transformer-XL-like MoE, 18 layers, hidden 1024, 16 experts top-2,"
echo "   4096 tokens per GPU, bf16; expert parallel over 16 GPUs, data parallel over 4"
python3 bench/gen_moe_step.py --layers 18 --hidden 1024 --ffn 4096 --experts 16 \
  --top-k 2 --tokens 4096 --ep 16 --dp 4 --dtype bf16 -o "$OUT/txl64.mlir"
"$BIN/lina-opt" "$OUT/txl64.mlir" --lina-baseline-pipeline="mode=ds" \
  | "$BIN/lina-translate" --lina-to-plan -o "$OUT/txl64.ds.plan.json"
python3 - "$OUT/a100-x8-800g.json" <<'PY'
import json, sys
json.dump({"name": "a100-x8-800g",
           "description": "8 nodes of 8 A100 (NVLink 3), 800 Gb/s per node, compute at 0.5 x peak",
           "nodes": 8, "gpus_per_node": 8,
           "intra_node": {"bandwidth_gbps": 2400, "latency_us": 3},
           "inter_node": {"bandwidth_gbps": 800, "latency_us": 5},
           "gpu": {"model": "A100-SXM4-80GB", "flops": 312e12 * 0.5,
                   "memory_bandwidth_gbps": 16312},
           "launch_latency_us": 5}, open(sys.argv[1], "w"), indent=1)
PY
# microbatches=2: two micro-batches interleaved at every all_to_all; the
# expert gradients are split (input first, weights later; the pipeline's
# default); partition-bytes=auto: the cost model sizes all-reduce
# partitions for the cluster's links (docs/PASSES.md).
"$BIN/lina-opt" "$OUT/txl64.mlir" \
  --lina-training-pipeline="microbatches=2 partition-bytes=auto chunks=1 cluster=$OUT/a100-x8-800g.json" \
  | "$BIN/lina-translate" --lina-to-plan -o "$OUT/txl64.lina.plan.json"
simrun() {
  "$BIN/lina-run" "$1" --backend sim --cluster "$OUT/a100-x8-800g.json" --quiet \
    --json "$OUT/sim.json" "${@:2}" > /dev/null
  field "$OUT/sim.json" step_ms
}
SD=$(simrun "$OUT/txl64.ds.plan.json" --policy fifo)
SL=$(simrun "$OUT/txl64.lina.plan.json" --policy lina)
SB=$(simrun "$OUT/txl64.lina.plan.json" --bound)
awk -v d="$SD" -v l="$SL" -v b="$SB" 'BEGIN {
  printf "   %-9s %8.1f ms/step  DeepSpeed-like: 25 MB gradient buckets all-reduced on their\n", "ds", d
  printf "   %-9s %8s            own stream as they fill, sharing the network with all-to-all\n", "", ""
  printf "   %-9s %8.1f ms/step  Lina: the tokens in 2 micro-batches interleaved at every\n", "Lina", l
  printf "                                 all-to-all (one computes while the all-to-all of the other\n"
  printf "                                 is in flight); the experts send their input gradient\n"
  printf "                                 before computing their weight gradients; all-reduce\n"
  printf "                                 partitions sized by the cost model for these links,\n"
  printf "                                 yielding to all-to-all\n"
  printf "   %-9s %8.1f ms/step  lower bound: no schedule of the Lina plan can be faster\n", "bound", b
  printf "   -> at 64 simulated GPUs Lina is %.2fx as fast as the DeepSpeed-like schedule,\n", d / l
  printf "      and %.0f%% above the lower bound (at most what a better schedule could still win).\n", 100 * (l / b - 1)
}'

if command -v gnuplot > /dev/null; then
  printf '"ds (sim, 64 GPUs)" %s\n"Lina (sim, 64 GPUs)" %s\n"lower bound (sim)" %s\n' \
    "$SD" "$SL" "$SB" > "$OUT/sim.dat"
  printf '"baseline (this machine)" %s\n"Lina (this machine)" %s\n' "$CB" "$CL" > "$OUT/cpu.dat"
  gnuplot <<GP
set terminal pngcairo size 1200,500 font ",10"
set output "$OUT/demo.png"
set multiplot layout 1,2
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set ylabel "ms per training step"
set title "64 simulated A100 GPUs, Transformer-XL-like MoE"
plot "$OUT/sim.dat" using 2:xtic(1) notitle linecolor rgb "#4477aa"
set title "4 MPI ranks on this machine (compute-bound)"
plot "$OUT/cpu.dat" using 2:xtic(1) notitle linecolor rgb "#aa7744"
unset multiplot
GP
  echo
  echo "   chart: $OUT/demo.png"
else
  echo
  echo "   chart: skipped (gnuplot not installed; scripts/setup.sh installs gnuplot-nox)"
fi
