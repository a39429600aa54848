#!/usr/bin/env python3
"""Issue #24's table: training img/s in fp32 and bf16-mixed, ours against PyTorch's autocast, from one run.

For each model, ROUNDS alternations (neighbours compared, as run-all.sh: these VMs share their host) of
  rmtrain --precision fp32 | bf16-mixed (the kernels this CPU's rule picks) | bf16-mixed with
  RMTRAIN_BF16_KERNELS=on (bf16 multiplications forced) | PyTorch fp32 | PyTorch torch.autocast bf16
(PyTorch channels_last), each the median step; prints the medians over the rounds and the ratios, with
the kind=hardware line that says which CPU measured them (and its fp32 FMA and bf16 dot rates per core).
    swift build -c release && python3 launch/bench/precision.py            # ROUNDS=3 THREADS=2
"""
import json, os, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("RMTRAIN", os.path.join(ROOT, ".build/release/rmtrain"))
ROUNDS, THREADS = int(os.environ.get("ROUNDS", 3)), os.environ.get("THREADS", "2")
MODELS = [("resnet20", 32, 64, 40), ("cifar-resnet18", 32, 64, 8), ("resnet50", 224, 32, 3)]
if os.environ.get("MODELS"):
    MODELS = [m for m in MODELS if m[0] in os.environ["MODELS"].split(",")]


def ours(model, size, batch, steps, precision, kernels=None):
    env = dict(os.environ, **({"RMTRAIN_BF16_KERNELS": kernels} if kernels else {}))
    out = subprocess.run([BIN, "bench", "--json", "--models", model, "--image-size", str(size), "--batch-size",
                          str(batch), "--threads", THREADS, "--steps", str(steps), "--skip-sgemm", "--precision",
                          precision], env=env, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return [r for r in rows if r["kind"] == "hardware"][0], [r for r in rows if r["kind"] == "train"][0]["images_per_sec"]


def torch(model, size, batch, precision):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launch/bench/torch_train.py"), "--models", model,
                          "--threads", THREADS, "--layouts", "channels_last", "--image-size", str(size),
                          "--batch-size", str(batch), "--seconds", os.environ.get("TORCH_SECONDS", "6"),
                          "--precision", precision], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])["images_per_sec"]


columns = ["ours fp32", "ours bf16-mixed", "ours bf16 forced", "torch fp32", "torch bf16"]
hardware = None
print(f"| model (batch, size), {THREADS} threads | " + " | ".join(columns) + " | bf16-mixed / ours fp32 | bf16-mixed / torch bf16 | bf16-mixed / torch fp32 |")
print("|---|" + "---|" * (len(columns) + 3))
for model, size, batch, steps in MODELS:
    got = {c: [] for c in columns}
    for _ in range(ROUNDS):
        hardware, v = ours(model, size, batch, steps, "fp32"); got["ours fp32"].append(v)
        _, v = ours(model, size, batch, steps, "bf16-mixed"); got["ours bf16-mixed"].append(v)
        _, v = ours(model, size, batch, steps, "bf16-mixed", "on"); got["ours bf16 forced"].append(v)
        got["torch fp32"].append(torch(model, size, batch, "fp32"))
        got["torch bf16"].append(torch(model, size, batch, "bf16"))
    m = {c: statistics.median(v) for c, v in got.items()}
    print(f"| {model} ({batch}, {size}) | " + " | ".join(f"{m[c]:.1f}" for c in columns)
          + f" | {m['ours bf16-mixed'] / m['ours fp32']:.2f} | **{m['ours bf16-mixed'] / m['torch bf16']:.2f}**"
          + f" | {m['ours bf16-mixed'] / m['torch fp32']:.2f} |", flush=True)
print()
print("hardware: " + ", ".join(f"{k}={v}" for k, v in sorted(hardware.items()) if k != "kind"))
