#!/usr/bin/env bash
# Checkpoint integration tests: bit-exact resume (1 and 2 ranks, mid-epoch, RecursiveMix), fallback past a
# damaged checkpoint, refusals, preemption. Prints 'N passed, M failed'.
set -uo pipefail
NAME=ckpt source "$(dirname "$0")/lib.sh"
launch() { local np=$1; shift; if [ "$np" -eq 1 ]; then "$RMTRAIN" "$@"; else "${MPIRUN[@]}" -np "$np" "$RMTRAIN" "$@"; fi; }

# --- 2N straight == N, stop, resume N: bitwise, mid-epoch, with RecursiveMix (1 and 2 ranks)
for np in 1 2; do
  Q=(train --mix rm --train-limit 640 --val-limit 128 --batch-size 16 --epochs 3 --quiet --check-every 0)
  # 640 samples / np ranks / 16 = 40 or 20 steps per epoch: step 25 (np 1) or 30 (np 2) stops mid-epoch.
  n=$((np == 1 ? 25 : 30)); total=$((2 * n))
  launch $np "${Q[@]}" --max-steps $total --out "$WORK/straight$np" > "$WORK/s$np.log" 2>&1
  launch $np "${Q[@]}" --max-steps $n --save-every $n --out "$WORK/resumed$np" > "$WORK/r$np.log" 2>&1
  launch $np "${Q[@]}" --max-steps $total --resume auto --out "$WORK/resumed$np" >> "$WORK/r$np.log" 2>&1
  if msg=$("$RMTRAIN" diff "$WORK/straight$np/final.safetensors" "$WORK/resumed$np/final.safetensors" 2>&1); then
    ok "-np $np: $total steps straight == $n + resume $n, bitwise ($msg)"
  else
    fail "-np $np bit-exact resume" "$msg $(tail -n 3 "$WORK/r$np.log")"
  fi
done

# --- the newest checkpoint truncated: --resume auto warns, names it, and falls back to the previous one
Q=(train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 2 --quiet --keep 3)
"$RMTRAIN" "${Q[@]}" --max-steps 6 --save-every 3 --out "$WORK/fb" > /dev/null 2>&1
newest=$(ls "$WORK/fb"/ckpt-*.rmck | sort | tail -n 1)
head -c 5000 "$newest" > "$newest.cut" && mv "$newest.cut" "$newest"
"$RMTRAIN" "${Q[@]}" --max-steps 8 --resume auto --out "$WORK/fb" > "$WORK/fb.log" 2>&1
if grep -q "warning: skipping checkpoint $newest" "$WORK/fb.log" && grep -q "resumed from $WORK/fb/ckpt-000000003.rmck" "$WORK/fb.log"; then
  ok "truncated newest checkpoint: warned and fell back"
else
  fail "fallback" "$(head -c 500 "$WORK/fb.log")"
fi

# --- refusals: an explicitly named damaged file, another model, another world size
expect_error() {
  local name=$1 pattern=$2; shift 2
  if "$@" > "$WORK/e.out" 2> "$WORK/e.err"; then fail "$name" "exit code 0"; return; fi
  grep -q -- "$pattern" "$WORK/e.err" && ok "$name" || fail "$name" "$(cat "$WORK/e.err")"
}
# (--resume auto moved the truncated file aside as NAME.corrupt)
expect_error "--resume of a truncated file names it" "$newest.corrupt" "$RMTRAIN" "${Q[@]}" --resume "$newest.corrupt" --out "$WORK/x1"
good=$(ls "$WORK/fb"/ckpt-*.rmck | sort | head -n 1)
expect_error "--resume with another model is refused" "model resnet20, this run is --model resnet56" \
  "$RMTRAIN" "${Q[@]}" --model resnet56 --resume "$good" --out "$WORK/x2"
expect_error "--resume mid-epoch with another world size is refused" "written by 1 ranks in the middle of epoch 1, this run has 2" \
  "${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --resume "$good" --out "$WORK/x3"
if "${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --max-steps 2 --resume "$good" --resume-weights-only --out "$WORK/x4" > /dev/null 2>&1; then
  ok "--resume-weights-only loads across world sizes"
else
  fail "--resume-weights-only" "run failed"
fi

# --- an unwritable run directory: the error names the path
mkdir -p "$WORK/ro" && touch "$WORK/ro/blocker"
expect_error "unwritable checkpoint directory named" "$WORK/ro/blocker" \
  "$RMTRAIN" "${Q[@]}" --max-steps 2 --save-every 1 --out "$WORK/ro/blocker/run"

# --- preemption: SIGUSR1 to mpirun -> checkpoint, exit 75; resuming ends where an unbroken run ends
Q=(train --mix rm --train-limit 3200 --val-limit 64 --batch-size 16 --epochs 2 --quiet --check-every 0)
( "${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --out "$WORK/pre" > "$WORK/pre.log" 2>&1; echo "rc=$?" >> "$WORK/pre.log" ) &
job=$!
for _ in $(seq 1 100); do grep -q "steps/epoch" "$WORK/pre.log" 2>/dev/null && break; sleep 0.2; done
sleep 2
pkill -USR1 -f "^mpirun.*$WORK/pre" ; wait $job
if grep -q "rc=75" "$WORK/pre.log" && ls "$WORK/pre"/ckpt-*.rmck > /dev/null 2>&1; then
  ok "SIGUSR1: checkpoint written, exit code 75 ($(grep -o 'checkpoint written to [^;]*' "$WORK/pre.log"))"
  "${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --resume auto --out "$WORK/pre" > "$WORK/pre2.log" 2>&1
  "${MPIRUN[@]}" -np 2 "$RMTRAIN" "${Q[@]}" --out "$WORK/unbroken" > /dev/null 2>&1
  if msg=$("$RMTRAIN" diff "$WORK/pre/final.safetensors" "$WORK/unbroken/final.safetensors" 2>&1); then
    ok "preempted + resumed == unbroken, bitwise ($msg)"
  else
    fail "preempted + resumed == unbroken" "$msg"
  fi
else
  fail "SIGUSR1 preemption" "$(tail -n 5 "$WORK/pre.log")"
fi

# --- SIGTERM to launch/local.sh while steps take seconds (CIFAR ResNet-18, 2 ranks × 1 thread): the script
#     turns it into SIGUSR1 for mpirun, so the ranks save and exit 75 instead of being killed by mpirun ~1 s
#     after a forwarded TERM
( RMTRAIN="$RMTRAIN" bash "$(dirname "$0")/../local.sh" 2 --model cifar-resnet18 --batch-size 64 --train-limit 2000 \
    --val-limit 64 --epochs 1 --quiet --check-every 0 --out "$WORK/slow" > "$WORK/slow.log" 2>&1; echo "rc=$?" >> "$WORK/slow.log" ) &
job=$!
for _ in $(seq 1 150); do grep -q "steps/epoch" "$WORK/slow.log" 2>/dev/null && break; sleep 0.2; done
sleep 3
pkill -TERM -f "local.sh 2 --model cifar-resnet18 .*$WORK/slow"; wait $job
if grep -q "rc=75" "$WORK/slow.log" && ls "$WORK/slow"/ckpt-*.rmck > /dev/null 2>&1 && grep -q "TERM received" "$WORK/slow.log"; then
  ok "SIGTERM to launch/local.sh with multi-second steps: checkpoint, exit 75"
else fail "SIGTERM to local.sh" "$(grep -v '^[-]' "$WORK/slow.log" | tail -n 4)"; fi

# --- SIGUSR1 during evaluation: acted on within one evaluation batch (a checkpoint of the finished epoch,
#     exit 75, no metrics row yet); the resumed run evaluates that epoch first and ends bitwise where an
#     unbroken run ends
Q=(train --train-limit 64 --val-limit 5000 --batch-size 32 --epochs 2 --threads 2)
"$RMTRAIN" "${Q[@]}" --quiet --out "$WORK/ev-unbroken" > /dev/null 2>&1
( "$RMTRAIN" "${Q[@]}" --out "$WORK/ev" > "$WORK/ev.log" 2>&1; echo "rc=$?" >> "$WORK/ev.log" ) &
job=$!
for _ in $(seq 1 300); do grep -q "step 2/2" "$WORK/ev.log" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
pkill -USR1 -f "^$RMTRAIN train .*$WORK/ev\$"; wait $job
"$RMTRAIN" "${Q[@]}" --quiet --resume auto --out "$WORK/ev" > "$WORK/ev2.log" 2>&1
rows=$(grep -o '"epoch": [0-9]*' "$WORK/ev/metrics.jsonl" | awk '{print $2}' | tr '\n' ' ')
if grep -q "rc=75" "$WORK/ev.log" && ! grep -q "train_loss.*val_top1" "$WORK/ev.log" \
   && grep -q "resumed from .*: epoch 2, batch 0, step 2" "$WORK/ev2.log" && [ "$rows" = "1 2 " ] \
   && msg=$("$RMTRAIN" diff "$WORK/ev/final.safetensors" "$WORK/ev-unbroken/final.safetensors" 2>&1); then
  ok "SIGUSR1 during evaluation: saved within a batch, exit 75; resumed run evaluates epoch 1 first, bitwise end"
else fail "SIGUSR1 during evaluation" "rows '$rows'; $(grep -v '^epoch' "$WORK/ev.log" | tail -n 2); $(head -n 2 "$WORK/ev2.log")"; fi

# --- a resume rewrites the epochs after its checkpoint: metrics.jsonl/.csv read as one run (also after a
#     fallback past a damaged newest checkpoint)
Q=(train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 3 --quiet --keep 5)
"$RMTRAIN" "${Q[@]}" --out "$WORK/log" > /dev/null 2>&1
rm -f "$WORK/log/best.rmck"; newest=$(ls "$WORK/log"/ckpt-*.rmck | sort | tail -n 1)
head -c 3000 "$newest" > "$newest.cut" && mv "$newest.cut" "$newest"     # falls back to the end of epoch 2
"$RMTRAIN" "${Q[@]}" --resume auto --out "$WORK/log" > "$WORK/log.out" 2>&1
epochs=$(grep -o '"epoch": [0-9]*' "$WORK/log/metrics.jsonl" | awk '{print $2}' | tr '\n' ' ')
csv=$(tail -n +2 "$WORK/log/metrics.csv" | cut -d, -f1 | tr '\n' ' ')
if [ "$epochs" = "1 2 3 " ] && [ "$csv" = "1 2 3 " ] && grep -q "skipping checkpoint" "$WORK/log.out"; then
  ok "metrics after a resume: epochs $epochs(no duplicates, jsonl and csv)"
else fail "metrics after a resume" "jsonl epochs '$epochs', csv '$csv'"; fi

# --- a training image deleted before --resume auto: refused with the difference named; --allow-data-change
#     resumes and the run log records it
cifar_subset "$WORK/dc" 24 5
Q=(train --data "imagefolder:$WORK/dc" --batch-size 8 --epochs 2 --quiet --out "$WORK/dcrun")
"$RMTRAIN" "${Q[@]}" --max-steps 6 > /dev/null 2>&1
rm "$WORK/dc/train/airplane/$(ls "$WORK/dc/train/airplane" | head -n 1)"
expect_error "resume after a training image was deleted is refused" \
  "the data differs from the checkpoint's: checkpoint has data-train-images=48, this run data-train-images=47" \
  "$RMTRAIN" "${Q[@]}" --resume auto
if "$RMTRAIN" "${Q[@]}" --resume auto --allow-data-change > /dev/null 2>&1 \
   && grep -q "warning: resuming on other data than the checkpoint's (--allow-data-change)" "$WORK/dcrun/train.log"; then
  ok "--allow-data-change resumes on other data, logged"
else fail "--allow-data-change" "$(tail -n 2 "$WORK/dcrun/train.log")"; fi

# --- a preemption signal before the first step: exit 75 with a line saying nothing was trained (also while
#     an image folder of 60,000 files is being listed)
"$RMTRAIN" train --data "imagefolder:$CIFAR10" --epochs 1 --quiet --out "$WORK/early-list" > "$WORK/early.log" 2>&1 &
pid=$!; wait_catching $pid "$(kill -l USR1)" || fail "SIGUSR1 while listing" "no handler after 10 s"
sleep 0.05; kill -USR1 $pid; wait $pid; rc=$?
if [ $rc -eq 75 ] && grep -q "preempted before the first step: nothing was trained" "$WORK/early.log"; then ok "SIGUSR1 while listing an image folder: exit 75, said"
else fail "SIGUSR1 while listing" "exit $rc: $(tail -n 2 "$WORK/early.log")"; fi
for sig in USR1 TERM; do
  "$RMTRAIN" train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 1 --quiet --out "$WORK/early$sig" > "$WORK/early.log" 2>&1 &
  pid=$!; wait_catching $pid "$(kill -l $sig)" || fail "SIG$sig at start" "no handler after 10 s"
  kill -$sig $pid; wait $pid; rc=$?
  if [ $rc -eq 75 ] && grep -q "preempted before the first step: nothing was trained" "$WORK/early.log"; then ok "SIG$sig at start: exit 75, said"
  else fail "SIG$sig at start" "exit $rc: $(tail -n 2 "$WORK/early.log")"; fi
done

finish checkpoint
