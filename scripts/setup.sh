#!/usr/bin/env bash
#===- scripts/setup.sh - Install dependencies and build Lina ---------------===#
#
# On Debian 12: installs the packages Lina builds with (if missing), then
# configures and builds into build/ (or $LINA_BUILD_DIR). Safe to re-run.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${LINA_BUILD_DIR:-build}
PACKAGES=(
  cmake ninja-build ccache g++ python3
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libopenmpi-dev openmpi-bin libopenblas-dev
  nlohmann-json3-dev libgtest-dev
)

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

export CCACHE_BASEDIR="$PWD"
cmake -G Ninja -S . -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir \
  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-19/build/utils/lit/lit.py \
  ${LINA_CMAKE_ARGS:-}
ninja -C "$BUILD_DIR" -j"$(nproc)"
