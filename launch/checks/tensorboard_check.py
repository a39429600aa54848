#!/usr/bin/env python3
"""Reads a run's TensorBoard event files with the `tensorboard` package (pip install tensorboard) and
compares every `epoch/<key>` scalar with metrics.jsonl (float32: relative 1e-6), and checks that the step
scalars `train/loss` and `train/lr` are there and, with a mixing method, one PNG `mixed_batches` per epoch. Exits 0 when all hold; prints what it compared last.

    python3 launch/checks/tensorboard_check.py RUN_DIR
"""
import json, math, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

def main(run):
    acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    bad, compared = [], 0
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "step") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            tag = "epoch/" + key
            got = [e.value for e in acc.Scalars(tag) if e.step == row["step"]] if tag in tags else []
            if not got:
                bad.append(f"{tag} at step {row['step']}: missing")
            elif not math.isclose(got[-1], value, rel_tol=1e-6, abs_tol=1e-30) and not (abs(value) > 3.4e38):
                bad.append(f"{tag} at step {row['step']}: {got[-1]} vs {value}")
            compared += 1
    steps = [e.step for e in acc.Scalars("train/loss")] if "train/loss" in tags else []
    if not steps or "train/lr" not in tags:
        bad.append("train/loss or train/lr missing")
    images = acc.Images("mixed_batches") if "mixed_batches" in acc.Tags()["images"] else []
    mix = next((l.split(":", 1)[1].strip().strip('"') for l in open(os.path.join(run, "config.yaml")) if l.startswith("mix:")), "none")
    if mix != "none" and len(images) < len(rows):
        bad.append(f"{len(images)} mixed_batches images for {len(rows)} epochs (--mix {mix})")
    for im in images:
        if not im.encoded_image_string.startswith(b"\x89PNG"):
            bad.append(f"mixed_batches at step {im.step} is not a PNG")
    for b in bad:
        print("MISMATCH", b)
    print(f"tensorboard check: {compared} epoch scalars compared with metrics.jsonl over {len(rows)} epochs, "
          f"{len(steps)} train/loss points (steps {steps[:1]}…{steps[-1:]}), {len(images)} mixed_batches images "
          f"(steps {[im.step for im in images]}), {len(bad)} mismatches")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
