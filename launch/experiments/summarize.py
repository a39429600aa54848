#!/usr/bin/env python3
"""The table of launch/experiments/table3.sh from the committed metrics (docs/experiments/table3/*.jsonl):
top-1 error (mean ± sample std over seeds) at the last epoch and at the best epoch (the paper's "averaged
best"), the effective number of classes in the training targets (the paper's Fig. 8 measure: classes with
target weight above 1e-2 and 1e-4, per sample, averaged over the run), and whether the paper's order holds.
Plain Python; prints markdown."""
import glob, json, os, statistics, sys

here = os.path.dirname(os.path.abspath(__file__))
folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "docs", "experiments", "table3")
NAMES = {"none": "no mixing", "mixup": "Mixup (α 1)", "cutmix": "CutMix (α 1)", "rm": "RecursiveMix (α 0.5, ω 0.1)",
         "rm-omega0": "RecursiveMix, ω 0 (history only)"}
runs = {}
for path in sorted(glob.glob(os.path.join(folder, "*.jsonl"))):
    method, seed = os.path.basename(path)[:-6].rsplit("-s", 1)
    rows = [json.loads(l) for l in open(path) if l.strip()]
    runs.setdefault(method, {})[int(seed)] = rows
if not runs:
    sys.exit(f"summarize: no runs in {folder}")


def ms(values):
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


epochs = {len(r) for m in runs.values() for r in m.values()}
print(f"| method | seeds | epochs | top-1 error, last epoch (%) | top-1 error, best epoch (%) | "
      f"effective classes > 1e-2 | > 1e-4 |")
print("|---|---|---|---|---|---|---|")
summary = {}
for method in [m for m in NAMES if m in runs] + [m for m in runs if m not in NAMES]:
    seeds = runs[method]
    last = [100 * (1 - r[-1]["val_top1"]) for r in seeds.values()]
    best = [100 * (1 - max(x["val_top1"] for x in r)) for r in seeds.values()]
    e2 = statistics.mean(statistics.mean(x.get("effective_classes_1e-2", 1) for x in r) for r in seeds.values())
    e4 = statistics.mean(statistics.mean(x.get("effective_classes_1e-4", 1) for x in r) for r in seeds.values())
    ep = sorted({len(r) for r in seeds.values()})
    summary[method] = statistics.mean(best)
    print(f"| {NAMES.get(method, method)} | {', '.join(map(str, sorted(seeds)))} | {'/'.join(map(str, ep))} | "
          f"{ms(last)} | {ms(best)} | {e2:.2f} | {e4:.2f} |")
order = ["rm", "cutmix", "mixup", "none"]
if all(m in summary for m in order):
    got = sorted(order, key=lambda m: summary[m])
    holds = got == order
    print()
    print(f"Order by mean best-epoch error: {' < '.join(NAMES[m].split(' (')[0] for m in got)}; the paper's order "
          f"RecursiveMix < CutMix < Mixup < none {'holds' if holds else 'does not hold'} at this scale.")
