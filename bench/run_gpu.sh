#!/usr/bin/env bash
#===- run_gpu.sh - Every GPU test and benchmark of the cuda backend --------===#
#
# Run on a machine with NVIDIA GPUs (CUDA 12.x/13.x driver, compute
# capability 8.0 or newer), from anywhere:
#   bench/run_gpu.sh                 # build in build-gpu/, test, benchmark
#   BUILD=/path/to/build bench/run_gpu.sh
#   QUICK=1 bench/run_gpu.sh         # small benchmark sizes
# Steps:
#   1. configure and build with -DLINA_ENABLE_CUDA=ON (compiler off unless
#      LINA_BUILD_COMPILER=ON);
#   2. the cuda unit tests (kernels against reference loops, bf16 GEMM,
#      the backend against the cpu backend); a skipped GPU test fails here;
#   3. a single-rank training plan on the cuda backend checked against the
#      cpu backend (lina-run --check --baseline-backend cpu) and against
#      itself under the fifo policy; with 2+ GPUs also a 2-rank plan over
#      NCCL under mpirun;
#   4. bench/gpu_kernels (expert GEMM vs dense GEMM, dispatch/combine vs
#      cudaMemcpy); its table is also written to $BUILD/gpu_kernels.txt.
# Exits non-zero if any step fails.
#===------------------------------------------------------------------------===#
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$SRC/build-gpu}
JOBS=${JOBS:-$(nproc)}
PLANS=$SRC/unittests/cuda/Inputs
TOL=${TOL:-1e-3}

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'run_gpu.sh: FAIL: %s\n' "$*" >&2; exit 1; }

step "build ($BUILD)"
cmake -G Ninja -S "$SRC" -B "$BUILD" -DLINA_ENABLE_CUDA=ON \
  -DLINA_BUILD_COMPILER="${LINA_BUILD_COMPILER:-OFF}" >/dev/null
ninja -C "$BUILD" -j "$JOBS" LinaCudaTests lina-run gpu_kernels

step "GPUs"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L
  NGPU=$(nvidia-smi -L | grep -c '^GPU ' || true)
else
  NGPU=1
  echo "nvidia-smi not found; assuming one GPU"
fi

step "cuda unit tests"
LOG=$BUILD/cuda-unittests.log
# This one test covers machines without a GPU and skips where there is one.
"$BUILD/unittests/cuda/LinaCudaTests" \
  --gtest_filter=-CudaBackendSetup.WithoutGpuTheConstructorSaysSo | tee "$LOG"
if grep -q '^\[  SKIPPED \]' "$LOG"; then
  fail "GPU tests were skipped on this machine (see $LOG: no usable GPU?)"
fi

step "single-rank plan: cuda vs cpu (tolerance $TOL relative)"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
"$BUILD/bin/lina-run" "$PLANS/moe_train_1rank.json" --backend cuda --steps 10 \
  --warmup 3 --check --baseline-backend cpu --tolerance "$TOL"
step "single-rank plan: cuda, lina vs fifo"
"$BUILD/bin/lina-run" "$PLANS/moe_train_1rank.json" --backend cuda --steps 3 \
  --warmup 1 --check

if [ "$NGPU" -ge 2 ] && command -v mpirun >/dev/null; then
  step "2-rank plan over NCCL: cuda vs cpu"
  mpirun -np 2 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
    --backend cuda --steps 10 --warmup 3 --check --baseline-backend cpu \
    --tolerance "$TOL" --timeout 60
  step "2-rank plan over NCCL: lina vs fifo policies"
  for policy in lina fifo; do
    mpirun -np 2 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
      --backend cuda --steps 20 --warmup 3 --policy "$policy" --quiet
  done
else
  step "2-rank NCCL plan skipped: needs 2 GPUs and mpirun (found $NGPU GPU(s))"
fi

step "bench/gpu_kernels"
if [ -n "${QUICK:-}" ]; then
  "$BUILD/bin/gpu_kernels" --quick | tee "$BUILD/gpu_kernels.txt"
else
  "$BUILD/bin/gpu_kernels" | tee "$BUILD/gpu_kernels.txt"
fi

step "all GPU tests and benchmarks passed"
