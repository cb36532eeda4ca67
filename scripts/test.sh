#!/usr/bin/env bash
#===- scripts/test.sh - Set up, build and run every Lina test -------------===#
#
# Runs scripts/setup.sh, then ctest: the lit suite (lina-opt, lina-translate,
# lina-import, ...), the GoogleTest unit tests and the mpirun integration
# tests. GPU tests skip with a message where no GPU is present.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# OpenMPI refuses to run as root and to oversubscribe without these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
ctest --test-dir "${LINA_BUILD_DIR:-build}" --output-on-failure -j"$(nproc)"
