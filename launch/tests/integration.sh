#!/usr/bin/env bash
# Integration tests of the rmtrain command, as a user runs it. Prints 'N passed, M failed' and exits
# non-zero when anything failed.
set -uo pipefail
NAME=it source "$(dirname "$0")/lib.sh"

QUICK=(--train-limit 512 --val-limit 256 --batch-size 32 --max-steps 6 --quiet --threads 1)

# --- --drop-last drops the last partial batch; without it a last batch of one image is dropped, others kept
steps_of() { grep -o '"step": [0-9]*' "$1/metrics.jsonl" | tail -n 1 | awk '{print $2}'; }
for case in "3 2 --drop-last:1" "5 2 :2" "6 4 :2" "7 4 --drop-last:1"; do
  IFS=: read -r spec want <<< "$case"; read -r n b flag <<< "$spec"
  rm -rf "$WORK/dl"
  if "$RMTRAIN" train --train-limit "$n" --val-limit 4 --batch-size "$b" $flag --epochs 1 --quiet --threads 1 --out "$WORK/dl" > /dev/null 2>&1 \
     && [ "$(steps_of "$WORK/dl")" = "$want" ]; then ok "$n images, batch $b ${flag:-(no --drop-last)}: $want step(s)"
  else fail "last batch: $n images, batch $b $flag" "$(steps_of "$WORK/dl" 2>/dev/null) steps, want $want"; fi
done

# --- --train-limit draws a class-balanced subset and says so (an image folder lists class by class)
if "$RMTRAIN" train --data imagefolder:"$(dirname "$0")/../../../shared/data/cifar10" --train-limit 100 --val-limit 50 \
     --batch-size 50 --max-steps 1 --epochs 1 --quiet --threads 1 --out "$WORK/bal" > "$WORK/bal.log" 2>&1 \
   && grep -q "class-balanced subset of 100: 10 per class" "$WORK/bal.log" && grep -q "class-balanced subset of 50: 5 per class" "$WORK/bal.log"; then
  ok "--train-limit/--val-limit: class-balanced, logged"
else fail "class-balanced subset" "$(head -c 400 "$WORK/bal.log")"; fi

# --- a short run writes metrics.jsonl with the promised fields
if "$RMTRAIN" train "${QUICK[@]}" --epochs 2 --out "$WORK/run" > "$WORK/run.log" 2>&1; then
  m="$WORK/run/metrics.jsonl"
  if [ "$(wc -l < "$m")" -ne 1 ]; then
    # --max-steps 6 stops inside epoch 1 of 16 steps: one line expected
    fail "metrics lines" "$(wc -l < "$m") lines in $m"
  else
    missing=""
    for k in epoch train_loss val_top1 val_top5 lr images_per_sec seconds val_images; do
      grep -q "\"$k\": " "$m" || missing="$missing $k"
    done
    [ -z "$missing" ] && ok "metrics fields" || fail "metrics fields" "missing:$missing"
  fi
else
  fail "short run" "$(tail -n 3 "$WORK/run.log")"
fi

# --- progress is plain lines when piped (no carriage returns)
if "$RMTRAIN" train --train-limit 512 --val-limit 256 --batch-size 32 --max-steps 16 --threads 1 --epochs 1 \
     --out "$WORK/progress" > "$WORK/progress.log" 2>&1; then
  if grep -q $'\r' "$WORK/progress.log"; then fail "piped progress" "carriage return in piped output"
  elif grep -qE "step 16/16 .*img/s.*ETA" "$WORK/progress.log"; then ok "piped progress"
  else fail "piped progress" "no progress line: $(head -c 300 "$WORK/progress.log")"; fi
else
  fail "piped progress" "run failed"
fi

# --- same seed => bit-identical weights; another seed => different weights
for r in a b; do "$RMTRAIN" train "${QUICK[@]}" --threads 2 --seed 5 --out "$WORK/seed5$r" >/dev/null 2>&1; done
"$RMTRAIN" train "${QUICK[@]}" --threads 2 --seed 6 --out "$WORK/seed6" >/dev/null 2>&1
if [ -f "$WORK/seed5a/final.safetensors" ] && cmp -s "$WORK/seed5a/final.safetensors" "$WORK/seed5b/final.safetensors"; then
  ok "same seed, identical weights"
else
  fail "same seed, identical weights" "final.safetensors differ or missing"
fi
if [ -f "$WORK/seed6/final.safetensors" ] && ! cmp -s "$WORK/seed5a/final.safetensors" "$WORK/seed6/final.safetensors"; then
  ok "different seed, different weights"
else
  fail "different seed, different weights" "identical or missing"
fi

# --- it learns: one epoch on 12,000 Fashion-MNIST images reaches a sane accuracy
if "$RMTRAIN" train --train-limit 12000 --val-limit 2000 --epochs 1 --batch-size 64 --lr 0.05 --quiet \
     --out "$WORK/learn" > "$WORK/learn.log" 2>&1; then
  top1=$(grep -o '"val_top1": [0-9.]*' "$WORK/learn/metrics.jsonl" | tail -n 1 | awk '{print $2}')
  if awk -v t="$top1" 'BEGIN { exit !(t >= 0.75) }'; then ok "learns (val top-1 $top1 >= 0.75)"
  else fail "learns" "val top-1 $top1 < 0.75"; fi
else
  fail "learns" "$(tail -n 3 "$WORK/learn.log")"
fi

# --- RecursiveMix run: mixing metrics logged; eval of its checkpoint equals the run's own evaluation;
#     export drops the consistency head and uses torchvision names and layouts
R="$WORK/rm"
if "$RMTRAIN" train --mix rm --train-limit 1024 --val-limit 300 --batch-size 32 --epochs 2 --quiet --out "$R" > "$R.log" 2>&1; then
  area=$(grep -o '"mean_hist_area": [0-9.]*' "$R/metrics.jsonl" | tail -n 1 | awk '{print $2}')
  if awk -v a="$area" 'BEGIN { exit !(a > 0.12 && a < 0.22) }' && grep -q '"consistency_loss": ' "$R/metrics.jsonl" \
     && grep -q '"effective_classes_1e-4": ' "$R/metrics.jsonl"; then ok "rm metrics (mean_hist_area $area)"
  else fail "rm metrics" "$(tail -n 1 "$R/metrics.jsonl")"; fi
  want=$(grep -o '"val_top1": [0-9.]*' "$R/metrics.jsonl" | tail -n 1 | awk '{print $2}')
  got=$("$RMTRAIN" eval --checkpoint "$R/best.rmck" --val-limit 300 --json | grep -o '"top1": [0-9.]*' | awk '{print $2}')
  [ -n "$got" ] && [ "$got" = "$want" ] && ok "eval of best.rmck = run's val_top1 ($got)" || fail "eval" "got '$got', run had '$want'"
  if "$RMTRAIN" export --checkpoint "$R/best.rmck" --out "$R/model.safetensors" > /dev/null; then
    hdr=$(head -c 20000 "$R/model.safetensors" | tr -d '\0')
    if grep -q '"conv1.weight":{"data_offsets":\[[0-9]*,[0-9]*\],"dtype":"F32","shape":\[16,1,3,3\]}' <<< "$hdr" \
       && grep -q '"layer2.0.downsample.0.weight"' <<< "$hdr" && grep -q '"bn1.num_batches_tracked":{[^}]*"I64"' <<< "$hdr" \
       && ! grep -q 'fc_roi' <<< "$hdr" && ! grep -q 'momentum' <<< "$hdr"; then ok "export: torchvision names, OIHW, no fc_roi"
    else fail "export" "$(echo "$hdr" | head -c 300)"; fi
  else fail "export" "command failed"; fi
else
  fail "rm run" "$(tail -n 3 "$R.log")"
fi

# --- run directory: config.yaml, metrics.csv, train.log; --config with a flag overriding the file
C="$WORK/cfgrun"
printf 'model: resnet20\nepochs: 2\nbatch-size: 16\nlr: 0.05\ntrain-limit: 256\nval-limit: 64\nmax-steps: 4\nquiet: true\n' > "$WORK/c.yaml"
if "$RMTRAIN" train --config "$WORK/c.yaml" --lr 0.02 --out "$C" > /dev/null 2>&1; then
  if grep -q '^lr: 0.02$' "$C/config.yaml" && grep -q '^batch-size: 16$' "$C/config.yaml" \
     && [ "$(wc -l < "$C/metrics.csv")" -eq 2 ] && head -n 1 "$C/metrics.csv" | grep -q '^epoch,step,train_loss' \
     && grep -q "epoch 1/2" "$C/train.log"; then ok "--config + override; config.yaml, metrics.csv, train.log"
  else fail "run directory" "$(cat "$C/config.yaml" | head -n 5)"; fi
  # the resolved config.yaml reproduces the run
  if "$RMTRAIN" train --config "$C/config.yaml" --out "$C/again" > /dev/null 2>&1 && "$RMTRAIN" diff "$C/final.safetensors" "$C/again/final.safetensors" > /dev/null; then
    ok "config.yaml reproduces the run bitwise"
  else fail "config.yaml reproduces" "weights differ"; fi
else
  fail "--config run" "failed"
fi
printf 'bogus-flag: 3\n' > "$WORK/bad.yaml"
expect_error "--config with an unknown key names the file" "bad.yaml.*bogus-flag" train --config "$WORK/bad.yaml"

# --- pictures: visualize and plot write PNGs that libpng's pngfix accepts, of the size they say, not blank
png_ok() {  # png_ok FILE MIN_BYTES: valid PNG (pngfix), at least MIN_BYTES (a blank canvas compresses to ~2 KB)
  [ -f "$1" ] && pngfix --quiet "$1" && [ "$(stat -c %s "$1")" -ge "$2" ]
}
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8 }'; }
out=$("$RMTRAIN" visualize --steps 3 --images 4 --out "$WORK/mix.png")
if png_ok "$WORK/mix.png" 6000 && echo "$out" | grep -q "($(png_size "$WORK/mix.png" | sed 's/x/×/'))"; then ok "visualize PNG ($(png_size "$WORK/mix.png"))"
else fail "visualize" "$out"; fi
out=$("$RMTRAIN" plot "$R" "$C" --out "$WORK/curves.png")
if png_ok "$WORK/curves.png" 6000 && echo "$out" | grep -q "($(png_size "$WORK/curves.png" | sed 's/x/×/')), 2 run"; then ok "plot PNG ($(png_size "$WORK/curves.png"))"
else fail "plot" "$out"; fi

# --- --sched-on epochs sets the lr once per epoch (their lr·e/(w+1) in the warm-up) and --log-interval logs the
# running means; plot draws them beside a log of the RecursiveMix code (lines in their format, written here),
# and stops on a line it cannot read, naming the line
S="$WORK/sched"
if "$RMTRAIN" train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 2 --sched-on epochs --warmup-epochs 1 --lr-schedule step \
     --log-interval 2 --quiet --threads 1 --out "$S" > /dev/null 2>&1 \
   && [ "$(grep -c '"epoch": 1, "iteration": [0246], "iterations": 8, .*"lr": 0.05,' "$S/iterations.jsonl")" = 4 ] \
   && [ "$(grep -c '"epoch": 2, "iteration": [0246], "iterations": 8, .*"lr": 0.1,' "$S/iterations.jsonl")" = 4 ] \
   && [ "$(wc -l < "$S/iterations.jsonl")" = 8 ]; then ok "--sched-on epochs, --log-interval 2: 8 rows, lr 0.05 then 0.1"
else fail "--sched-on epochs --log-interval" "$(head -c 400 "$S/iterations.jsonl" 2>&1)"; fi
their() {  # their EPOCH ITERATION LR LOSS TOP1: one training line of main.py:238-251
  printf '2021-12-09 13:12:03,858 - INFO - Epoch [%d/2][%d/8]\tlr %s\tLoss 2.0 (%s)\tAcc@1 0.1 (%s)\tAcc@5 0.5 (0.5)\n' "$@"
}
{ printf '2021-12-09 13:12:01,000 - INFO - --lr 0.1\n'
  their 1 0 0.050000 2.30 0.08; their 1 4 0.050000 2.10 0.20
  printf '2021-12-09 13:16:18,399 - INFO - Epoch(val) [1/2][0/2]\tAcc@1 0.5312 (0.5312)\tAcc@5 0.8906 (0.8906)\n'
  printf '2021-12-09 13:16:30,986 - INFO - Epoch(val) [1]\tTest Acc@1: 0.3100\tTest Acc@5: 0.8000\tBest Acc@1: 0.3100\tBest Acc@5: 0.8000\tCopypaste: 0.3100, 0.8000\n'
  printf '2021-12-09 13:16:30,986 - INFO - Exp path: ./logs/cifar10/x\n'
  their 2 0 0.100000 1.90 0.30; their 2 4 0.100000 1.80 0.35
  printf '2021-12-09 13:20:56,820 - INFO - Epoch(val) [2]\tTest Acc@1: 0.4200\tTest Acc@5: 0.9000\tBest Acc@1: 0.4200\tBest Acc@5: 0.9000\tCopypaste: 0.4200, 0.9000\n'
} > "$WORK/their.log"
out=$("$RMTRAIN" plot "$S" "$WORK/their.log" --out "$WORK/beside.png" 2>&1)
if png_ok "$WORK/beside.png" 6000 && echo "$out" | grep -q "($(png_size "$WORK/beside.png" | sed 's/x/×/')), 2 run(s), 2 with per-iteration running means" \
   && [ "$(png_size "$WORK/beside.png" | cut -dx -f2)" -gt "$(png_size "$WORK/curves.png" | cut -dx -f2)" ]; then
  ok "plot: a run's iterations.jsonl beside their log, a second row ($(png_size "$WORK/beside.png"))"
else fail "plot beside their log" "$out"; fi
sed '3s/Loss 2.0 (2.10)/Loss 2.0 2.10/' "$WORK/their.log" > "$WORK/their-bad.log"
expect_error "plot names the line of their log it cannot read" "their-bad.log line 3: not a line of the RecursiveMix code's log" \
  plot "$S" "$WORK/their-bad.log" --out "$WORK/bad.png"

# --- a diverging run stops at the step that broke, naming it; --skip-nonfinite skips such steps instead
expect_error "non-finite gradients stop the run" "(gradients are not finite|loss is -?(nan|inf)) at epoch 1, step [0-9]+" \
  train --lr 1e12 --train-limit 256 --val-limit 64 --batch-size 32 --epochs 1 --quiet --out "$WORK/nan"
if "$RMTRAIN" train --lr 1e12 --train-limit 256 --val-limit 64 --batch-size 32 --epochs 1 --quiet --skip-nonfinite \
     --out "$WORK/nan2" > /dev/null 2> "$WORK/nan2.err" && grep -q "step skipped (--skip-nonfinite)" "$WORK/nan2.err"; then
  ok "--skip-nonfinite skips and warns"
else
  fail "--skip-nonfinite" "$(tail -n 2 "$WORK/nan2.err")"
fi

# --- every shipped recipe is a valid --config file (keys are train flags, values parse)
bad=""
for f in "$(dirname "$0")"/../configs/*.yaml; do
  "$RMTRAIN" train --config "$f" --help > /dev/null 2> "$WORK/cfg.err" || bad="$bad $(basename "$f"): $(cat "$WORK/cfg.err")"
done
[ -z "$bad" ] && ok "launch/configs/*.yaml parse" || fail "launch/configs" "$bad"
# the paper's recipes (all but the demos) set the lr once per epoch, as the authors' code (#25)
bad=""
for f in "$(dirname "$0")"/../configs/*.yaml; do
  case "$(basename "$f")" in demo-*|fmnist-*) continue ;; esac
  grep -qE '^sched-on: +epochs( |$)' "$f" || bad="$bad $(basename "$f")"
done
[ -z "$bad" ] && ok "the paper's recipes: sched-on epochs" || fail "paper recipes without sched-on: epochs" "$bad"

# --- train --help in sections by concept, in the order a run is set up (Tests/CommandTests/TrainHelpTests
#     checks which flag is in which)
sections=$("$RMTRAIN" train --help | grep -E '^[A-Z][A-Z ]*(\(.*\))?:$' | grep -oE '^[A-Z]+( AND [A-Z]+)?' | tr '\n' '|')
[ "$sections" = "MODEL AND DATA|OPTIMIZER AND SCHEDULE|MIXING|WEIGHT|DISTRIBUTED|LENGTH AND CHECKS|OUTPUT AND CHECKPOINTS|THIS|OPTIONS|" ] \
  && ok "train --help sections" || fail "train --help sections" "$sections"

# --- --trace: a replayable record of every step (launch/checks/rm_reference.py replays it against PyTorch)
expect_error "trace-all-ranks needs trace" "--trace" train --trace-all-ranks --out "$WORK/x"
# 40 images, batch 16: 3 steps an epoch (16, 16, 8); 5 steps = epoch 1 and two steps of epoch 2.
if "$RMTRAIN" train --mix rm --train-limit 40 --val-limit 20 --batch-size 16 --epochs 2 --max-steps 5 --quiet --threads 1 \
     --trace "$WORK/trace" --out "$WORK/tr" > "$WORK/tr.log" 2>&1; then
  t="$WORK/trace"
  steps=$(ls "$t"/step-*.safetensors | wc -l); weights=$(ls "$t"/weights-0*.safetensors | wc -l)
  kinds=$(for f in "$t"/step-*.safetensors; do grep -ao '"mix_kind":"[a-z]*"' "$f" | cut -d'"' -f4; done | tr '\n' ' ')
  epochs=$(for f in "$t"/step-*.safetensors; do grep -ao '"epoch":"[0-9]*"' "$f" | cut -d'"' -f4; done | tr '\n' ' ')
  if [ "$steps" -ne 5 ] || [ "$weights" -ne 5 ] || [ ! -f "$t/weights-initial.safetensors" ] || [ ! -f "$t/weights-final.safetensors" ]; then
    fail "trace files" "$steps step files, $weights weight files: $(ls "$t" | tr '\n' ' ')"
  elif ! grep -q '"steps" : 5' "$t/meta.json"; then fail "trace files" "meta.json lacks the step count"
  elif [ "$kinds" != "none rm rm none rm " ] || [ "$epochs" != "1 1 1 2 2 " ]; then
    fail "trace files" "mix kinds '$kinds', epochs '$epochs' (history resets at each epoch start)"
  elif cmp -s "$t/weights-000005.safetensors" "$t/weights-initial.safetensors"; then fail "trace files" "weights did not change"
  else ok "trace files"; fi
else
  fail "trace files" "$(tail -n 3 "$WORK/tr.log")"
fi

# OpenBLAS falls back to SSE3 kernels (Prescott) on CPUs it does not know; rmtrain re-runs itself with
# OPENBLAS_CORETYPE so that a CPU with AVX2 or AVX-512 gets kernels that use them.
core=$("$RMTRAIN" bench --models resnet20 --threads 1 --steps 1 --batch-size 2 2>&1 | grep 'kind=sgemm' | grep -o 'blas_core=[A-Za-z0-9]*' | cut -d= -f2)
forced=$(RMTRAIN_BLAS_REEXEC=0 OPENBLAS_CORETYPE=Prescott "$RMTRAIN" bench --models resnet20 --threads 1 --steps 1 --batch-size 2 2>&1 | grep 'kind=sgemm' | grep -o 'blas_core=[A-Za-z0-9]*' | cut -d= -f2)
if grep -qw avx2 /proc/cpuinfo && echo "$core" | grep -qiE '^(prescott|core2|penryn|dunnington|nehalem|atom|sandybridge)$'; then
  fail "OpenBLAS kernels" "the CPU has AVX2 but OpenBLAS runs $core kernels"
elif [ "$forced" != "Prescott" ]; then fail "OpenBLAS kernels" "OPENBLAS_CORETYPE set by the user was not kept (got '$forced')"
else ok "OpenBLAS kernels: $core (a user's OPENBLAS_CORETYPE is kept: $forced)"; fi

# Which CPU and kernel sets computed the figures (issue #22): bench's first line and a run's start lines name
# the CPU model, its vector ISA, OpenBLAS's kernel set and oneDNN's ISA, and they follow the environment.
hw=$(OPENBLAS_CORETYPE=Haswell DNNL_MAX_CPU_ISA=AVX2 "$RMTRAIN" bench --models resnet8 --threads 1 --steps 1 --batch-size 2 --skip-sgemm 2>&1 | grep 'kind=hardware')
start=$("$RMTRAIN" train --model resnet8 --max-steps 1 --train-limit 8 --val-limit 8 --batch-size 4 --quiet --out "$WORK/hw" 2>&1 | head -3)
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
if ! grep -q "blas_core=Haswell" <<< "$hw" || ! grep -q "onednn_isa=avx2" <<< "$hw" || ! grep -qE "vector_isa=(AVX|SSE)" <<< "$hw" \
   || ! grep -qF "cpu=$model" <<< "$hw"; then
  fail "hardware line (bench)" "got '$hw'"
elif ! grep -qF "CPU $model" <<< "$start" || ! grep -qE "OpenBLAS [A-Za-z0-9]+ kernels, oneDNN [0-9.]+ up to [a-z0-9_]+" <<< "$start"; then
  fail "hardware line (train)" "got '$start'"
else ok "hardware lines: bench and train name the CPU, its ISA, OpenBLAS's and oneDNN's kernels"; fi

# Each training measurement reports the share of the step in the mixing method's own work (RM's cost).
mf=$("$RMTRAIN" bench --models resnet8 --mix none,rm --threads 1 --steps 1 --batch-size 4 --skip-sgemm 2>&1 | grep 'kind=train' | grep -o 'mixing_fraction=[0-9.]*' | cut -d= -f2 | tr '\n' ' ')
if [ "$(wc -w <<< "$mf")" -eq 2 ] && awk -v a="$mf" 'BEGIN { split(a, v, " "); exit !(v[1] >= 0 && v[1] <= 1 && v[2] > 0 && v[2] <= 1) }'; then
  ok "bench: mixing_fraction per measurement ($mf)"
else fail "bench: mixing_fraction" "got '$mf'"; fi

# Convolution kernels: oneDNN by default (bench names each shape's kernels), capped at AVX2 as on a CPU
# without AVX-512 (DNNL_MAX_CPU_ISA), or the portable im2col + sgemm path (RMTRAIN_CONV=portable).
k_default=$("$RMTRAIN" bench --models resnet20 --threads 1 --steps 1 --batch-size 2 --skip-sgemm 2>&1 | grep -c 'kernels=oneDNN.*kind=conv')
k_avx2=$(DNNL_MAX_CPU_ISA=AVX2 "$RMTRAIN" bench --models resnet20 --threads 1 --steps 1 --batch-size 2 --skip-sgemm 2>&1 | grep 'kind=conv' | grep -vc 'avx2')
k_portable=$(RMTRAIN_CONV=portable "$RMTRAIN" bench --models resnet20 --threads 1 --steps 1 --batch-size 2 --skip-sgemm 2>&1 | grep -c 'kernels=im2col+sgemm')
if [ "$k_default" -ge 6 ] && [ "$k_avx2" -eq 0 ] && [ "$k_portable" -ge 6 ]; then
  ok "convolution kernels: oneDNN on $k_default shapes, AVX2-only when capped, portable when forced"
else
  fail "convolution kernels" "oneDNN shapes $k_default, non-AVX2 kernels under the cap $k_avx2, portable shapes $k_portable"
fi
# The Swift SIMD direct-convolution harness behind the README's table of candidates still builds and agrees
# with its plain loop (AVX-512 code: only where the CPU has it).
if grep -qw avx512f /proc/cpuinfo; then
  dc="$WORK/direct_conv.d"; mkdir -p "$dc"; out=""
  if swiftc -Ounchecked -wmo -target-cpu skylake-avx512 "$(dirname "$0")/../bench/direct_conv.swift" -o "$dc/direct_conv" 2>"$dc/err" \
     && out=$("$dc/direct_conv" 4 8 16 32 2>&1); then ok "direct_conv.swift harness: $out"
  else fail "direct_conv.swift harness" "$(tail -3 "$dc/err") ${out:-}"; fi
fi
RMTRAIN_CONV=fast expect_error "RMTRAIN_CONV is checked" "RMTRAIN_CONV=fast: expected onednn, onednn-direct or portable" bench --steps 1
finish integration
