#!/usr/bin/env bash
# The closing table of the speed work, from one run. These 2-core VMs share their host: throughput moves by
# ±25 % within minutes, so every comparison is made between neighbours: for each model and thread count,
# ROUNDS alternations of rmtrain and PyTorch channels_last, each reporting the median step; the 2-rank run
# alternates with the 1-rank one the same way. Release build. Prints JSON lines, then the table that
# launch/bench/summarize.py makes of them (ratio of medians over the rounds, and each round's ratio).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN=${RMTRAIN:-$ROOT/.build/release/rmtrain}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-12}
TORCH_SECONDS=${TORCH_SECONDS:-6}
MPIRUN=(mpirun -np 2 --bind-to core)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
torch=0; python3 -c "import torch" 2>/dev/null && torch=1
vision=0; python3 -c "import torchvision" 2>/dev/null && vision=1

# pair MODEL THREADS STEPS [bench flags...]: ROUNDS × (rmtrain, then PyTorch); round 1 also measures
# RecursiveMix (mixing_fraction) and, for ResNet-20, the sgemm peak.
pair() {
  local model=$1 threads=$2 steps=$3; shift 3
  for round in $(seq "$ROUNDS"); do
    local extra=(--skip-sgemm) mix=none
    [ "$round" -eq 1 ] && mix=none,rm
    [ "$round" -eq 1 ] && [ "$model" = resnet20 ] && extra=()
    "$BIN" bench --json --models "$model" --threads "$threads" --mix "$mix" --steps "$steps" "${extra[@]}" "$@"
    if [ "$torch" -eq 1 ] && { [ "$model" != resnet50 ] || [ "$vision" -eq 1 ]; }; then
      local size=32 batch=64
      [[ " $* " == *" --image-size 224 "* ]] && size=224
      [[ " $* " == *" --batch-size 32 "* ]] && batch=32
      python3 "$ROOT/launch/bench/torch_train.py" --models "$model" --threads "$threads" --layouts channels_last \
        --image-size "$size" --batch-size "$batch" --seconds "$TORCH_SECONDS"
    fi
  done
}

{
  for t in 1 2; do pair resnet20 "$t" $((STEPS * 4)); done
  for t in 1 2; do pair cifar-resnet18 "$t" "$STEPS"; done
  pair resnet50 2 5 --image-size 224 --batch-size 32
  # 2 ranks × 1 thread against 1 rank × 2 threads, CIFAR ResNet-18, batch 64 per rank, alternating.
  for round in $(seq "$ROUNDS"); do
    "${MPIRUN[@]}" -x OPENBLAS_NUM_THREADS=1 "$BIN" bench --json --models cifar-resnet18 --threads 1 --steps "$STEPS" --skip-sgemm
    "$BIN" bench --json --models cifar-resnet18 --threads 2 --steps "$STEPS" --skip-sgemm
  done
} | tee "$OUT"
echo
python3 "$ROOT/launch/bench/summarize.py" < "$OUT"
