#!/usr/bin/env bash
#===- run_gpu.sh - One-command validation of the cuda backend on a GPU -----===#
#
# Run on a machine with an NVIDIA GPU (driver for CUDA 12.x/13.x, compute
# capability 8.0 or newer), from anywhere:
#   bench/run_gpu.sh                 # build in build-gpu/, test, benchmark
#   BUILD=/path/to/build bench/run_gpu.sh
#   QUICK=1 bench/run_gpu.sh         # small benchmark sizes only
# One GPU is enough (about 5-10 minutes with the build cached); the
# multi-rank part runs only where 2 or more GPUs are visible (NCCL refuses
# two ranks on one GPU). Without a GPU it says so and exits 0.
# Steps:
#   1. build with -DLINA_ENABLE_CUDA=ON (the compiler off unless
#      LINA_BUILD_COMPILER=ON);
#   2. unit tests: the host-only communicator/teardown tests and every cuda
#      test, including the training step at hidden 1024, 16 experts, 4096
#      tokens against the cpu backend in f32, bf16 and f16 with pinned
#      routing (LINA_CUDA_LARGE=1); a skipped GPU test fails here;
#   3. compute-sanitizer memcheck, racecheck and synccheck on the kernel
#      tests (skipped, with a message, if compute-sanitizer is absent);
#   4. lina-run --backend cuda --check --baseline-backend cpu on plans of
#      that size (bench/gpu_kernels/check_plan.py, f32: the cpu backend
#      computes in f32 only), and the cuda backend's lina vs fifo policies;
#   5. bench/gpu_kernels: every output checked; grouped GEMM / dense GEMM at
#      equal FLOPs and dispatch+combine / memcpy bandwidth; the table also
#      goes to $BUILD/gpu_kernels.txt;
#   6. with 2+ GPUs: the 2-rank plan over NCCL under mpirun against the cpu
#      backend, both policies, and a rank left waiting for a peer that has
#      gone must end the job within the watchdog timeout, naming the rank.
# Exits non-zero if any step fails.
#===------------------------------------------------------------------------===#
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$SRC/build-gpu}
JOBS=${JOBS:-$(nproc)}
PLANS=$SRC/unittests/cuda/Inputs
TOL=${TOL:-1e-3}
START=$SECONDS

step() { printf '\n=== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { printf 'run_gpu.sh: FAIL: %s\n' "$*" >&2; exit 1; }
skip_all() {
  printf 'run_gpu.sh: SKIPPED: no usable NVIDIA GPU on this machine (%s); ' "$1"
  printf 'nothing was tested or measured.\n'
  exit 0
}

# A GPU at all? (cheap, before building)
if command -v nvidia-smi >/dev/null 2>&1; then
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  [ "$NGPU" -ge 1 ] || skip_all "nvidia-smi lists no GPU"
elif [ -e /dev/nvidia0 ] || [ -e /dev/dxg ]; then
  NGPU=1
else
  skip_all "no nvidia-smi and no /dev/nvidia0"
fi

step "build ($BUILD)"
cmake -G Ninja -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DLINA_ENABLE_CUDA=ON -DLINA_BUILD_COMPILER="${LINA_BUILD_COMPILER:-OFF}" \
  >/dev/null
ninja -C "$BUILD" -j "$JOBS" LinaCudaTests LinaCudaHostTests lina-run gpu_kernels

# The authoritative check: can this process use a GPU? (exit 77: no)
set +e
PROBE=$("$BUILD/bin/gpu_kernels" --probe 2>&1)
RC=$?
set -e
[ "$RC" -eq 77 ] && skip_all "$PROBE"
[ "$RC" -eq 0 ] || fail "gpu_kernels --probe: $PROBE"
echo "$PROBE"

step "GPUs ($NGPU visible)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L || true

step "unit tests (host-only and cuda, realistic sizes included)"
"$BUILD/unittests/cuda/host/LinaCudaHostTests"
LOG=$BUILD/cuda-unittests.log
# One test covers machines without a GPU and skips where there is one.
LINA_CUDA_LARGE=1 "$BUILD/unittests/cuda/LinaCudaTests" \
  --gtest_filter=-CudaBackendSetup.WithoutGpuTheConstructorSaysSo | tee "$LOG"
if grep -q '^\[  SKIPPED \]' "$LOG"; then
  fail "GPU tests were skipped on this machine (see $LOG)"
fi

step "compute-sanitizer on the kernel tests"
SANITIZER=$(command -v compute-sanitizer || true)
[ -z "$SANITIZER" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] &&
  SANITIZER=/usr/local/cuda/bin/compute-sanitizer
if [ -n "$SANITIZER" ]; then
  KERNELS='CudaKernels.*:CudaSlots*:CudaRouting.*'
  for tool in memcheck racecheck synccheck; do
    step "compute-sanitizer --tool $tool"
    "$SANITIZER" --tool "$tool" --error-exitcode 1 \
      "$BUILD/unittests/cuda/LinaCudaTests" --gtest_filter="$KERNELS" \
      --gtest_brief=1 || fail "compute-sanitizer $tool found errors"
  done
else
  echo "compute-sanitizer not found (install the CUDA toolkit's sanitizer): step SKIPPED"
fi

step "lina-run --check against the cpu backend (hidden 1024, 16 experts, 4096 tokens, f32)"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# One rank: let the cpu baseline's BLAS use every core (lina-run defaults
# to one BLAS thread per rank).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
for routing in all tied; do
  python3 "$SRC/bench/gpu_kernels/check_plan.py" --tokens 4096 --hidden 1024 \
    --ffn 1024 --experts 16 --routing "$routing" -o "$TMP/$routing.json"
  "$BUILD/bin/lina-run" "$TMP/$routing.json" --backend cuda --steps 5 \
    --warmup 2 --check --baseline-backend cpu --tolerance "$TOL"
done
"$BUILD/bin/lina-run" "$PLANS/moe_train_1rank.json" --backend cuda --steps 10 \
  --warmup 3 --check --baseline-backend cpu --tolerance "$TOL"
step "cuda backend: lina vs fifo policies"
"$BUILD/bin/lina-run" "$TMP/all.json" --backend cuda --steps 3 --warmup 1 --check

step "bench/gpu_kernels"
if [ -n "${QUICK:-}" ]; then
  "$BUILD/bin/gpu_kernels" --quick | tee "$BUILD/gpu_kernels.txt"
else
  "$BUILD/bin/gpu_kernels" | tee "$BUILD/gpu_kernels.txt"
fi

if [ "$NGPU" -ge 2 ] && command -v mpirun >/dev/null 2>&1; then
  export OPENBLAS_NUM_THREADS=1
  export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
  step "2-rank plan over NCCL: cuda vs cpu"
  mpirun -np 2 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
    --backend cuda --steps 10 --warmup 3 --check --baseline-backend cpu \
    --tolerance "$TOL" --timeout 60
  step "2-rank plan over NCCL: lina and fifo policies"
  for policy in lina fifo; do
    mpirun -np 2 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
      --backend cuda --steps 20 --warmup 3 --policy "$policy" --quiet --timeout 60
  done
  step "2-rank: a rank left waiting for a peer ends the job, naming the rank"
  # Rank 1 runs one step more than rank 0, which finalizes its
  # communicators and leaves: rank 1 waits for a peer that is gone (at the
  # step barrier or in a collective). The watchdog must end the job
  # (communicators aborted, MPI_Abort) with a message naming the rank,
  # and rank 0's bounded finalize must not hang either.
  T0=$SECONDS
  set +e
  timeout 120 mpirun -np 1 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
      --backend cuda --steps 2 --warmup 0 --timeout 10 : \
    -np 1 "$BUILD/bin/lina-run" "$PLANS/moe_train_2rank.json" \
      --backend cuda --steps 3 --warmup 0 --timeout 10 >"$TMP/stuck.log" 2>&1
  RC=$?
  set -e
  cat "$TMP/stuck.log"
  ELAPSED=$((SECONDS - T0))
  [ "$RC" -ne 0 ] || fail "ranks running different step counts both succeeded"
  [ "$RC" -ne 124 ] || fail "the job hung until timeout(1) killed it"
  [ "$ELAPSED" -lt 60 ] || fail "the job took ${ELAPSED}s to end (timeout 10 s)"
  grep -q 'lina-run: error: rank [01]: ' "$TMP/stuck.log" ||
    fail "the error message does not name the rank"
else
  step "multi-rank NCCL part skipped: needs 2 GPUs and mpirun (found $NGPU GPU(s))"
fi

step "all GPU tests and benchmarks passed ($((SECONDS - START)) s)"
