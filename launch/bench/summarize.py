#!/usr/bin/env python3
"""The table of `launch/bench/run-all.sh`, from its JSON lines on stdin (Markdown on stdout).

Per model and thread count: rmtrain's and PyTorch channels_last's img/s (median over the rounds, each
round's figure itself the median step), their ratio and each round's ratio, rmtrain's GFLOP/s and its share
of the sgemm peak of the same run; then RecursiveMix's share of the step, and 2 ranks × 1 thread against
1 rank × 2 threads."""
import json, statistics, sys
from collections import defaultdict

ours, torch, rm, peak = defaultdict(list), defaultdict(list), defaultdict(list), {}
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("kind") == "sgemm":
        peak[int(r["threads"])] = float(r["gflops"])
    elif r.get("kind") == "train":
        key = (r["model"], int(r["threads"]), int(r["ranks"]))
        (ours if r["mix"] == "none" else rm)[key].append(r)
    elif r.get("kind") == "torch" and r.get("layout") == "channels_last":
        torch[(r["model"], int(r["threads"]))].append(float(r["images_per_sec"]))

med = statistics.median
print("| model, threads | rmtrain img/s | PyTorch channels_last img/s | ratio (per round) | rmtrain GFLOP/s | share of sgemm peak |")
print("|---|---|---|---|---|---|")
for (model, threads, ranks), rows in ours.items():
    if ranks != 1 or (model, threads) not in torch:
        continue
    a = [float(r["images_per_sec"]) for r in rows]
    b = torch[(model, threads)]
    rounds = " / ".join(f"{x / y:.2f}" for x, y in zip(a, b))
    gflops = med(float(r["gflops"]) for r in rows)
    share = f"{gflops / peak[threads]:.0%}" if threads in peak else "n/a"
    print(f"| {model}, {threads} | {med(a):.1f} | {med(b):.1f} | **{med(a) / med(b):.2f}** ({rounds}) | {gflops:.0f} | {share} |")
print()
print("sgemm peak (GFLOP/s): " + ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.0f}" for t, g in sorted(peak.items())))
for key, rows in rm.items():
    fractions = [float(r["mixing_fraction"]) for r in rows]
    print(f"RecursiveMix's share of the step, {key[0]} at {key[1]} thread(s): {med(fractions):.2%}")
two, one = ours.get(("cifar-resnet18", 1, 2)), ours.get(("cifar-resnet18", 2, 1))
if two and one:
    a, b = [float(r["images_per_sec"]) for r in two], [float(r["images_per_sec"]) for r in one]
    b = b[-len(a):]   # the runs that alternated with the 2-rank ones
    rounds = " / ".join(f"{x / y:.2f}" for x, y in zip(a, b))
    print(f"CIFAR ResNet-18, 2 ranks × 1 thread {med(a):.1f} img/s against 1 rank × 2 threads {med(b):.1f}: "
          f"{med(a) / med(b):.2f} (per round {rounds})")
