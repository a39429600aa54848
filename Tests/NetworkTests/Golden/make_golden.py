#!/usr/bin/env python3
"""Writes the PyTorch golden files that Tests/NetworkTests/GoldenTests.swift compares our layers with.

Run by hand (never in CI) from anywhere:  python3 Tests/NetworkTests/Golden/make_golden.py
Needs only plain torch (no torchvision, no safetensors package). Deterministic: fixed seeds, float32,
single-threaded CPU, so running it again rewrites the same files.

Every file is safetensors (8-byte little-endian header length, JSON header
{name: {dtype: "F32", shape, data_offsets}}, space-padded to 8 bytes, raw little-endian float32), written
by `save` below. Tensors are stored in PyTorch's layout: activations NCHW, conv weights OIHW, linear
weights [out, in]; the Swift test converts to NHWC / OHWI.

Names used in every layer file:
  x        input                      dy           upstream gradient fed to backward
  y        output                     dx           gradient of the input
  weight   / bias                     weight.grad  / bias.grad
Extra names are documented per file below.
"""
import json
import sys
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def save(name, tensors):
    """tensors: list of (name, tensor) in the order they are laid out in the file."""
    header, blobs, offset = {}, [], 0
    for key, t in tensors:
        t = t.detach().to(torch.float32).contiguous().cpu()
        shape = list(t.shape) if t.dim() > 0 else [1]
        raw = struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist())
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    print("%-32s %8d bytes" % (name, os.path.getsize(path)))


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def randn(g, *shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=g) * scale + shift


def uniform(g, lo, hi, *shape):
    return torch.rand(*shape, generator=g) * (hi - lo) + lo


# ---------------------------------------------------------------------------------------------- conv
def conv_case(name, seed, n, cin, cout, h, k, stride, pad, bias):
    g = gen(seed)
    x = randn(g, n, cin, h, h).requires_grad_()
    w = randn(g, cout, cin, k, k, scale=(2.0 / (cin * k * k)) ** 0.5).requires_grad_()
    b = randn(g, cout, scale=0.5).requires_grad_() if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=pad)
    dy = randn(g, *y.shape)
    y.backward(dy)
    out = [("x", x), ("weight", w)] + ([("bias", b)] if bias else [])
    out += [("y", y), ("dy", dy), ("dx", x.grad), ("weight.grad", w.grad)]
    if bias:
        out.append(("bias.grad", b.grad))
    save(name, out)


# ----------------------------------------------------------------------------------------- batch norm
def bn_train_case(name, seed, relu_residual):
    """Training mode, momentum 0.1. running_mean / running_var hold the statistics before the forward,
    running_mean.after / running_var.after after it. With relu_residual the output is
    relu(bn(x) + residual), our fused BatchNorm2d(relu: true) with a residual; residual.grad is its gradient."""
    g = gen(seed)
    n, c, h = 4, 5, 3
    x = (randn(g, n, c, h, h) * uniform(g, 0.5, 2.0, 1, c, 1, 1) + randn(g, 1, c, 1, 1)).requires_grad_()
    bn = nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(uniform(g, 0.5, 1.5, c))
        bn.bias.copy_(randn(g, c, scale=0.3))
        bn.running_mean.copy_(randn(g, c, scale=0.5))
        bn.running_var.copy_(uniform(g, 0.5, 2.0, c))
    rm0, rv0 = bn.running_mean.clone(), bn.running_var.clone()
    bn.train()
    out = [("x", x)]
    if relu_residual:
        r = randn(g, n, c, h, h).requires_grad_()
        y = F.relu(bn(x) + r)
        out.append(("residual", r))
    else:
        y = bn(x)
    dy = randn(g, *y.shape)
    y.backward(dy)
    out += [("weight", bn.weight), ("bias", bn.bias), ("running_mean", rm0), ("running_var", rv0),
            ("y", y), ("dy", dy), ("dx", x.grad), ("weight.grad", bn.weight.grad), ("bias.grad", bn.bias.grad),
            ("running_mean.after", bn.running_mean), ("running_var.after", bn.running_var)]
    if relu_residual:
        out.append(("residual.grad", r.grad))
    save(name, out)


def bn_eval_case(name, seed):
    g = gen(seed)
    n, c, h = 3, 6, 4
    x = randn(g, n, c, h, h, scale=1.5, shift=0.2).requires_grad_()
    bn = nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)
    with torch.no_grad():
        bn.weight.copy_(uniform(g, 0.5, 1.5, c))
        bn.bias.copy_(randn(g, c, scale=0.3))
        bn.running_mean.copy_(randn(g, c, scale=0.5))
        bn.running_var.copy_(uniform(g, 0.3, 3.0, c))
    bn.eval()
    y = bn(x)
    dy = randn(g, *y.shape)
    y.backward(dy)
    save(name, [("x", x), ("weight", bn.weight), ("bias", bn.bias), ("running_mean", bn.running_mean),
                ("running_var", bn.running_var), ("y", y), ("dy", dy), ("dx", x.grad),
                ("weight.grad", bn.weight.grad), ("bias.grad", bn.bias.grad)])


# ------------------------------------------------------------------------------------- linear, pool, CE
def linear_case(name, seed):
    g = gen(seed)
    x = randn(g, 3, 6).requires_grad_()
    lin = nn.Linear(6, 5)
    with torch.no_grad():
        lin.weight.copy_(randn(g, 5, 6, scale=0.4))
        lin.bias.copy_(randn(g, 5, scale=0.4))
    y = lin(x)
    dy = randn(g, *y.shape)
    y.backward(dy)
    save(name, [("x", x), ("weight", lin.weight), ("bias", lin.bias), ("y", y), ("dy", dy), ("dx", x.grad),
                ("weight.grad", lin.weight.grad), ("bias.grad", lin.bias.grad)])


def maxpool_case(name, seed):
    g = gen(seed)
    x = randn(g, 2, 3, 7, 7).requires_grad_()   # continuous values: no ties
    y = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    dy = randn(g, *y.shape)
    y.backward(dy)
    save(name, [("x", x), ("y", y), ("dy", dy), ("dx", x.grad)])


def soft_ce(z, y):
    return -(y * F.log_softmax(z, dim=1)).sum() / z.shape[0]


def ce_case(name, seed):
    """Two cases: targets (rows sum to 1) and targets.unnormalized (rows sum to 0.3..1.7).
    logits.grad is dL/dlogits of the mean loss, with no upstream scaling."""
    g = gen(seed)
    b, k = 4, 10
    z = randn(g, b, k, scale=2.0)
    t = torch.softmax(randn(g, b, k, scale=1.5), dim=1)
    t2 = uniform(g, 0.0, 1.0, b, k)
    t2 = t2 / t2.sum(dim=1, keepdim=True) * uniform(g, 0.3, 1.7, b, 1)
    out = [("logits", z)]
    for suffix, tt in (("", t), (".unnormalized", t2)):
        zz = z.clone().requires_grad_()
        loss = soft_ce(zz, tt)
        loss.backward()
        out += [("targets" + suffix, tt), ("loss" + suffix, loss), ("logits.grad" + suffix, zz.grad)]
    save(name, out)


# ------------------------------------------------------------------------------------------ ResNet-20
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        s = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + s)


class ResNet20(nn.Module):
    """Names as torchvision's (conv1, bn1, layerS.I.conv1, layerS.0.downsample.0, fc), as in Sources/Models."""

    def __init__(self, in_channels=3, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c = 16
        for s, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
            blocks = []
            for i in range(3):
                blocks.append(BasicBlock(c, width, stride if i == 0 else 1))
                c = width
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(h.mean(dim=(2, 3)))


def resnet_case(name, seed, model=None):
    """Batch 4, 3×16×16, 10 classes, training mode, loss = soft-target CE against a random soft target.
    `model`: ResNet-20 by default; PyramidNet-11 and DenseNet-13 from launch/bench/torch_models.py (also
    fc's width).
    param/<name>: weights before the step (random: conv kaiming-normal fan_out, BN γ∈[0.5,1.5], β~N(0,0.2²));
    grad/<name>: their gradients; buffer/<name>: BN running statistics after the forward (they start at
    the defaults, mean 0 and var 1, as our BatchNorm2d's do)."""
    torch.manual_seed(seed)
    g = gen(seed)
    model = model or ResNet20()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu", generator=g)
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(uniform(g, 0.5, 1.5, mod.num_features))
                mod.bias.copy_(randn(g, mod.num_features, scale=0.2))
        model.fc.weight.copy_(randn(g, 10, model.fc.in_features, scale=0.2))
        model.fc.bias.copy_(randn(g, 10, scale=0.2))
    model.train()
    x = randn(g, 4, 3, 16, 16)
    target = torch.softmax(randn(g, 4, 10, scale=2.0), dim=1)
    logits = model(x)
    loss = soft_ce(logits, target)
    loss.backward()
    out = [("input", x), ("target", target), ("logits", logits), ("loss", loss)]
    params = list(model.named_parameters())
    out += [("param/" + k, p) for k, p in params]
    out += [("grad/" + k, p.grad) for k, p in params]
    out += [("buffer/" + k, b) for k, b in model.named_buffers() if not k.endswith("num_batches_tracked")]
    save(name, out)


if __name__ == "__main__":
    conv_case("conv3x3_s1_p1.safetensors", 1, n=2, cin=3, cout=4, h=7, k=3, stride=1, pad=1, bias=True)
    conv_case("conv3x3_s2_p1.safetensors", 2, n=2, cin=3, cout=4, h=7, k=3, stride=2, pad=1, bias=False)
    conv_case("conv1x1_s2.safetensors", 3, n=2, cin=5, cout=4, h=7, k=1, stride=2, pad=0, bias=False)
    bn_train_case("bn_train.safetensors", 4, relu_residual=False)
    bn_train_case("bn_train_relu_residual.safetensors", 5, relu_residual=True)
    bn_eval_case("bn_eval.safetensors", 6)
    linear_case("linear.safetensors", 7)
    maxpool_case("maxpool3_2_1.safetensors", 8)
    ce_case("soft_target_ce.safetensors", 9)
    resnet_case("resnet20.safetensors", 10)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "launch", "bench"))
    from torch_models import MODELS
    resnet_case("pyramidnet11.safetensors", 11, MODELS["pyramidnet11"]())
    resnet_case("densenet13.safetensors", 12, MODELS["densenet13"]())
