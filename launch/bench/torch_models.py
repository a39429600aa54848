"""The CIFAR networks of rmtrain in plain torch, with its parameter names (the ResNets: torchvision's conv1,
bn1, layerN.M.conv1, layerN.M.downsample.0/1, fc; PyramidNet: the RecursiveMix authors' layerN.M.bn1..bn4,
bn_final; DenseNet: the authors' features.dense_block_layer_I.bottle_neck_layer_J.bottle_neck.K,
features.transition_layer_I.down_sample.K, features.bn, with fc for their linear), so rmtrain's exported
weights load with strict=True. Used by torch_train.py (the PyTorch side of
the benchmark), launch/checks/export_torch.py and Tests/NetworkTests/Golden/make_golden.py.
Parameter counts (without the RoI head): python3 launch/bench/torch_models.py"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
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


class CifarResNet(nn.Module):
    """3x3 stride-1 stem, no max-pool, stages of BasicBlocks; stride 2 on each later stage's first block."""

    def __init__(self, widths, counts, in_channels=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, counts)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(c, w, (1 if i == 0 else 2) if j == 0 else 1)); c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.stages = len(widths)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class PyramidBottleneck(nn.Module):
    """Pre-activation bottleneck: BN, 1x1, BN-ReLU, 3x3 (stride), BN-ReLU, 1x1 (x4), BN; shortcut 2x2
    average-pooled (ceil mode) when strided and zero-padded to the output channels; no ReLU after the add
    (Han et al. 2017, as the RecursiveMix authors' models_cifar/pyramidnet.py builds it)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False); self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False); self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False); self.bn4 = nn.BatchNorm2d(cout)
        self.stride, self.cin, self.cout = stride, cin, cout

    def forward(self, x):
        h = self.conv1(self.bn1(x))
        h = self.conv2(F.relu(self.bn2(h)))
        h = self.bn4(self.conv3(F.relu(self.bn3(h))))
        s = F.avg_pool2d(x, 2, 2, ceil_mode=True) if self.stride != 1 else x
        return h + F.pad(s, (0, 0, 0, 0, 0, self.cout - self.cin))


class PyramidNet(nn.Module):
    """CIFAR PyramidNet with bottlenecks, depth 9n + 2: 3x3 stem conv + BN (no ReLU), three stages whose
    width grows by alpha / 3n a block (Python's round), BN + ReLU, average pooling, fc."""

    def __init__(self, depth, alpha, in_channels=3, classes=10):
        super().__init__()
        n = (depth - 2) // 9
        add = alpha / (3 * n)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        width, c = 16.0, 16
        for stage in range(3):
            blocks = []
            for i in range(n):
                width += add
                blocks.append(PyramidBottleneck(c, int(round(width)), 2 if (i == 0 and stage > 0) else 1))
                c = blocks[-1].cout
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.bn_final = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.bn1(self.conv1(x)))))
        x = F.relu(self.bn_final(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (4k)-BN-ReLU-3x3 (k), output concatenated after the input (the authors' Bottleneck)."""

    def __init__(self, cin, k):
        super().__init__()
        self.bottle_neck = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * k, 1, bias=False),
                                         nn.BatchNorm2d(4 * k), nn.ReLU(inplace=True),
                                         nn.Conv2d(4 * k, k, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.bottle_neck(x)], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.down_sample = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, stride=2))

    def forward(self, x):
        return self.down_sample(x)


class DenseNet(nn.Module):
    """DenseNet-BC for CIFAR as models_cifar/densenet.py builds it: 3x3 stem of 2k channels, dense blocks,
    transitions with compression 0.5 (floor), BN + ReLU, average pooling, fc (the authors' linear)."""

    def __init__(self, blocks, k, in_channels=3, classes=10):
        super().__init__()
        c = 2 * k
        self.conv1 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        self.features = nn.Sequential()
        for i, n in enumerate(blocks):
            last = i == len(blocks) - 1
            block = nn.Sequential()
            for j in range(n):
                block.add_module(f"bottle_neck_layer_{j}", DenseLayer(c, k)); c += k
            self.features.add_module(f"dense_block{i}" if last else f"dense_block_layer_{i}", block)
            if not last:
                self.features.add_module(f"transition_layer_{i}", Transition(c, int(0.5 * c))); c = int(0.5 * c)
        self.features.add_module("bn", nn.BatchNorm2d(c))
        self.features.add_module("relu", nn.ReLU(inplace=True))
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(self.conv1(x)), 1), 1))


MODELS = {
    "resnet8": lambda cin=3, k=10: CifarResNet([16, 32, 64], [1, 1, 1], cin, k),
    "resnet20": lambda cin=3, k=10: CifarResNet([16, 32, 64], [3, 3, 3], cin, k),
    "resnet56": lambda cin=3, k=10: CifarResNet([16, 32, 64], [9, 9, 9], cin, k),
    "cifar-resnet18": lambda cin=3, k=10: CifarResNet([64, 128, 256, 512], [2, 2, 2, 2], cin, k),
    "cifar-resnet34": lambda cin=3, k=10: CifarResNet([64, 128, 256, 512], [3, 4, 6, 3], cin, k),
    "pyramidnet11": lambda cin=3, k=10: PyramidNet(11, 24, cin, k),
    "pyramidnet164": lambda cin=3, k=10: PyramidNet(164, 270, cin, k),
    "pyramidnet200": lambda cin=3, k=10: PyramidNet(200, 240, cin, k),
    "densenet13": lambda cin=3, k=10: DenseNet([1, 1, 1, 1], 8, cin, k),
    "densenet121": lambda cin=3, k=10: DenseNet([6, 12, 24, 16], 32, cin, k),
    "densenet161": lambda cin=3, k=10: DenseNet([6, 12, 36, 24], 48, cin, k),
}


if __name__ == "__main__":
    for name, make in MODELS.items():
        for k in (10, 100):
            print(name, k, sum(p.numel() for p in make(3, k).parameters()))
