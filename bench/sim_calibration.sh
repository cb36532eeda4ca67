#!/usr/bin/env bash
#===- bench/sim_calibration.sh - Simulator vs a measured CPU-MPI run ------===#
#
# Measures this machine with lina-calibrate (MPI ranks as "GPUs", BLAS rate,
# MPI all-to-all bandwidth and latency), then runs the example training step
# on the CPU backend (baseline under fifo, Lina under lina) and simulates the
# same plans on the calibrated cluster, and prints predicted vs measured
# step times and the error of the prediction.
#
# usage: bench/sim_calibration.sh [-n RANKS] [-s STEPS] [MODEL.mlir]
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
RANKS=4 STEPS=10
while getopts "n:s:h" opt; do
  case $opt in
    n) RANKS=$OPTARG ;; s) STEPS=$OPTARG ;;
    *) sed -n '3,11p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
MODEL=${1:-examples/moe_train_ep4.mlir}
BIN=${LINA_BUILD_DIR:-build}/bin
for tool in lina-opt lina-translate lina-run lina-calibrate; do
  [ -x "$BIN/$tool" ] || { echo "error: $BIN/$tool not found; run scripts/setup.sh first" >&2; exit 2; }
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mpirun -np "$RANKS" "$BIN/lina-calibrate" -o "$WORK/cluster.json"
"$BIN/lina-translate" --lina-to-plan "$MODEL" -o "$WORK/base.json"
"$BIN/lina-opt" "$MODEL" --lina-training-pipeline="partition-bytes=65536 chunks=1" \
  | "$BIN/lina-translate" --lina-to-plan -o "$WORK/lina.json"

# FILE -> the mean step time of a `lina-run --json` FILE.
step() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["summary"]["step_ms"])' "$1"
}
printf "\n%-10s %14s %14s %10s\n" plan "measured (ms)" "predicted (ms)" error
for which in base lina; do
  policy=$([ $which = base ] && echo fifo || echo lina)
  mpirun -np "$RANKS" "$BIN/lina-run" "$WORK/$which.json" --policy "$policy" \
    --steps "$STEPS" --warmup 2 --quiet --json "$WORK/measured.json" > /dev/null
  "$BIN/lina-run" "$WORK/$which.json" --backend sim --cluster "$WORK/cluster.json" \
    --policy "$policy" --quiet --json "$WORK/predicted.json" > /dev/null
  measured=$(step "$WORK/measured.json") predicted=$(step "$WORK/predicted.json")
  printf "%-10s %14.2f %14.2f %9.1f%%\n" "$which" "$measured" "$predicted" \
    "$(awk -v m="$measured" -v p="$predicted" 'BEGIN{print 100 * (p - m) / m}')"
done
