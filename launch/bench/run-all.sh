#!/usr/bin/env bash
# All the training benchmarks of the closing notes, back to back in one run (ratios are only meaningful
# within one run on these noisy 2-core machines): sgemm peak, rmtrain training img/s (none and rm, 1 and
# 2 threads), PyTorch CPU on the same models (if torch is importable), and 2 ranks vs 1 with the
# all-reduce overlapped and not. Release build; prints JSON lines.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN=${RMTRAIN:-$ROOT/.build/release/rmtrain}
STEPS=${STEPS:-12}
MPIRUN=(mpirun -np 2 --bind-to core)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)

echo "# rmtrain, 1 process"
"$BIN" bench --json --models resnet20 --mix none,rm --threads 1,2 --steps $((STEPS * 4))
"$BIN" bench --json --models cifar-resnet18 --mix none,rm --threads 1,2 --steps "$STEPS" --skip-sgemm
if python3 -c "import torch" 2>/dev/null; then
  echo "# PyTorch CPU"
  python3 "$ROOT/launch/bench/torch_train.py" --threads 1,2 --seconds "${TORCH_SECONDS:-10}"
fi
echo "# ResNet-50 at 224x224, batch 32, 2 threads: rmtrain (plain and RecursiveMix), then torchvision's"
"$BIN" bench --json --models resnet50 --image-size 224 --batch-size 32 --mix none,rm --threads 2 --steps 3 --skip-sgemm
if python3 -c "import torchvision" 2>/dev/null; then
  python3 "$ROOT/launch/bench/torch_train.py" --models resnet50 --image-size 224 --batch-size 32 --threads 2 --seconds "${TORCH_SECONDS:-10}"
fi
echo "# rmtrain, 2 ranks x 1 thread, CIFAR ResNet-18, batch 64 per rank: overlapped, then not"
"${MPIRUN[@]}" -x OPENBLAS_NUM_THREADS=1 "$BIN" bench --json --models cifar-resnet18 --steps "$STEPS" --skip-sgemm
"${MPIRUN[@]}" -x OPENBLAS_NUM_THREADS=1 "$BIN" bench --json --models cifar-resnet18 --steps "$STEPS" --skip-sgemm --no-overlap
