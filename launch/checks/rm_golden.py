#!/usr/bin/env python3
"""Writes the golden files of the Swift replay test (Tests/TrainingTests/ReplayTests.swift) from an
`rmtrain train --trace DIR` run, with rm_reference.py's independent replay (plain torch + torchvision):

    python3 launch/checks/rm_golden.py TRACE OUT       # Tests/TrainingTests/Golden/make_rmtrace.sh runs it

Why step by step. A free-running float32 trajectory of a BatchNorm ResNet on tiny batches is chaotic: the
same run on OpenBLAS's Prescott, Haswell and SkylakeX kernels (three summation orders) gives losses 0.1-0.7 %
apart after three steps, so a test of the free trajectory holds only on the machine that made its golden
file (issue #22). A single step from given weights is well-conditioned. So the reference walks a chain of
float32 states and takes one float64 step from each:

    s_1 = the trace's initial weights;  u_n = float32(float64 step from s_n);  s_{n+1} = s_n + u_n  (float32 add)

(BN running statistics: s_{n+1} holds the float64 step's values rounded to float32). A float32 add is
correctly rounded on every CPU, so the Swift test rebuilds exactly these states. The SGD momentum is each
side's own, as in training: a linear filter of the gradients, so it stays as close as the gradients are.

Tolerances from float32 rounding, not from one machine's luck: the same steps in PyTorch float32, each from
the same s_n, measure how far a correct float32 implementation lands from float64 on every quantity (the
loss, each parameter's update, each BN statistic). The Swift test allows a fixed multiple of that.

Writes to OUT: reference.json ({"steps": [{step, loss, loss_f32, update_f32: {name: rel. error},
buffer_f32: {name: rel. error}}]}) and reference-NNNNNN.safetensors per step: `update/NAME` (u_n of each
parameter) and `after/NAME` (each BN statistic after the step), OHWI layout.
"""
import argparse, glob, json, os

import torch

import rm_reference as ref


def as_f32(t):
    """float64 tensor holding the float32 rounding of t (what the golden files store)."""
    return t.float().double()


class Chain(dict):
    """s_n of the docstring, built lazily: s_n needs the float64 step from s_{n-1}, which the replay has
    just put into `afters[n-1]` when it asks for s_n."""

    def __init__(self, initial, afters, params, first):
        super().__init__()
        self.afters, self.params = afters, params
        self[first] = {k: as_f32(v.double()) for k, v in initial.items()}
        self.prev = first

    def __missing__(self, n):
        s = self[self.prev]
        after = self.afters[self.prev]
        nxt = {}
        for k, v in s.items():
            if k in self.params:   # float32 add of the float32-rounded update: bit-exact in Swift too
                nxt[k] = (v.float() + (after[k].double() - v).float()).double()
            else:
                nxt[k] = as_f32(after[k].double())
        self[n] = nxt
        self.prev = n
        return nxt


def rel(a, b):
    return (a - b).norm().item() / max(b.norm().item(), 1e-30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    a = ap.parse_args()
    torch.set_num_threads(1)
    dirs = ref.rank_dirs(a.trace)
    metas = [json.load(open(os.path.join(d, "meta.json"))) for d in dirs]
    if len(dirs) != 1:
        raise SystemExit("rm_golden: one rank's trace only")
    steps = sorted(int(os.path.basename(p)[5:11]) for p in glob.glob(os.path.join(dirs[0], "step-*.safetensors")))
    records = lambda n: [ref.read_safetensors(os.path.join(dirs[0], f"step-{n:06d}.safetensors"))]
    initial, _ = ref.read_safetensors(os.path.join(dirs[0], "weights-initial.safetensors"))
    params = {p["name"] for p in metas[0]["parameters"]}

    ref.DTYPE = torch.float64
    afters64 = {}
    chain = Chain(initial, afters64, params, steps[0])
    rows64, _, _ = ref.replay(dirs, metas, steps, False, records, starts=chain, states=afters64)
    ref.DTYPE = torch.float32
    afters32 = {}
    rows32, _, _ = ref.replay(dirs, metas, steps, False, records, starts=dict(chain), states=afters32)
    ref.DTYPE = torch.float64

    os.makedirs(a.out, exist_ok=True)
    rows = []
    for n, r64, r32 in zip(steps, rows64, rows32):
        s, a64, a32 = chain[n], afters64[n], afters32[n]
        files, upd, buf = {}, {}, {}
        for k in s:
            if k in params:
                u64, u32 = a64[k].double() - s[k], a32[k].double() - s[k]
                files["update/" + k] = u64
                upd[k] = rel(u32, u64)
            else:
                files["after/" + k] = a64[k]
                buf[k] = rel(a32[k].double(), a64[k].double())
        ref.write_safetensors(os.path.join(a.out, f"reference-{n:06d}.safetensors"), files, {"layout": "OHWI"})
        rows.append({"step": n, "loss": r64["loss"], "loss_f32": r32["loss"], "update_f32": upd, "buffer_f32": buf})
    json.dump({"steps": rows}, open(os.path.join(a.out, "reference.json"), "w"), indent=1)
    worst = max((v, k, r["step"]) for r in rows for k, v in r["update_f32"].items())
    print(f"rm_golden: {len(rows)} steps to {a.out}; PyTorch float32's worst update error {worst[0]:.1e} "
          f"({worst[1]}, step {worst[2]})")


if __name__ == "__main__":
    main()
