#!/usr/bin/env python3
# ===- bench/olmoe_like_trace.py - OLMoE-like routing trace from counts ---===#
#
# Builds a per-token routing trace (docs/INFERENCE.md schema) that matches
# published OLMoE-1B-7B routing statistics (allenai/OLMoE, Apache-2.0):
# per-expert top-1 and top-8 counts of layers 0, 7 and 15, and the top-1
# cross-layer joint counts of (0, 7) and (7, 15). The top-1 experts follow a
# Markov chain with the layer-0 top-1 marginal and the conditional
# P(b at the next layer | a) of the joint counts; the other k-1 experts are
# drawn without repetition in proportion to the residual counts (top-8
# minus top-1). Trace layers 0, 1, 2 are the model's layers 0, 7, 15.
#
# usage: olmoe_like_trace.py COUNTS_DIR DOMAIN TOKENS SEED OUT.jsonl
# ===----------------------------------------------------------------------===#
import bisect
import json
import random
import sys


def cumulative(weights):
    out, total = [], 0.0
    for w in weights:
        total += max(0.0, w)
        out.append(total)
    return out


def draw(rng, cum):
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: olmoe_like_trace.py COUNTS_DIR DOMAIN TOKENS SEED OUT.jsonl")
    root, domain, tokens, seed, out = sys.argv[1:]
    tokens, seed = int(tokens), int(seed)
    load = lambda kind: json.load(open(f"{root}/{kind}/{domain}.json"))
    top8 = load("expert_counts")["counts"]
    top1 = load("expert_counts_top1")["counts"]
    cross = load("expert_counts_crosslayer_top1")["matrices"]
    layers, experts, k = len(top1), len(top1[0]), 8
    first = cumulative(top1[0])
    # Conditional next top-1 given this top-1; a row without counts falls
    # back to the next layer's marginal.
    nxt = [[cumulative(row) if sum(row) > 0 else cumulative(top1[l + 1])
            for row in cross[l]] for l in range(layers - 1)]
    residual = [[max(0.0, a - b) + 1e-3 for a, b in zip(top8[l], top1[l])]
                for l in range(layers)]
    rng = random.Random(seed)
    with open(out, "w") as f:
        for t in range(tokens):
            prev = None
            for l in range(layers):
                top = draw(rng, first) if l == 0 else draw(rng, nxt[l - 1][prev])
                chosen, weights = [top], list(residual[l])
                weights[top] = 0.0
                while len(chosen) < k:
                    e = draw(rng, cumulative(weights))
                    chosen.append(e)
                    weights[e] = 0.0
                w = sorted((rng.uniform(0.5, 1.0) * 0.7 ** j for j in range(k)),
                           reverse=True)
                s = sum(w)
                f.write(json.dumps({"request": t, "token": 0, "layer": l,
                                    "experts": chosen,
                                    "weights": [round(x / s, 4) for x in w]}) + "\n")
                prev = top


if __name__ == "__main__":
    main()
