#!/usr/bin/env bash
#===- bench/sim_validation.sh - The simulator against published figures ---===#
#
# Simulates single collectives on the shipped cluster files and prints what
# nccl-tests would print for them (algbw, busbw: all-reduce busbw = algbw
# 2(n-1)/n, all-to-all busbw = algbw (n-1)/n), then the stretch of an
# all_to_all when all-reduces run at the same time (fifo: both start at
# once), for the published Lina testbed shape (4 nodes of 8 A100, one
# 100 Gb/s interface per node). docs/SIMULATOR.md compares these numbers
# with the published ones.
#
# usage: bench/sim_validation.sh
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LINA_BUILD_DIR:-build}/bin
[ -x "$BIN/lina-run" ] || { echo "error: $BIN/lina-run not found; run scripts/setup.sh first" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# plan.py OUT WORLD SPEC...: one plan; SPEC is KIND:GROUP:BYTES:PRIORITY, the
# groups are "world" (all ranks), "node8" (consecutive 8) and "gpu8" (one
# rank of each node-local index: ranks i, i+8, i+16, ...).
cat > "$WORK/plan.py" <<'PY'
import json, sys
out, world, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
groups = {"world": {"members": [list(range(world))]}}
if world % 8 == 0:
    groups["node8"] = {"members": [list(range(i, i + 8)) for i in range(0, world, 8)]}
    groups["gpu8"] = {"members": [list(range(i, world, 8)) for i in range(8)]}
buffers, ops = [], []
for i, spec in enumerate(specs):
    kind, group, nbytes, prio = spec.split(":")
    n = len(groups[group]["members"][0])
    elems = int(nbytes) // 4
    shape = [n, elems // n] if kind == "all_to_all" else [elems]
    for b, role in ((2 * i, "param"), (2 * i + 1, "temp")):
        buffers.append({"id": b, "name": f"b{b}", "dtype": "f32", "shape": shape,
                        "role": role, "init": "random"})
    op = {"id": i, "kind": kind, "inputs": [2 * i], "outputs": [2 * i + 1],
          "group": group, "priority": prio}
    if kind == "all_to_all":
        op["attrs"] = {"split_axis": 0, "concat_axis": 0}
    ops.append(op)
json.dump({"format": "lina-plan", "version": 1, "world_size": world,
           "groups": groups, "buffers": buffers, "ops": ops}, open(out, "w"))
PY

sim() { # plan cluster key -> the value key of the summary (lina-run --json)
  "$BIN/lina-run" "$1" --backend sim --cluster "$2" --quiet --policy fifo \
    --json "$WORK/run.json" > /dev/null
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' \
    "$WORK/run.json" "$3"
}

echo "# bus bandwidth of one collective alone (1 GiB per rank)"
printf "%-20s %-11s %5s %12s %12s %12s\n" cluster collective GPUs "time (ms)" "algbw GB/s" "busbw GB/s"
SIZE=1073741824
for row in "h100-node all_reduce 8" "h100-node all_to_all 8" \
           "a100-ib100 all_reduce 8" "a100-ib100 all_to_all 8" \
           "a100-ib100 all_reduce 32" "a100-ib100 all_to_all 32"; do
  set -- $row
  python3 "$WORK/plan.py" "$WORK/p.json" "$3" "$2:world:$SIZE:high"
  ms=$(sim "$WORK/p.json" "examples/clusters/$1.json" step_ms)
  awk -v c="$1" -v k="$2" -v n="$3" -v ms="$ms" -v s="$SIZE" 'BEGIN {
    alg = s / (ms * 1e-3) / 1e9
    bus = (k == "all_reduce") ? alg * 2 * (n - 1) / n : alg * (n - 1) / n
    printf "%-20s %-11s %5d %12.3f %12.2f %12.2f\n", c, k, n, ms, alg, bus }'
done

echo
echo "# all_to_all stretch under concurrent all-reduce (a100-ib100, 32 GPUs, fifo)"
printf "%-58s %-10s %10s %10s %8s\n" case sharing "a2a (ms)" "alone (ms)" stretch
A2A=20971520 # 20 MiB per GPU: 4096 tokens, top-2, capacity 1.25, hidden 1024, bf16
python3 - "$WORK/collective.json" <<'PY'
import json, sys
c = json.load(open("examples/clusters/a100-ib100.json"))
c["sharing"] = "collective"
json.dump(c, open(sys.argv[1], "w"))
PY
python3 "$WORK/plan.py" "$WORK/alone.json" 32 "all_to_all:world:$A2A:high"
for sharing in pair collective; do
  C=examples/clusters/a100-ib100.json
  [ $sharing = collective ] && C=$WORK/collective.json
  alone=$(sim "$WORK/alone.json" "$C" a2a_ms)
  for row in "one 25 MiB world all-reduce (a DDP bucket)|all_reduce:world:26214400:low" \
             "one 100 MiB world all-reduce|all_reduce:world:104857600:low" \
             "8 expert all-reduces of 16 MiB (one per GPU of a node)|all_reduce:gpu8:16777216:low"; do
    name=${row%%|*} spec=${row#*|}
    python3 "$WORK/plan.py" "$WORK/c.json" 32 "all_to_all:world:$A2A:high" "$spec"
    a2a=$(sim "$WORK/c.json" "$C" a2a_ms)
    awk -v n="$name" -v s="$sharing" -v a="$a2a" -v b="$alone" \
      'BEGIN { printf "%-58s %-10s %10.3f %10.3f %7.2fx\n", n, s, a, b, a / b }'
  done
done
