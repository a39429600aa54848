#!/usr/bin/env python3
"""Checks `rmtrain export` against PyTorch (needs `pip install torch`; not part of CI):
loads the exported safetensors into the plain-torch definition of its model (launch/bench/torch_models.py:
the CIFAR ResNets, PyramidNet, DenseNet; strict: every key must match, none may be missing) and evaluates it on the
first N Fashion-MNIST test images. With N = 10000 (the whole test set: `--val-limit` would draw a
class-balanced subset instead of the first N) the top-1 and loss must equal what `rmtrain eval` prints.

  rmtrain export --checkpoint RUN/best.rmck --out /tmp/m.safetensors
  rmtrain eval --checkpoint RUN/best.rmck --json
  python3 launch/checks/export_torch.py /tmp/m.safetensors 10000
"""
import gzip, json, os, struct, sys
import numpy as np
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from torch_models import MODELS  # noqa: E402

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


def idx(path):
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


if __name__ == "__main__":
    path, n = sys.argv[1], int(sys.argv[2])
    state, meta = load_safetensors(path)
    model = MODELS[meta["model"]](1, 10)
    model.load_state_dict(state, strict=True)
    model.eval()
    d = "/usr/share/datasets/fashion-mnist/"
    x = idx(d + "t10k-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255
    y = torch.from_numpy(idx(d + "t10k-labels-idx1-ubyte.gz")[:n].astype(np.int64))
    x = (torch.from_numpy(x)[:, None] - 0.2860) / 0.3530
    with torch.no_grad():  # batches of 500: DenseNet's concatenations on 10,000 images at once need > 24 GB
        z = torch.cat([model(x[i:i + 500]) for i in range(0, n, 500)])
    top1 = (z.argmax(1) == y).float().mean().item()
    loss = F.cross_entropy(z, y).item()
    print(json.dumps({"images": n, "top1": top1, "loss": loss, "keys": len(state)}))
