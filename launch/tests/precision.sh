#!/usr/bin/env bash
# --precision bf16-mixed as a user meets it: refused before any work where the CPU or oneDNN cannot run it
# (the error names the CPU and the instruction set); where it can, same seed => bit-identical weights, a
# resumed run equals an unbroken one (2 ranks, mid-epoch, RecursiveMix), the run differs from fp32
# (bf16 really ran), it learns, and export / eval read its float32 output. Prints 'N passed, M failed'.
set -uo pipefail
NAME=precision source "$(dirname "$0")/lib.sh"

# --- refusals (any CPU; the variables reach the binary through expect_error): oneDNN capped below avx512_core_bf16, and the portable convolutions
DNNL_MAX_CPU_ISA=AVX512_CORE expect_error "bf16 refused when oneDNN is capped below bf16" "--precision bf16-mixed: .*bf16" \
  train --precision bf16-mixed --out "$WORK/r1"
[ ! -e "$WORK/r1" ] && ok "refused before the run folder was made" || fail "refusal made a folder" "$(ls "$WORK/r1")"
RMTRAIN_CONV=portable expect_error "bf16 refused with portable convolutions" "needs oneDNN" \
  train --precision bf16-mixed --out "$WORK/r2"
expect_error "unknown precision" "--precision" train --precision fp16 --out "$WORK/r3"
RMTRAIN_BF16_KERNELS=yes expect_error "RMTRAIN_BF16_KERNELS with an unknown value" "RMTRAIN_BF16_KERNELS=yes is not one of" \
  train --precision bf16-mixed --out "$WORK/r4"

# --- what follows needs a CPU with AVX512-BF16 (the refusal above is what other CPUs get)
if ! "$RMTRAIN" train --precision bf16-mixed --train-limit 64 --val-limit 32 --batch-size 32 --epochs 1 --max-steps 1 \
     --quiet --out "$WORK/probe" > "$WORK/probe.log" 2>&1; then
  if grep -q "no AVX512-BF16" "$WORK/probe.log"; then
    ok "this CPU has no AVX512-BF16: refused ($(head -n 1 "$WORK/probe.log"))"
    finish precision; exit
  fi
  fail "bf16 probe run" "$(tail -n 3 "$WORK/probe.log")"
fi
grep -q '^precision: "bf16-mixed"' "$WORK/probe/config.yaml" && ok "config.yaml records the precision" \
  || fail "config.yaml" "$(grep precision "$WORK/probe/config.yaml")"
# Unset, the kernel choice is this CPU's (Precision.bf16Kernels), said at the start and the same as bench's
if line=$(grep -o "bf16-mixed: convolutions and the classifier multiply in [a-z0-9]*" "$WORK/probe.log"); then
  said=${line##* }; want=$([ "$said" = bfloat16 ] && echo bf16 || echo fp32)
  bench=$("$RMTRAIN" bench --models resnet8 --steps 1 --threads 1 --skip-sgemm | grep -o "bf16_convolutions=[a-z0-9]*")
  [ "$bench" = "bf16_convolutions=$want" ] && ok "the start line says the kernels ($line), as bench ($bench)" || fail "kernel choice" "$line / $bench"
else fail "the start line names bf16-mixed's kernels" "$(head -n 3 "$WORK/probe.log")"; fi

# RMTRAIN_BF16_KERNELS=off (what auto picks where bf16 does not pay): float32's kernels, so fp32's weights bit for bit
O=(train --train-limit 128 --val-limit 32 --batch-size 16 --epochs 1 --max-steps 6 --quiet --check-every 0)
"$RMTRAIN" "${O[@]}" --out "$WORK/o32" > /dev/null 2>&1
RMTRAIN_BF16_KERNELS=off "$RMTRAIN" "${O[@]}" --precision bf16-mixed --out "$WORK/o16" > /dev/null 2>&1
if msg=$("$RMTRAIN" diff "$WORK/o32/final.safetensors" "$WORK/o16/final.safetensors" 2>&1); then
  ok "RMTRAIN_BF16_KERNELS=off: bf16-mixed equals fp32 bit for bit ($msg)"
else fail "bf16 kernels off" "$msg"; fi

# What follows tests the bf16 kernels themselves, wherever the CPU has them, whatever auto picks here
export RMTRAIN_BF16_KERNELS=on
MPIRUN+=(-x RMTRAIN_BF16_KERNELS)

launch() { local np=$1; shift; if [ "$np" -eq 1 ]; then "$RMTRAIN" "$@"; else "${MPIRUN[@]}" -np "$np" "$RMTRAIN" "$@"; fi; }
for np in 2; do
  Q=(train --precision bf16-mixed --mix rm --train-limit 640 --val-limit 128 --batch-size 16 --epochs 3 --quiet --check-every 0)
  n=$((np == 1 ? 25 : 30)); total=$((2 * n))
  launch $np "${Q[@]}" --max-steps $total --out "$WORK/a$np" > "$WORK/a$np.log" 2>&1
  launch $np "${Q[@]}" --max-steps $total --out "$WORK/b$np" > "$WORK/b$np.log" 2>&1
  launch $np "${Q[@]}" --max-steps $n --save-every $n --out "$WORK/c$np" > "$WORK/c$np.log" 2>&1
  launch $np "${Q[@]}" --max-steps $total --resume auto --out "$WORK/c$np" >> "$WORK/c$np.log" 2>&1
  if msg=$("$RMTRAIN" diff "$WORK/a$np/final.safetensors" "$WORK/b$np/final.safetensors" 2>&1); then
    ok "-np $np bf16: same seed, bit-identical weights ($msg)"
  else fail "-np $np bf16 determinism" "$msg"; fi
  if msg=$("$RMTRAIN" diff "$WORK/a$np/final.safetensors" "$WORK/c$np/final.safetensors" 2>&1); then
    ok "-np $np bf16: $total steps straight == $n + resume $n, bitwise"
  else fail "-np $np bf16 resume" "$msg $(tail -n 3 "$WORK/c$np.log")"; fi
done
Q=(train --mix rm --train-limit 640 --val-limit 128 --batch-size 16 --epochs 3 --quiet --check-every 0)
"${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --max-steps 60 --out "$WORK/fp32" > "$WORK/fp32.log" 2>&1
if "$RMTRAIN" diff "$WORK/a2/final.safetensors" "$WORK/fp32/final.safetensors" > "$WORK/d.log" 2>&1; then
  fail "bf16 differs from fp32" "the same weights: bf16 did not run"
else
  ok "bf16 weights differ from fp32's ($(head -c 120 "$WORK/d.log"))"
fi

# --- elastic resume, EMA and --init-weights unchanged: a 2-rank bf16 epoch with a weight average, resumed by
#     1 rank at the epoch's end, then its float32 output starts an fp32 run
E=(train --precision bf16-mixed --train-limit 128 --val-limit 32 --batch-size 16 --epochs 2 --quiet --check-every 0 --model-ema 0.9)
"${MPIRUN[@]}" -np 2 "$RMTRAIN" "${E[@]}" --epochs 1 --out "$WORK/e" > "$WORK/e.log" 2>&1
if "$RMTRAIN" "${E[@]}" --resume auto --out "$WORK/e" > "$WORK/e1.log" 2>&1 && [ "$(wc -l < "$WORK/e/metrics.jsonl")" -eq 2 ] \
   && [ -f "$WORK/e/final_ema.safetensors" ] && grep -q '"world_size": 1' "$WORK/e/metrics.jsonl"; then
  ok "bf16: 2 ranks then 1 rank from the epoch's end, with --model-ema: 2 epochs, final_ema.safetensors"
else fail "bf16 elastic resume" "$(tail -n 3 "$WORK/e.log" "$WORK/e1.log")"; fi
if "$RMTRAIN" train --train-limit 64 --val-limit 32 --batch-size 16 --epochs 1 --max-steps 2 --quiet \
     --init-weights "$WORK/e/final.safetensors" --out "$WORK/iw" > "$WORK/iw.log" 2>&1; then
  ok "an fp32 run starts from a bf16 run's final.safetensors"
else fail "--init-weights from bf16" "$(tail -n 2 "$WORK/iw.log")"; fi

# --- it learns: 2 epochs on 960 Fashion-MNIST images, val top-1 above 40 % (chance is 10 %) and within 10 points
# of fp32's (two short runs differ by a few points whatever the precision; the accuracy comparison itself is
# the README's Table 3 protocol, seeds 1-3)
L=(train --train-limit 960 --val-limit 500 --batch-size 32 --epochs 2 --quiet)
"$RMTRAIN" "${L[@]}" --out "$WORK/l32" > /dev/null 2>&1
"$RMTRAIN" "${L[@]}" --precision bf16-mixed --out "$WORK/l16" > /dev/null 2>&1
top() { tail -n 1 "$1/metrics.jsonl" | grep -o '"val_top1": [^,}]*' | awk '{print $2}'; }
a=$(top "$WORK/l32"); b=$(top "$WORK/l16")
if awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0.4 && d < 0.10) }'; then
  ok "bf16 learns: val top-1 $b (fp32 $a)"
else fail "bf16 learning" "val top-1 bf16 '$b', fp32 '$a'"; fi

# --- its output is float32 for the next commands
if "$RMTRAIN" export --checkpoint "$WORK/l16/best.rmck" --out "$WORK/l16.safetensors" > "$WORK/x.log" 2>&1 \
   && "$RMTRAIN" eval --checkpoint "$WORK/l16/best.rmck" > "$WORK/ev.log" 2>&1; then
  ok "export and eval read a bf16 run ($(tail -n 1 "$WORK/ev.log" | head -c 100))"
else fail "export/eval of a bf16 run" "$(tail -n 2 "$WORK/x.log" "$WORK/ev.log")"; fi
finish precision
