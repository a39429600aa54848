#!/usr/bin/env bash
# Every variant of the training step, traced by rmtrain and replayed by rm_reference.py (plain torch +
# torchvision, float64): RecursiveMix and its options, the baselines, label smoothing, two ranks; on
# ResNet-20 and CIFAR ResNet-18, CIFAR-10 images from ../shared/data. Needs `pip install torch torchvision`.
# Prints a markdown table (and writes it to $OUT, default docs/rm-reference.md). About 25 minutes on 2 cores;
# REUSE=1 WORK=<folder of an earlier run> replays its traces again without tracing; with REPLAY=0 as well it
# only remakes the table from the replays' JSON files.
#   RMTRAIN=.build/release/rmtrain bash launch/checks/rm_reference_all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RMTRAIN=${RMTRAIN:-.build/release/rmtrain}
DATA=${DATA:-imagefolder:../shared/data/cifar10}
WORK=${WORK:-$(mktemp -d /tmp/rmref.XXXX)}; mkdir -p "$WORK"
OUT=${OUT:-docs/rm-reference.md}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
# 1000 class-balanced images, batch 64: 16 steps an epoch (the last one of 40 images), 32 steps = 2 epochs.
R20=(--model resnet20 --train-limit 1000 --val-limit 100 --batch-size 64 --epochs 3 --max-steps 32)
# CIFAR ResNet-18: batch 32, 10 steps an epoch (the last of 8), 30 steps.
R18=(--model cifar-resnet18 --train-limit 296 --val-limit 100 --batch-size 32 --epochs 4 --max-steps 30)
RM=(--mix rm --rm-omega 0.1)
CASES=(
  "resnet20|rm|${R20[*]} ${RM[*]}"
  "resnet20|none|${R20[*]} --mix none"
  "resnet20|mixup|${R20[*]} --mix mixup"
  "resnet20|cutmix|${R20[*]} --mix cutmix"
  "resnet20|cutmix, --cutmix-minmax 0.2,0.8|${R20[*]} --mix cutmix --cutmix-minmax 0.2,0.8"
  "resnet20|mixup+cutmix, --smoothing 0.1 (timm)|${R20[*]} --mix mixup+cutmix --smoothing 0.1"
  "resnet20|rm, --smoothing 0.1 --smoothing-style rm|${R20[*]} ${RM[*]} --smoothing 0.1 --smoothing-style rm"
  "resnet20|rm, --rm-share-head|${R20[*]} ${RM[*]} --rm-share-head"
  "resnet20|rm, --rm-interp bilinear|${R20[*]} ${RM[*]} --rm-interp bilinear"
  "resnet20|rm, --rm-legacy-transposed-roi|${R20[*]} ${RM[*]} --rm-legacy-transposed-roi"
  "resnet20|rm, --rm-history persistent --nesterov --no-bn-decay|${R20[*]} ${RM[*]} --rm-history persistent --nesterov --no-bn-decay"
  "resnet20|rm, 2 ranks, --rm-box per-rank|MPI ${R20[*]} ${RM[*]} --rm-box per-rank --batch-size 32"
  "cifar-resnet18|rm|${R18[*]} ${RM[*]}"
  "cifar-resnet18|none|${R18[*]} --mix none"
  "cifar-resnet18|mixup|${R18[*]} --mix mixup"
  "cifar-resnet18|cutmix|${R18[*]} --mix cutmix"
  # bf16-mixed with bfloat16 kernels forced on (whatever this CPU's `auto` picks): replayed against float64
  # and against PyTorch under torch.autocast(bfloat16), judged by autocast's own error (rm_reference.py).
  "resnet20|rm, --precision bf16-mixed|BF16 ${R20[*]} ${RM[*]}"
  "resnet20|mixup, --precision bf16-mixed|BF16 ${R20[*]} --mix mixup"
  "resnet20|rm, 2 ranks, --precision bf16-mixed|BF16 MPI ${R20[*]} ${RM[*]} --rm-box per-rank --batch-size 32"
  "cifar-resnet18|rm, --precision bf16-mixed|BF16 ${R18[*]} ${RM[*]}"
)
table="| model | method and flags | steps | mixed inputs, targets max \|Δ\| | step loss rel. | step update rel. | free loss rel. (PyTorch f32) | result |
|---|---|---|---|---|---|---|---|"
status=0
i=0
for c in "${CASES[@]}"; do
  IFS='|' read -r model label flags <<< "$c"
  i=$((i + 1)); dir="$WORK/case$i"
  [[ -z ${ONLY:-} || $label == *"$ONLY"* ]] || continue   # ONLY=text: the cases whose label holds it
  launcher=("$RMTRAIN")
  if [[ $flags == BF16* ]]; then flags="${flags#BF16 } --precision bf16-mixed"; export RMTRAIN_BF16_KERNELS=on
  else unset RMTRAIN_BF16_KERNELS; fi
  if [[ $flags == MPI* ]]; then flags=${flags#MPI }; launcher=("${MPIRUN[@]}" -np 2 -x RMTRAIN_BF16_KERNELS "$RMTRAIN"); extra=(--trace-all-ranks --threads 1); else extra=(); fi
  if [ "${REUSE:-0}" = 1 ] && [ -f "$dir/weights-final.safetensors" -o -f "$dir/rank0/weights-final.safetensors" ]; then
    :   # REUSE=1 WORK=...: replay the traces of an earlier run again
  else
    rm -rf "$dir" "$dir.run"
    # shellcheck disable=SC2086
    "${launcher[@]}" train --data "$DATA" $flags --trace "$dir" "${extra[@]}" --out "$dir.run" --quiet > "$dir.log" 2>&1
  fi
  if [ "${REPLAY:-1}" = 0 ] && [ -f "$dir.json" ]; then   # REPLAY=0: the table from the replays already made
    r=$(python3 -c "import json,sys; print('ok' if json.load(open(sys.argv[1]))['ok'] else 'FAIL')" "$dir.json")
  elif python3 launch/checks/rm_reference.py "$dir" --threads 2 --json "$dir.json" > "$dir.ref" 2>&1; then r=ok
  else r=FAIL; fi
  [ "$r" = ok ] || status=1
  row=$(python3 - "$dir.json" "$model" "$label" "$r" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); v = {x["check"].split(" (")[0]: x for x in d["results"]}
free = next(x for x in d["results"] if x["check"].startswith("free loss"))
torch = free["check"].split("PyTorch ")[1].rstrip(")")
mt = max(v["mixed"]["value"], v["targets"]["value"])
if "step update length" in v:   # bf16: the worst of the two per-tensor checks, as a fraction of its limit
    upd = f"{max(v['step update']['value'], v['step update length']['value']):.2f} of limit"
else:
    upd = f"{v['step update']['value']:.1e}"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {d['steps']} | {mt:.1e} | {v['step loss']['value']:.1e} | "
      f"{upd} | {free['value']:.1e} ({torch}) | {sys.argv[4]} |")
PY
)
  echo "$row"
  table+=$'\n'"$row"
done
{
  echo "# RecursiveMix step replay: rmtrain against an independent PyTorch implementation"
  echo
  echo "Made by \`launch/checks/rm_reference_all.sh\` ($(date -u +%Y-%m-%d), $(python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'))."
  echo "Each row: \`rmtrain train --trace\` on CIFAR-10 images, then \`launch/checks/rm_reference.py\` (float64)."
  echo "Limits: mixed inputs and targets 1e-6, step losses 1e-4, step updates 2e-2 relative; free-running"
  echo "losses within 1e-4 unless PyTorch's own float32 run drifts from float64 by more (in brackets: the"
  echo "trajectory is chaotic at float32 precision, and the free comparison is reported, not judged)."
  echo
  echo "$table"
} > "$OUT"
echo "table written to $OUT; traces in $WORK"
exit $status
