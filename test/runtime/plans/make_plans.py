#!/usr/bin/env python3
# ===- make_plans.py - The integration tests' plans, written out -----------===#
#
# Part of the Lina project.
#
# Writes the JSON plans under test/runtime/plans: a 2-layer top-1 MoE
# training step (dense, gate, dispatch, all_to_all, expert_ffn, all_to_all,
# combine, residual add, then every backward form and the gradient
# all_reduces), each in two versions:
#   *.base.json  what a compiler without the Lina passes emits: one
#                all_reduce per gradient, every collective priority normal;
#   *.lina.json  the Lina schedule: all_reduce split into low-priority
#                partitions (views of the gradient), all_to_all high
#                priority, hold_low on the ops that produce an all_to_all's
#                input, and the forward all_to_all/expert_ffn pipelined in
#                chunks along the capacity dimension (copy ops slice and
#                reassemble the buffers).
# Both versions name their buffers alike, so lina-run --check --baseline
# feeds them identical inputs and weights.
#
# The committed plans are the output of running this script with no
# arguments; it only needs Python 3. Bigger plans for measurements:
#   make_plans.py --ranks 4 --tokens 1024 --hidden 512 --ffn 2048 --out DIR
# --split-grad writes the *.lina.json plans with each expert_ffn_grad split
# into expert_ffn_grad_input, the all_to_all of the input gradient, then
# expert_ffn_grad_weight (the base plans keep the fused op). --split-weight
# does the same and writes that expert_ffn_grad_weight as its two GEMMs:
# expert_weight_grad(in, dz) -> dw1, then expert_weight_grad(act, dy) -> dw2.
# ===----------------------------------------------------------------------===#

import argparse
import json
import math
import os


class PlanBuilder:
    def __init__(self, ranks, name, source):
        self.plan = {
            "format": "lina-plan",
            "version": 1,
            "source": source,
            "function": "train_step",
            "mode": "train",
            "world_size": ranks,
            "grid": {"shape": [ranks]},
            "groups": {
                "ep": {"members": [list(range(ranks))]},
                "dp": {"members": [list(range(ranks))]},
            },
            "buffers": [],
            "ops": [],
            "outputs": [],
        }
        self.name = name

    def buf(self, name, shape, dtype="f32", role="temp", init=None, view=None):
        b = {"id": len(self.plan["buffers"]), "name": name, "dtype": dtype,
             "shape": list(shape), "role": role}
        if init:
            b["init"] = init
        if view:
            b["view"] = {"base": view[0], "offset": view[1]}
        self.plan["buffers"].append(b)
        return b["id"]

    def op(self, kind, inputs, outputs, line, **extra):
        o = {"id": len(self.plan["ops"]), "kind": kind, "inputs": inputs,
             "outputs": outputs, "deps": extra.pop("deps", [])}
        attrs = extra.pop("attrs", None)
        if attrs:
            o["attrs"] = attrs
        o.update(extra)
        o["loc"] = ""  # set by write(): this op's line in the JSON file
        self.plan["ops"].append(o)
        return o["id"]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def make(ranks, tokens, hidden, ffn, local_experts, layers, lina, parts,
         chunks, zero_gate, act, name, split_grad=False, split_weight=False):
    T, H, F, El = tokens, hidden, ffn, local_experts
    E = El * ranks
    k = 1
    cf = 1.25
    C = max(1, math.ceil(k * T / E * cf))
    # Both versions use the same capacity (a multiple of the chunk count),
    # so that they drop the same assignments.
    if chunks > 1:
        C = (C + chunks - 1) // chunks * chunks
    p = PlanBuilder(ranks, name, name.replace(".json", ".mlir"))
    line = [1]

    def L():
        line[0] += 1
        return line[0]

    a2a = {"group": "ep"}
    if lina:
        a2a["priority"] = "high"
    hold = {"hold_low": True} if lina else {}

    x = p.buf("x", [T, H], role="input", init="random")
    params = []
    for l in range(layers):
        params.append({
            "wd": p.buf("wd%d" % l, [H, H], role="param", init="random"),
            "wg": p.buf("wg%d" % l, [H, E], role="param",
                        init="zero" if zero_gate else "random"),
            "w1": p.buf("w1_%d" % l, [El, H, F], role="param", init="random"),
            "w2": p.buf("w2_%d" % l, [El, F, H], role="param", init="random"),
        })
    dy = p.buf("dy", [T, H], role="input", init="random")

    def all_to_all(src, dst, split, concat, **extra):
        return p.op("all_to_all", [src], [dst], L(),
                    attrs={"split_axis": split, "concat_axis": concat},
                    **a2a, **extra)

    # Forward.
    saved = []
    cur = x
    for l in range(layers):
        w = params[l]
        a = p.buf("a%d" % l, [T, H])
        p.op("dense", [cur, w["wd"]], [a], L(), attrs={"activation": act})
        ids = p.buf("ids%d" % l, [T, k], dtype="i32")
        gw = p.buf("gw%d" % l, [T, k])
        p.op("gate", [a, w["wg"]], [ids, gw], L(),
             attrs={"num_experts": E, "top_k": k, "capacity_factor": cf})
        bf = p.buf("buf%d" % l, [E, C, H])
        p.op("dispatch", [a, ids], [bf], L(), attrs={"capacity": C}, **hold)
        r = p.buf("r%d" % l, [El, C * ranks, H])
        b = p.buf("b%d" % l, [E, C, H])
        if lina and chunks > 1:
            # Chunk j carries capacity slots [j*Cc, (j+1)*Cc) of every expert.
            Cc = C // chunks
            for j in range(chunks):
                ch = {"chunk": {"index": j, "count": chunks}}
                sl = p.buf("buf%d_c%d" % (l, j), [E, Cc, H])
                p.op("copy", [bf], [sl], L(), attrs={
                    "src_offsets": [0, j * Cc, 0], "dst_offsets": [0, 0, 0],
                    "sizes": [E, Cc, H]}, **ch, **hold)
                rc = p.buf("r%d_c%d" % (l, j), [El, Cc * ranks, H])
                all_to_all(sl, rc, 0, 1, **ch)
                ec = p.buf("e%d_c%d" % (l, j), [El, Cc * ranks, H])
                p.op("expert_ffn", [rc, w["w1"], w["w2"]], [ec], L(),
                     attrs={"activation": act}, **ch, **hold)
                bc = p.buf("b%d_c%d" % (l, j), [E, Cc, H])
                all_to_all(ec, bc, 1, 0, **ch)
                # Rows of r that came from rank s: [s*C, (s+1)*C); this
                # chunk's part of them: [s*C + j*Cc, ...).
                for s in range(ranks):
                    p.op("copy", [rc], [r], L(), attrs={
                        "src_offsets": [0, s * Cc, 0],
                        "dst_offsets": [0, s * C + j * Cc, 0],
                        "sizes": [El, Cc, H], "accumulate_into": True}, **ch)
                p.op("copy", [bc], [b], L(), attrs={
                    "src_offsets": [0, 0, 0], "dst_offsets": [0, j * Cc, 0],
                    "sizes": [E, Cc, H], "accumulate_into": True}, **ch)
        else:
            all_to_all(bf, r, 0, 1)
            e = p.buf("e%d" % l, [El, C * ranks, H])
            p.op("expert_ffn", [r, w["w1"], w["w2"]], [e], L(),
                 attrs={"activation": act}, **hold)
            all_to_all(e, b, 1, 0)
        c = p.buf("c%d" % l, [T, H])
        p.op("combine", [b, ids, gw], [c], L())
        nxt = p.buf("x%d" % (l + 1), [T, H])
        p.op("add", [a, c], [nxt], L())
        saved.append({"in": cur, "a": a, "ids": ids, "gw": gw, "r": r, "b": b})
        cur = nxt
    y = cur

    def reduce_grad(g, shape, nm):
        """all_reduce of gradient buffer g into a new buffer; returns it."""
        out = p.buf("red_" + nm, shape)
        if lina and parts > 1:
            n = numel(shape)
            per = (n + parts - 1) // parts
            for i in range(parts):
                lo, hi = i * per, min(n, (i + 1) * per)
                if lo >= hi:
                    break
                gi = p.buf("%s_p%d" % (nm, i), [hi - lo], view=(g, lo))
                oi = p.buf("red_%s_p%d" % (nm, i), [hi - lo], view=(out, lo))
                p.op("all_reduce", [gi], [oi], L(), group="dp",
                     priority="low", attrs={"reduction": "sum"},
                     partition={"index": i, "count": parts})
        else:
            p.op("all_reduce", [g], [out], L(), group="dp",
                 attrs={"reduction": "sum"})
        return out

    # Backward, last layer first.
    grads = {}
    g = dy
    for l in reversed(range(layers)):
        w, s = params[l], saved[l]
        db = p.buf("db%d" % l, [E, C, H])
        dgw = p.buf("dgw%d" % l, [T, k])
        p.op("combine_grad", [g, s["b"], s["ids"], s["gw"]], [db, dgw], L(),
             **hold)
        de = p.buf("de%d" % l, [El, C * ranks, H])
        all_to_all(db, de, 0, 1)
        dr = p.buf("dr%d" % l, [El, C * ranks, H])
        dw1 = p.buf("dw1_%d" % l, [El, H, F])
        dw2 = p.buf("dw2_%d" % l, [El, F, H])
        dbuf = None
        if lina and split_grad:
            # The input gradient first, sent while the weight gradients
            # are computed from the saved activation and dz.
            fa = p.buf("act%d" % l, [El, C * ranks, F])
            dz = p.buf("dz%d" % l, [El, C * ranks, F])
            p.op("expert_ffn_grad_input", [de, s["r"], w["w1"], w["w2"]],
                 [dr, fa, dz], L(), attrs={"activation": act}, **hold)
            dbuf = p.buf("dbuf%d" % l, [E, C, H])
            all_to_all(dr, dbuf, 1, 0)
            if split_weight:
                p.op("expert_weight_grad", [s["r"], dz], [dw1], L())
                p.op("expert_weight_grad", [fa, de], [dw2], L())
            else:
                p.op("expert_ffn_grad_weight", [de, s["r"], fa, dz],
                     [dw1, dw2], L())
        else:
            p.op("expert_ffn_grad", [de, s["r"], w["w1"], w["w2"]],
                 [dr, dw1, dw2], L(), attrs={"activation": act}, **hold)
            dbuf = p.buf("dbuf%d" % l, [E, C, H])
            all_to_all(dr, dbuf, 1, 0)
        dad = p.buf("da%d_d" % l, [T, H])
        p.op("dispatch_grad", [dbuf, s["ids"]], [dad], L(),
             attrs={"capacity": C})
        dag = p.buf("da%d_g" % l, [T, H])
        dwg = p.buf("dwg%d" % l, [H, E])
        p.op("gate_grad", [dgw, s["a"], w["wg"], s["ids"]], [dag, dwg], L())
        das = p.buf("da%d_s" % l, [T, H])
        p.op("add", [g, dad], [das], L())
        da = p.buf("da%d" % l, [T, H])
        p.op("add", [das, dag], [da], L())
        dx = p.buf("dx%d" % l, [T, H])
        dwd = p.buf("dwd%d" % l, [H, H])
        p.op("dense_grad", [da, s["in"], w["wd"]], [dx, dwd], L(),
             attrs={"activation": act})
        grads[l] = {"wd": reduce_grad(dwd, [H, H], "dwd%d" % l),
                    "wg": reduce_grad(dwg, [H, E], "dwg%d" % l),
                    "w1": dw1, "w2": dw2}
        g = dx
    outs = [y, g]
    for l in range(layers):
        outs += [grads[l]["wd"], grads[l]["wg"], grads[l]["w1"],
                 grads[l]["w2"]]
    for o in outs:
        p.plan["buffers"][o]["role"] = "output"
    p.plan["outputs"] = outs
    return p.plan


def write(path, plan):
    # One op or buffer per line: diffable and readable by hand; each op's
    # "loc" is its own line in this file, so messages point at it.
    first = 13 + len(plan["buffers"])  # line of op 0 (see below)
    for i, o in enumerate(plan["ops"]):
        o["loc"] = "%s:%d:5" % (os.path.basename(path), first + i)
    with open(path, "w") as f:
        f.write("{\n")
        keys = list(plan.keys())
        for i, key in enumerate(keys):
            end = ",\n" if i + 1 < len(keys) else "\n"
            v = plan[key]
            if key in ("buffers", "ops"):
                f.write('  "%s": [\n' % key)
                f.write(",\n".join("    " + json.dumps(x) for x in v))
                f.write("\n  ]" + end)
            else:
                f.write("  %s: %s%s" % (json.dumps(key), json.dumps(v), end))
        f.write("}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--ranks", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--ffn", type=int, default=32)
    ap.add_argument("--local-experts", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--parts", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--act", default="gelu")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--split-grad", action="store_true",
                    help="split expert_ffn_grad in the .lina.json plans")
    ap.add_argument("--split-weight", action="store_true",
                    help="--split-grad, with its weight half split into "
                    "two expert_weight_grad ops")
    a = ap.parse_args()
    for R in a.ranks:
        for zero_gate, kind in ((False, "moe2"), (True, "onehot")):
            for lina in (False, True):
                name = "%s%s_np%d.%s.json" % (a.prefix, kind, R,
                                              "lina" if lina else "base")
                plan = make(R, a.tokens, a.hidden, a.ffn, a.local_experts,
                            a.layers, lina, a.parts, a.chunks, zero_gate,
                            a.act, name, a.split_grad or a.split_weight,
                            a.split_weight)
                write(os.path.join(a.out, name), plan)


if __name__ == "__main__":
    main()
