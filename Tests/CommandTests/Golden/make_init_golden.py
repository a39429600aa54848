#!/usr/bin/env python3
"""Writes the golden file that Tests/CommandTests/InitWeightsTests.swift loads with --init-weights.

A ResNet-8 (CIFAR, 3 channels, 10 classes) in plain torch under torchvision's names, with random weights
and BN statistics, saved by the `safetensors` package with the tensors in F32, F16 and BF16 in turn (and the
int64 num_batches_tracked counters torchvision writes), plus an NHWC input and the logits PyTorch computes in
eval mode from the weights as stored (after rounding to F16/BF16).

Run by hand (never in CI):  python3 Tests/CommandTests/Golden/make_init_golden.py
Needs: pip install torch safetensors
"""
import os, sys
import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "launch", "bench"))
from torch_models import MODELS  # noqa: E402

torch.manual_seed(0)
model = MODELS["resnet8"](3, 10)
state = {}
for i, (name, t) in enumerate(model.state_dict().items()):
    if name.endswith("num_batches_tracked"):
        state[name] = torch.tensor(5, dtype=torch.int64)
        continue
    if name.endswith("running_var"):
        v = torch.rand_like(t) + 0.5
    elif name.endswith("running_mean") or name.endswith(".bias"):
        v = torch.randn_like(t) * 0.1
    elif name.endswith("bn1.weight") or name.endswith("bn2.weight") or ".bn" in name or name.startswith("bn"):
        v = torch.rand_like(t) + 0.5
    else:
        v = t.clone()
    state[name] = v.to([torch.float32, torch.float16, torch.bfloat16][i % 3]).contiguous()
model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
model.eval()
x = torch.randn(2, 3, 8, 8)
with torch.no_grad():
    logits = model(x)
save_file(state, os.path.join(here, "init_weights.safetensors"), metadata={"format": "pt"})
save_file({"input_nhwc": x.permute(0, 2, 3, 1).contiguous(), "logits": logits},
          os.path.join(here, "init_weights_expected.safetensors"))
print("dtypes:", sorted({str(v.dtype) for v in state.values()}), "logits[0]:", logits[0, :4].tolist())
