#!/usr/bin/env bash
# The paper's ordering (Table 3's comparison, CIFAR recipe) at a scale this 2-core machine affords:
# CIFAR-10 from ../shared/data/cifar10, ResNet-20, a class-balanced 5,000-image training subset (500 per
# class, the same for every run), evaluation on a class-balanced 5,000 of the 10,000 test images, 80 epochs
# (the longer the schedule, the more regularisation pays; at 30 epochs on 10,000 images every
# mixing method lost to none: README, "RecursiveMix against Mixup and CutMix").
# Recipe: SGD momentum 0.9, wd 5e-4, lr 0.1, batch 128, cosine, linear warm-up of 5 of 200 epochs scaled
# to the schedule (2 epochs). Methods: none, Mixup (α 1), CutMix (α 1), RecursiveMix (α 0.5, ω 0.1) and
# RecursiveMix with ω 0 (Table 2's HIS row), seeds 1, 2, 3: 15 runs, seed by seed, ~15 s an epoch each.
#
#   bash launch/experiments/table3.sh            # runs (or resumes) every run not finished yet
#   python3 launch/experiments/summarize.py      # the table from docs/experiments/table3/*.jsonl
#
# Every run resumes with --resume auto and is skipped once finished; finished runs' metrics.jsonl are copied
# to docs/experiments/table3/. Environment: RUNS (run folders, default ../experiments/table3, outside the
# repository), EPOCHS, TRAIN, VAL, SEEDS, METHODS, THREADS (default 2), NICE (default 0), PRECISION (fp32, or
# bf16-mixed: runs go to ../experiments/table3-bf16 and docs/experiments/table3-bf16/, with bfloat16 kernels
# forced on (RMTRAIN_BF16_KERNELS=on) so the arithmetic is bf16 even on a CPU where `auto` would keep fp32's:
# the point is the accuracy of bf16 arithmetic, not the speed).
#
#   PRECISION=bf16-mixed METHODS="none rm" bash launch/experiments/table3.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RMTRAIN=${RMTRAIN:-.build/release/rmtrain}
PRECISION=${PRECISION:-fp32}
case $PRECISION in
  fp32) SUFFIX="" ;;
  bf16-mixed) SUFFIX="-bf16"; export RMTRAIN_BF16_KERNELS=on ;;
  *) echo "table3: PRECISION must be fp32 or bf16-mixed, not $PRECISION" >&2; exit 64 ;;
esac
RUNS=${RUNS:-../experiments/table3$SUFFIX}
EPOCHS=${EPOCHS:-80}
TRAIN=${TRAIN:-5000}
VAL=${VAL:-5000}
SEEDS=${SEEDS:-1 2 3}
METHODS=${METHODS:-none mixup cutmix rm rm-omega0}
THREADS=${THREADS:-2}
NICE=${NICE:-0}
DOCS=docs/experiments/table3$SUFFIX
WARMUP=$(python3 -c "print(round(5 * $EPOCHS / 200, 2))")
mkdir -p "$RUNS" "$DOCS"
[ -x "$RMTRAIN" ] || swift build -c release --product rmtrain

flags_for() {
  case $1 in
    none) echo "--mix none" ;;
    mixup) echo "--mix mixup --mixup-alpha 1" ;;
    cutmix) echo "--mix cutmix --cutmix-alpha 1" ;;
    rm) echo "--mix rm --rm-alpha 0.5 --rm-omega 0.1" ;;
    rm-omega0) echo "--mix rm --rm-alpha 0.5 --rm-omega 0" ;;
    *) echo "unknown method $1" >&2; exit 64 ;;
  esac
}

for seed in $SEEDS; do
  for m in $METHODS; do
    name="$m-s$seed"; out="$RUNS/$name"
    if [ -f "$out/final.safetensors" ] && [ "$(wc -l < "$out/metrics.jsonl")" -ge "$EPOCHS" ]; then
      cp "$out/metrics.jsonl" "$DOCS/$name.jsonl"; echo "table3: $name finished"; continue
    fi
    echo "table3: $name ($(date -u +%H:%M))"
    # shellcheck disable=SC2046
    nice -n "$NICE" "$RMTRAIN" train --data imagefolder:../shared/data/cifar10 --model resnet20 \
      --train-limit "$TRAIN" --val-limit "$VAL" --epochs "$EPOCHS" --batch-size 128 --lr 0.1 --wd 5e-4 \
      --momentum 0.9 --lr-schedule cosine --warmup-epochs "$WARMUP" --seed "$seed" --threads "$THREADS" \
      --precision "$PRECISION" \
      $(flags_for "$m") --keep 1 --quiet --resume auto --out "$out" > "$out.log" 2>&1 || {
        rc=$?; echo "table3: $name stopped with exit $rc (see $out.log); rerun to resume"; exit $rc; }
    cp "$out/metrics.jsonl" "$DOCS/$name.jsonl"
  done
done
first=$(echo "$SEEDS" | awk '{print $1}')
dirs=(); for m in $METHODS; do [ -f "$RUNS/$m-s$first/final.safetensors" ] && dirs+=("$RUNS/$m-s$first"); done
[ ${#dirs[@]} -gt 0 ] && "$RMTRAIN" plot "${dirs[@]}" --out "docs/experiments/table3$SUFFIX-curves.png"
python3 launch/experiments/summarize.py "$DOCS" | tee "docs/experiments/table3$SUFFIX.md"
