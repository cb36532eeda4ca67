#!/usr/bin/env python3
"""Writes a one-rank MoE training-step plan at a chosen size, for
`lina-run --backend cuda --check --baseline-backend cpu`: the op sequence of
unittests/cuda/Inputs/moe_train_1rank.json (gate, dispatch, all_to_all,
expert_ffn, combine, dense, and their gradients, with partitioned
all_reduce) with every shape scaled.

Routing is pinned so that the GPU and the CPU cannot route a token
differently because of a near-tie in the router's last bit:
  --routing all   every token goes to every expert (top-k = experts, no
                  drops): which pick comes first may differ, the result
                  does not (up to rounding);
  --routing tied  the router weights are zero, so every logit ties and
                  every token goes to experts 0..k-1 (ties go to the lower
                  id) on both backends; the capacity holds every token, so
                  nothing is dropped, and the other experts stay empty.

  check_plan.py --tokens 4096 --hidden 1024 --ffn 1024 --experts 16 \\
      --routing all --dtype bf16 -o plan.json
"""
import argparse
import json
import os
import sys

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "unittests", "cuda", "Inputs", "moe_train_1rank.json")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--ffn", type=int, required=True)
    p.add_argument("--experts", type=int, required=True)
    p.add_argument("--top-k", type=int, default=2, help="for --routing tied")
    p.add_argument("--routing", choices=["all", "tied"], required=True)
    p.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    T, H, F, E = a.tokens, a.hidden, a.ffn, a.experts
    for flag, v in [("--tokens", T), ("--hidden", H), ("--ffn", F),
                    ("--experts", E), ("--top-k", a.top_k)]:
        if v < 1:
            sys.exit(f"check_plan.py: {flag} must be positive, got {v}")
    if T < 40 or H < 32 or H % 2:
        sys.exit("check_plan.py: needs --tokens >= 40 and an even --hidden >= 32")
    k = E if a.routing == "all" else a.top_k
    if k > E:
        sys.exit("check_plan.py: --top-k exceeds --experts")
    C = T  # every token fits: nothing is dropped
    with open(TEMPLATE) as f:
        plan = json.load(f)
    ECH, TH, HH, HE, TK = [E, C, H], [T, H], [H, H], [H, E], [T, k]
    shapes = {
        "x": TH, "wg": HE, "ids": TK, "gw": TK, "w1": [E, H, F], "w2": [E, F, H],
        "y": TH, "wd": HH, "z": TH, "dz": TH, "dy": TH, "dwd": HH, "dgw": TK,
        "dw1": [E, H, F], "dw2": [E, F, H], "dx1": TH, "dx2": TH, "dwg": HE,
        "dx": TH, "dwdr": HH, "dwgr": HE, "zc": [32, 32],
    }
    for name in ["buf", "bufa", "eo", "eob", "deob", "deo", "dbufa", "dbuf"]:
        shapes[name] = ECH
    half = H * H // 2
    views = {"dwd_p0": 0, "dwd_p1": half, "dwdr_p0": 0, "dwdr_p1": half}
    for b in plan["buffers"]:
        if b["name"] in views:
            b["shape"] = [half]
            b["view"]["offset"] = views[b["name"]]
        elif b["name"] in shapes:
            b["shape"] = shapes[b["name"]]
        else:
            sys.exit(f"check_plan.py: template buffer {b['name']!r} is unknown")
        if b["dtype"] == "f32":
            b["dtype"] = a.dtype
        if a.routing == "tied" and b["name"] == "wg":
            b["init"] = "zero"
    for op in plan["ops"]:
        if op["kind"] == "gate":
            op["attrs"].update({"num_experts": E, "top_k": k,
                                "capacity_factor": C * E / (k * T)})
    plan["source"] = (f"check_plan.py: T={T} H={H} F={F} E={E} k={k} "
                      f"C={C} routing={a.routing} dtype={a.dtype}")
    with open(a.output, "w") as f:
        json.dump(plan, f, indent=1)


if __name__ == "__main__":
    main()
