#!/usr/bin/env python3
"""PyTorch CPU reference for `rmtrain bench`: training images/s of the same models (the CIFAR ResNets in
plain torch; `resnet50`/`resnet18`/`resnet34` from torchvision), batch 64, 32x32 inputs by default, SGD,
NCHW and channels_last, at the given thread counts. Run next to `rmtrain bench` in one session to quote
ratios: python3 launch/bench/torch_train.py --threads 1,2
        python3 launch/bench/torch_train.py --models resnet50 --image-size 224 --batch-size 32 --threads 2
--precision bf16 runs the step under torch.autocast("cpu", dtype=torch.bfloat16) (the authors' mixed precision,
main.py:202, on CPU), as rmtrain's --precision bf16-mixed.
"""
import argparse, json, time
import torch, torch.nn as nn, torch.nn.functional as F


from torch_models import MODELS


def make(name):
    if name in MODELS:
        return MODELS[name]()
    import torchvision                     # the ImageNet ResNets, as rmtrain's resnet18/34/50
    return getattr(torchvision.models, name)(num_classes=10)


def bench(name, threads, channels_last, batch, seconds, size, precision):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = make(name)
    x = torch.randn(batch, 3, size, size); y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    # Median step time, as `rmtrain bench` reports: robust to the bursts of a noisy neighbour on a shared
    # host, which a mean over a fixed time folds into the figure of whichever side ran during them.
    times, t0 = [], time.time()
    while time.time() - t0 < seconds or len(times) < 3:
        s = time.time(); step(); times.append(time.time() - s)
    times.sort()
    return batch / times[len(times) // 2], len(times) * batch / sum(times)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet20,cifar-resnet18")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--layouts", default="NCHW,channels_last")
    ap.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16 (autocast)")
    a = ap.parse_args()
    for t in [int(v) for v in a.threads.split(",")]:
        for m in a.models.split(","):
            for cl, prec in [(v == "channels_last", p) for v in a.layouts.split(",") for p in a.precision.split(",")]:
                ips, mean = bench(m, t, cl, a.batch_size, a.seconds, a.image_size, prec)
                print(json.dumps({"kind": "torch", "model": m, "threads": t, "precision": prec,
                                  "layout": "channels_last" if cl else "NCHW", "images_per_sec": round(ips, 2),
                                  "images_per_sec_mean": round(mean, 2)}), flush=True)
