#!/usr/bin/env python3
"""Checks `rmtrain export` against PyTorch (needs `pip install torch`; not part of CI):
loads the exported safetensors into a plain-torch CIFAR ResNet with torchvision's parameter names
(strict: every key must match, none may be missing) and evaluates it on the first N Fashion-MNIST test
images. The top-1 and loss must equal what `rmtrain eval` printed for the same checkpoint.

  rmtrain export --checkpoint RUN/best.rmck --out /tmp/m.safetensors
  rmtrain eval --checkpoint RUN/best.rmck --val-limit 200 --json
  python3 launch/checks/export_torch.py /tmp/m.safetensors 200
"""
import gzip, json, struct, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

DT = {"F32": np.float32, "I64": np.int64}


def load_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(a.copy())
    return out, header.get("__metadata__", {})


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + s)


class ResNet20(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        c = 16
        for i, w in enumerate([16, 32, 64]):
            blocks = []
            for j in range(3):
                blocks.append(Basic(c, w, (1 if i == 0 else 2) if j == 0 else 1)); c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def idx(path):
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


if __name__ == "__main__":
    path, n = sys.argv[1], int(sys.argv[2])
    state, meta = load_safetensors(path)
    assert meta.get("model") == "resnet20", meta
    model = ResNet20(1, 10)
    model.load_state_dict(state, strict=True)
    model.eval()
    d = "/usr/share/datasets/fashion-mnist/"
    x = idx(d + "t10k-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255
    y = torch.from_numpy(idx(d + "t10k-labels-idx1-ubyte.gz")[:n].astype(np.int64))
    x = (torch.from_numpy(x)[:, None] - 0.2860) / 0.3530
    with torch.no_grad():
        z = model(x)
    top1 = (z.argmax(1) == y).float().mean().item()
    loss = F.cross_entropy(z, y).item()
    print(json.dumps({"images": n, "top1": top1, "loss": loss, "keys": len(state)}))
