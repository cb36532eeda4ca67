#!/usr/bin/env bash
#===- scripts/test.sh - Set up, build and run every Lina test -------------===#
#
# Runs scripts/setup.sh, then ctest: the lit suite (lina-opt, lina-translate,
# lina-import, ...), the GoogleTest unit tests, the mpirun integration tests
# and the replay of the fuzz corpora. GPU tests skip with a message where no
# GPU is present.
#
#   scripts/test.sh              build/ (Release), every test
#   scripts/test.sh --sanitize   build-asan/: the same tests with everything
#                                Lina compiles instrumented by AddressSanitizer
#                                and UndefinedBehaviorSanitizer (GCC, CUDA
#                                backend off); any report fails its test
#
# LINA_BUILD_DIR overrides the build directory; extra arguments after `--`
# go to ctest (e.g. scripts/test.sh --sanitize -- -R lit).
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$sanitize" = 1 ]; then
  scripts/setup.sh --sanitize
  build_dir=${LINA_BUILD_DIR:-build-asan}
else
  scripts/setup.sh
  build_dir=${LINA_BUILD_DIR:-build}
fi

# OpenMPI refuses to run as root and to oversubscribe without these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

if [ "$sanitize" = 1 ]; then
  # Every report aborts the process (SIGABRT), so it fails the test even
  # where the test expects a non-zero exit (lit's `not` treats a signal as a
  # failure). lit passes these variables through to the tools it runs.
  supp="$PWD/scripts/lsan.supp"
  # allow_user_poisoning=0: LLVM's headers poison allocator memory by hand
  # under ASan, and Debian's uninstrumented LLVM/MLIR libraries reuse it
  # without unpoisoning: without it every MLIR tool reports a false
  # use-after-poison at start-up.
  # detect_leaks=0: Open MPI's dlopen'ed components allocate at MPI_Init and
  # never free; their frames have no frame pointers, so LeakSanitizer
  # attributes the blocks to random frames and no suppression file can match
  # them (every lina-run test reported ~120 KB "leaked" in 3,300 blocks, all
  # under MPI_Init). Memory errors (ASan) and undefined behaviour (UBSan)
  # still abort the test.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=0:\
detect_stack_use_after_return=1:check_initialization_order=1:\
strict_init_order=1:allow_user_poisoning=0:print_summary=1"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"
  symbolizer=/usr/lib/llvm-19/bin/llvm-symbolizer
  if [ -x "$symbolizer" ]; then
    export ASAN_SYMBOLIZER_PATH=$symbolizer UBSAN_SYMBOLIZER_PATH=$symbolizer
  fi
fi

ctest --test-dir "$build_dir" --output-on-failure \
  -j"$(nproc)" "${ctest_args[@]}"
