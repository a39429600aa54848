"""The CIFAR ResNets of rmtrain in plain torch, with torchvision's parameter names (conv1, bn1,
layerN.M.conv1, layerN.M.downsample.0/1, fc), so rmtrain's exported weights load with strict=True.
Used by torch_train.py (the PyTorch side of the benchmark) and launch/checks/export_torch.py."""
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


MODELS = {
    "resnet8": lambda cin=3, k=10: CifarResNet([16, 32, 64], [1, 1, 1], cin, k),
    "resnet20": lambda cin=3, k=10: CifarResNet([16, 32, 64], [3, 3, 3], cin, k),
    "resnet56": lambda cin=3, k=10: CifarResNet([16, 32, 64], [9, 9, 9], cin, k),
    "cifar-resnet18": lambda cin=3, k=10: CifarResNet([64, 128, 256, 512], [2, 2, 2, 2], cin, k),
    "cifar-resnet34": lambda cin=3, k=10: CifarResNet([64, 128, 256, 512], [3, 4, 6, 3], cin, k),
}
