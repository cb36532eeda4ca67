#!/usr/bin/env bash
#===- bench/sim_training.sh - Simulated training steps: Lina vs baselines --===#
#
# Sweeps models {Transformer-XL-like, BERT-Large-like, Mixtral-8x7B imported
# with lina-import (2 layers)} x GPUs {16, 64, 128} x per-node network
# {100, 400, 800, 1600} Gb/s on A100 nodes of 8 GPUs, and simulates one step
# of each schedule with `lina-run --backend sim` in the same run:
#   serial  the model as written: every collective on one queue (fifo);
#   ds      --lina-baseline-pipeline="mode=ds": 25 MiB gradient buckets on
#           the low queue, issued as soon as ready, sharing the links with
#           all_to_all (fifo) -- the DeepSpeed-MoE / PyTorch DDP baseline;
#   fifo    the lina column's plan (below) under --policy fifo;
#   lina    the plan tools/lina-tune chooses for the cell by simulated step
#           time among Lina plans (--lina-training-pipeline, policy lina)
#           and the ds plan (policy fifo), so never slower than ds; the
#           `choice` column names it (mM: the Lina plan with M micro-batches,
#           ds: the ds plan). TUNE=0: the fixed Lina plan under policy lina;
#   bound   a provable lower bound of the step of the lina column's plan
#           (`--bound`, marked `lb`).
# Prints one table with Lina/ds and Lina/bound and writes a PNG chart with
# gnuplot when it is installed. Compute runs at EFFICIENCY x peak FLOP/s.
#
# usage: bench/sim_training.sh [-q] [OUTPUT_DIR]   (default: bench-out/)
#   -q: a quick subset (64 GPUs x {100, 800} Gb/s)
# env:  MODELS (default "transformer-xl bert-large mixtral"; any other name
#       is a config of examples/models/, e.g. qwen1.5-moe-a2.7b, imported
#       like mixtral with --ep auto), GPUS (default "16 64 128", multiples
#       of 16), GBPS (default "100 400 800 1600"),
#       EFFICIENCY (default 0.5), CREDIT_BYTES (default 0; with TUNE=1 a
#       list of credit candidates); TUNE (default 1) chooses the plan per
#       cell with tools/lina-tune among the Lina plans of
#       TUNE_PARTITION_BYTES (default auto: the cost model sizes the
#       partitions of each all_reduce group on the cell's cluster) x
#       TUNE_CHUNKS (default 1) x TUNE_MICROBATCHES (default "1 2 4"; M: M
#       micro-batches interleaved at every all_to_all,
#       --lina-overlap-microbatches) and the ds plan (the choices go to
#       OUTPUT_DIR/tuned.txt); TUNE=0 compiles one Lina plan with
#       PARTITION_BYTES (default auto), CHUNKS (default 1) and MICROBATCHES
#       (default 2)
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = "-q" ]; then QUICK=1; shift; fi
OUT=${1:-bench-out}
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-opt lina-translate lina-run lina-import; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; run scripts/setup.sh first" >&2; exit 2; }
done
EFFICIENCY=${EFFICIENCY:-0.5}
PARTITION_BYTES=${PARTITION_BYTES:-auto}
CHUNKS=${CHUNKS:-1}
MICROBATCHES=${MICROBATCHES:-2}
CREDIT_BYTES=${CREDIT_BYTES:-0}
TUNE=${TUNE:-1}
TUNE_PARTITION_BYTES=${TUNE_PARTITION_BYTES:-auto}
TUNE_CHUNKS=${TUNE_CHUNKS:-1}
TUNE_MICROBATCHES=${TUNE_MICROBATCHES:-1 2 4}
case $TUNE in
  0|1) ;;
  *) echo "error: TUNE must be 0 or 1, got '$TUNE'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

MODELS=${MODELS:-transformer-xl bert-large mixtral}
GPU_LIST=${GPUS:-16 64 128} NET_LIST=${GBPS:-100 400 800 1600}
[ $QUICK = 1 ] && GPU_LIST="64" NET_LIST="100 800"
for name in $MODELS; do
  case $name in
    transformer-xl|bert-large|mixtral) ;;
    *) [ -f "examples/models/$name.json" ] || {
         echo "error: unknown model '$name': transformer-xl, bert-large, mixtral or a config in examples/models/" >&2
         exit 2; } ;;
  esac
done
for g in $GPU_LIST; do
  [[ $g =~ ^[0-9]+$ ]] && [ "$g" -ge 16 ] && [ $((g % 16)) = 0 ] ||
    { echo "error: GPUS must be multiples of 16, got '$g'" >&2; exit 2; }
done
for g in $NET_LIST; do
  [[ $g =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    { echo "error: GBPS must be positive numbers, got '$g'" >&2; exit 2; }
done
BOUND_FLAG=--bound BOUND_TAG=lb
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# cluster GPUS GBPS -> file: A100 nodes of 8 GPUs, one NIC of GBPS per node.
cluster() {
  local f="$OUT/cluster-$1-$2.json"
  python3 - "$1" "$2" "$EFFICIENCY" > "$f" <<'PY'
import json, sys
gpus, gbps, eff = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(json.dumps({
    "name": f"a100-x{gpus // 8}-{int(gbps)}g",
    "description": f"{gpus // 8} nodes of 8 A100 (NVLink 3), {int(gbps)} Gb/s per node, "
                   f"compute at {eff:g} x peak",
    "nodes": gpus // 8, "gpus_per_node": 8,
    "intra_node": {"bandwidth_gbps": 2400, "latency_us": 3},
    "inter_node": {"bandwidth_gbps": gbps, "latency_us": 5},
    "gpu": {"model": "A100-SXM4-80GB", "flops": 312e12 * eff,
            "memory_bandwidth_gbps": 16312},
    "launch_latency_us": 5}, indent=1))
PY
  echo "$f"
}

# model GPUS -> IR file
model_ir() {
  local name=$1 gpus=$2 ir="$OUT/$1-$2.mlir"
  case $name in
    transformer-xl)
      python3 bench/gen_moe_step.py --layers 18 --hidden 1024 --ffn 4096 --experts 16 \
        --top-k 2 --tokens 4096 --ep 16 --dp $((gpus / 16)) --dtype bf16 -o "$ir" ;;
    bert-large)
      python3 bench/gen_moe_step.py --layers 24 --hidden 1024 --ffn 4096 --experts 16 \
        --top-k 2 --tokens 2048 --ep 16 --dp $((gpus / 16)) --dtype bf16 -o "$ir" ;;
    mixtral)
      "$BIN/lina-import" examples/models/mixtral-8x7b.json --ep 8 --dp $((gpus / 8)) \
        --micro-batch 2 --seq 2048 --layers 2 --mode train -o "$ir" ;;
    *)
      "$BIN/lina-import" "examples/models/$name.json" --ep auto --world "$gpus" \
        --micro-batch 2 --seq 2048 --layers 2 --mode train -o "$ir" ;;
  esac
  echo "$ir"
}

# FILE KEY -> the value KEY of the summary of a `lina-run --json` FILE.
summary() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$1" "$2"
}
sim() { # plan cluster policy [flags] -> step ms
  "$BIN/lina-run" "$1" --backend sim --cluster "$2" --policy "$3" --quiet \
    --json "$WORK/run.json" "${@:4}" > /dev/null
  summary "$WORK/run.json" step_ms
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

printf "%-15s %5s %6s %10s %10s %10s %10s %12s %8s %9s %7s\n" model GPUs Gb/s \
  "serial ms" "ds ms" "fifo ms" "lina ms" "bound ms" "lina/ds" "lina/bnd" choice
# Columns: cell, serial, ds, fifo, lina, bound (ms), choice.
DAT="$OUT/sim_training.dat"
: > "$DAT"
if [ "$TUNE" = 1 ]; then : > "$OUT/tuned.txt"; fi
for name in $MODELS; do
  for gpus in $GPU_LIST; do
    ir=$(model_ir "$name" "$gpus")
    base="$OUT/$name-$gpus"
    "$BIN/lina-translate" --lina-to-plan "$ir" -o "$base.serial.json"
    "$BIN/lina-opt" "$ir" --lina-baseline-pipeline="mode=ds" \
      | "$BIN/lina-translate" --lina-to-plan -o "$base.ds.json"
    for gbps in $NET_LIST; do
      c=$(cluster "$gpus" "$gbps")
      # The plan of the lina column, $base.lina.json, its policy and credit.
      if [ "$TUNE" = 1 ]; then
        # lina-tune writes the chosen plan (a Lina plan or the ds plan).
        chosen=$(LINA_BIN="$BIN" tools/lina-tune/lina-tune "$ir" --cluster "$c" \
          --partition-bytes "$TUNE_PARTITION_BYTES" --chunks "$TUNE_CHUNKS" \
          --microbatches "$TUNE_MICROBATCHES" --credit-bytes "$CREDIT_BYTES" \
          --output "$base.lina.json" --quiet)
        if [[ $chosen =~ ^chosen:\ plan=lina\ policy=([a-z]+)\ .*\ microbatches=([0-9]+)\ credit-bytes=([0-9]+)\  ]]; then
          policy=${BASH_REMATCH[1]} choice=m${BASH_REMATCH[2]} credit=${BASH_REMATCH[3]}
        elif [[ $chosen =~ ^chosen:\ plan=ds\ policy=([a-z]+)\  ]]; then
          policy=${BASH_REMATCH[1]} choice=ds credit=0
        else
          echo "error: cannot read lina-tune's choice for $name-$gpus-$gbps: '$chosen'" >&2
          exit 1
        fi
        echo "$name-$gpus-$gbps ${chosen#chosen: }" >> "$OUT/tuned.txt"
      else
        # partition-bytes=auto sizes partitions for this cluster's links.
        "$BIN/lina-opt" "$ir" \
          --lina-training-pipeline="partition-bytes=$PARTITION_BYTES chunks=$CHUNKS microbatches=$MICROBATCHES cluster=$c" \
          | "$BIN/lina-translate" --lina-to-plan -o "$base.lina.json"
        policy=lina choice=m$MICROBATCHES credit=$CREDIT_BYTES
      fi
      s=$(sim "$base.serial.json" "$c" fifo)
      d=$(sim "$base.ds.json" "$c" fifo)
      f=$(sim "$base.lina.json" "$c" fifo)
      l=$(sim "$base.lina.json" "$c" "$policy" --credit-bytes "$credit")
      b=$(sim "$base.lina.json" "$c" "$policy" $BOUND_FLAG)
      printf "%-15s %5d %6d %10.2f %10.2f %10.2f %10.2f %9.2f %2s %7.3fx %8.3fx %7s\n" \
        "$name" "$gpus" "$gbps" "$s" "$d" "$f" "$l" "$b" "$BOUND_TAG" \
        "$(ratio "$d" "$l")" "$(ratio "$l" "$b")" "$choice"
      echo "$name-$gpus-$gbps $s $d $f $l $b $choice" >> "$DAT"
    done
  done
done
echo "lina/ds: ds step time / Lina step time (> 1: Lina faster);" \
  "lina/bnd: Lina step time / bound ($BOUND_TAG);" \
  "choice: the lina column's plan (mM: Lina, M micro-batches; ds: the ds plan)"

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1600,600
set output "$OUT/sim_training.png"
set title "Simulated step time, A100 nodes of 8 GPUs (compute at $EFFICIENCY x peak)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "ms"
set logscale y
set xtics rotate by -45 font ",8"
plot "$DAT" using 2:xtic(1) title "serial", "" using 3 title "ds", \
     "" using 4 title "lina's plan, fifo", "" using 5 title "lina", \
     "" using 6 title "bound ($BOUND_TAG)"
GP
  echo "chart: $OUT/sim_training.png"
else
  echo "chart: skipped (install gnuplot-nox for the PNG)"
fi
