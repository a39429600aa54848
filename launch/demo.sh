#!/usr/bin/env bash
# The demo: install what is missing, build in release mode, and train ResNet-20 on Fashion-MNIST
# (Debian's dataset-fashion-mnist, no download) for a few epochs. Extra arguments go to `rmtrain train`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/setup.sh
swift build -c release --product rmtrain 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
BIN=.build/release/rmtrain
[ -x "$BIN" ] || { echo "demo: build failed" >&2; exit 1; }

OUT=${OUT:-runs/demo}
rm -rf "$OUT"
set -x
"$BIN" train --data fashion-mnist --model resnet20 --epochs 3 --batch-size 128 --lr 0.1 --wd 5e-4 \
  --warmup-epochs 0.2 --seed 27 --out "$OUT" "$@"
{ set +x; } 2>/dev/null

echo
echo "demo: metrics in $OUT/metrics.jsonl, weights in $OUT/final.safetensors"
