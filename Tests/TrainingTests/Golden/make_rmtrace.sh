#!/usr/bin/env bash
# Makes Golden/rmtrace, the files of ReplayTests: an 8-step RecursiveMix trace of ResNet-8 on 36×36 CIFAR-10
# images (`rmtrain train --trace`, two epochs of 4 steps, the last batch of each epoch 2 images), and the
# float64 PyTorch reference's step from each state of its chain, with PyTorch float32's rounding error on
# each quantity (`launch/checks/rm_golden.py`, whose docstring says why). Run by hand after a release
# build; needs `pip install torch torchvision` (CI does not).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
R=${RMTRAIN:-$root/.build/release/rmtrain}
tmp=$(mktemp -d)
"$R" train --data "imagefolder:$root/../shared/data/cifar10" --image-size 36 --model resnet8 --mix rm --rm-omega 0.5 \
  --train-limit 20 --val-limit 10 --batch-size 6 --epochs 2 --lr 0.05 --seed 5 --threads 1 --quiet \
  --trace "$tmp/trace" --out "$tmp/run"
python3 "$root/launch/checks/rm_golden.py" "$tmp/trace" "$tmp/ref"
out=$here/rmtrace
rm -rf "$out"; mkdir -p "$out"
cp "$tmp/trace/meta.json" "$tmp/trace/weights-initial.safetensors" "$tmp"/trace/step-*.safetensors "$out/"
cp "$tmp/ref"/reference* "$out/"
rm -rf "$tmp"
echo "wrote $out"
