"""Compares the p95 batch latency of two `lina-run --mode infer --json` files.

usage: compare_p95.py FASTER.json SLOWER.json

Prints `p95 A < p95 B: yes` when the first file's summary.p95_ms is
strictly below the second's, else `... : no`, with both values.
"""
import json
import sys


def p95(path):
    with open(path) as f:
        return json.load(f)["summary"]["p95_ms"]


a, b = p95(sys.argv[1]), p95(sys.argv[2])
print(f"p95 {a:.3f} ms < p95 {b:.3f} ms: {'yes' if a < b else 'no'}")
