#!/usr/bin/env bash
#===- scripts/setup.sh - Install dependencies and build Lina ---------------===#
#
# On Debian 12: installs the packages Lina builds with (if missing), then
# configures and builds. Safe to re-run.
#
#   scripts/setup.sh              build/ (Release)
#   scripts/setup.sh --sanitize   build-asan/: GCC with AddressSanitizer and
#                                 UndefinedBehaviorSanitizer, CUDA backend off
#   scripts/setup.sh --fuzz       build-fuzz/: clang-19 with libFuzzer, ASan
#                                 and UBSan; builds only the fuzz targets
#                                 (installs clang-19 and libfuzzer-19-dev)
#
# LINA_BUILD_DIR overrides the build directory, LINA_CMAKE_ARGS adds CMake
# arguments (split at spaces), LINA_JOBS the number of build jobs.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

mode=normal
case "${1:-}" in
  "") ;;
  --sanitize) mode=sanitize ;;
  --fuzz) mode=fuzz ;;
  *) echo "setup.sh: unknown argument '$1' (--sanitize or --fuzz)" >&2; exit 2 ;;
esac

PACKAGES=(
  cmake ninja-build ccache g++ python3
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libopenmpi-dev openmpi-bin libopenblas-dev
  nlohmann-json3-dev libgtest-dev libcli11-dev gnuplot-nox
  python3-jsonschema clang-format-19
)
# libFuzzer and the clang sanitizer runtimes.
[ "$mode" = fuzz ] && PACKAGES+=(clang-19 libfuzzer-19-dev libclang-rt-19-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

CMAKE_ARGS=(
  -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir
  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-19/build/utils/lit/lit.py
)
TARGETS=()
case "$mode" in
  normal)
    BUILD_DIR=${LINA_BUILD_DIR:-build}
    CMAKE_ARGS+=(-DCMAKE_BUILD_TYPE=Release)
    ;;
  sanitize|fuzz)
    # -O1 with line tables: readable reports at a fraction of a debug
    # build's cost. NDEBUG stays defined: Debian's LLVM is a release build
    # and its headers must match it (LLVM_DEBUG refers to symbols that only
    # an assertions build of LLVM defines).
    CMAKE_ARGS+=(
      -DCMAKE_BUILD_TYPE=RelWithDebInfo
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
      "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
      -DLINA_ENABLE_CUDA=OFF
    )
    if [ "$mode" = sanitize ]; then
      BUILD_DIR=${LINA_BUILD_DIR:-build-asan}
      CMAKE_ARGS+=(-DLINA_SANITIZE=ON)
    else
      BUILD_DIR=${LINA_BUILD_DIR:-build-fuzz}
      CMAKE_ARGS+=(-DLINA_BUILD_FUZZERS=ON
        -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19)
      TARGETS=(lina-fuzzers)
    fi
    ;;
esac

export CCACHE_BASEDIR="$PWD"
# shellcheck disable=SC2086 # LINA_CMAKE_ARGS is a list of words
cmake -G Ninja -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" ${LINA_CMAKE_ARGS:-}
ninja -C "$BUILD_DIR" -j"${LINA_JOBS:-$(nproc)}" "${TARGETS[@]}"
