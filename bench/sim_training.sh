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
#   fifo    the Lina plan (--lina-training-pipeline) under --policy fifo;
#   lina    the Lina plan under --policy lina;
#   bound   a provable lower bound of the step of the Lina plan (`--bound`,
#           marked `lb`).
# Prints one table with Lina/ds and Lina/bound and writes a PNG chart with
# gnuplot when it is installed. Compute runs at EFFICIENCY x peak FLOP/s.
#
# usage: bench/sim_training.sh [-q] [OUTPUT_DIR]   (default: bench-out/)
#   -q: a quick subset (64 GPUs x {100, 800} Gb/s)
# env:  EFFICIENCY (default 0.5), PARTITION_BYTES (default auto: the
#       cost model picks the partition size for each all_reduce group on the
#       cell's cluster, so the Lina plan is compiled per cell), MICROBATCHES
#       (default 2: two micro-batches interleaved at every all_to_all,
#       --lina-overlap-microbatches), CHUNKS (default 1), CREDIT_BYTES
#       (default 0); TUNE=1 chooses partition-bytes, chunks and
#       microbatches per cell with tools/lina-tune among
#       TUNE_PARTITION_BYTES (default "auto 16777216 67108864") x
#       TUNE_CHUNKS (default "1 2 4") x TUNE_MICROBATCHES (default "1 2") by
#       simulated step time (the choices go to OUTPUT_DIR/tuned.txt)
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
TUNE=${TUNE:-0}
TUNE_PARTITION_BYTES=${TUNE_PARTITION_BYTES:-auto 16777216 67108864}
TUNE_CHUNKS=${TUNE_CHUNKS:-1 2 4}
TUNE_MICROBATCHES=${TUNE_MICROBATCHES:-1 2}
mkdir -p "$OUT"

GPU_LIST="16 64 128" NET_LIST="100 400 800 1600"
[ $QUICK = 1 ] && GPU_LIST="64" NET_LIST="100 800"
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

printf "%-15s %5s %6s %10s %10s %10s %10s %12s %8s %9s\n" model GPUs Gb/s \
  "serial ms" "ds ms" "fifo ms" "lina ms" "bound ms" "lina/ds" "lina/bnd"
DAT="$OUT/sim_training.dat"
: > "$DAT"
[ "$TUNE" = 1 ] && : > "$OUT/tuned.txt"
for name in transformer-xl bert-large mixtral; do
  for gpus in $GPU_LIST; do
    ir=$(model_ir "$name" "$gpus")
    base="$OUT/$name-$gpus"
    "$BIN/lina-translate" --lina-to-plan "$ir" -o "$base.serial.json"
    "$BIN/lina-opt" "$ir" --lina-baseline-pipeline="mode=ds" \
      | "$BIN/lina-translate" --lina-to-plan -o "$base.ds.json"
    for gbps in $NET_LIST; do
      c=$(cluster "$gpus" "$gbps")
      # partition-bytes=auto sizes partitions for this cluster's links;
      # TUNE=1 lets lina-tune choose by simulated step time instead.
      pb=$PARTITION_BYTES ck=$CHUNKS mb=$MICROBATCHES
      if [ "$TUNE" = 1 ]; then
        chosen=$(LINA_BIN="$BIN" tools/lina-tune/lina-tune "$ir" --cluster "$c" \
          --partition-bytes "$TUNE_PARTITION_BYTES" --chunks "$TUNE_CHUNKS" \
          --microbatches "$TUNE_MICROBATCHES" --quiet)
        pb=$(echo "$chosen" | sed -E 's/.*partition-bytes=([^ ]+).*/\1/')
        ck=$(echo "$chosen" | sed -E 's/.* chunks=([^ ]+).*/\1/')
        mb=$(echo "$chosen" | sed -E 's/.* microbatches=([^ ]+).*/\1/')
        echo "$name-$gpus-$gbps partition-bytes=$pb chunks=$ck microbatches=$mb" >> "$OUT/tuned.txt"
      fi
      "$BIN/lina-opt" "$ir" \
        --lina-training-pipeline="partition-bytes=$pb chunks=$ck microbatches=$mb cluster=$c" \
        | "$BIN/lina-translate" --lina-to-plan -o "$base.lina.json"
      s=$(sim "$base.serial.json" "$c" fifo)
      d=$(sim "$base.ds.json" "$c" fifo)
      f=$(sim "$base.lina.json" "$c" fifo)
      l=$(sim "$base.lina.json" "$c" lina --credit-bytes "$CREDIT_BYTES")
      b=$(sim "$base.lina.json" "$c" lina $BOUND_FLAG)
      printf "%-15s %5d %6d %10.2f %10.2f %10.2f %10.2f %9.2f %2s %7.3fx %8.3fx\n" \
        "$name" "$gpus" "$gbps" "$s" "$d" "$f" "$l" "$b" "$BOUND_TAG" \
        "$(ratio "$d" "$l")" "$(ratio "$l" "$b")"
      echo "$name-$gpus-$gbps $s $d $f $l $b" >> "$DAT"
    done
  done
done
echo "lina/ds: ds step time / Lina step time (> 1: Lina faster);" \
  "lina/bnd: Lina step time / bound ($BOUND_TAG)"

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
     "" using 4 title "Lina plan, fifo", "" using 5 title "Lina", \
     "" using 6 title "bound ($BOUND_TAG)"
GP
  echo "chart: $OUT/sim_training.png"
else
  echo "chart: skipped (install gnuplot-nox for the PNG)"
fi
