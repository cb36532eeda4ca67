#!/usr/bin/env bash
#===- scripts/demo.sh - The main job: compile a model, run Lina vs baseline ===#
#
# Installs the dependencies and builds (scripts/setup.sh), compiles the
# example MoE training step (examples/moe_train_ep4.mlir) with and without
# the Lina passes, runs both on 4 MPI ranks of this machine on the CPU
# backend, checks that they compute the same outputs and gradients, and
# prints Lina against the baseline.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec bench/train_compare.sh -n 4 -s 10 -r 2 "$@"
