#!/usr/bin/env bash
# Run folders: one folder holds one run (a second run into it is refused, a running one locks it), a requeue
# never restarts a run silently (corrupt checkpoints moved aside, history without a checkpoint refused), every
# end of a run leaves a checkpoint, logging never ends a run, train.log holds every line printed.
# Prints 'N passed, M failed'.
set -uo pipefail
NAME=runfolder source "$(dirname "$0")/lib.sh"
Q=(train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 2 --quiet)    # 8 steps per epoch
rows() { grep -o '"epoch": [0-9]*' "$1/metrics.jsonl" | awk '{print $2}' | tr '\n' ' '; }

# --- a second train into a folder that holds a run, without --resume: refused, the run untouched
"$RMTRAIN" "${Q[@]}" --out "$WORK/a" > /dev/null 2>&1
sum=$(md5sum "$WORK/a/metrics.jsonl" "$WORK/a/best.rmck")
expect_error "a new run into a folder with a run is refused" \
  "--out $WORK/a already holds a run \(metrics.jsonl with 2 epoch rows, .*best.rmck.*\): continue it with --resume auto, or give a fresh --out" \
  "${Q[@]}" --out "$WORK/a"
expect_error "--resume-weights-only into a folder with a run is refused (a new schedule is a new run)" \
  "--out $WORK/a already holds a run" "${Q[@]}" --resume "$WORK/a/best.rmck" --resume-weights-only --out "$WORK/a"
[ "$(md5sum "$WORK/a/metrics.jsonl" "$WORK/a/best.rmck")" = "$sum" ] && ok "refused runs left metrics.jsonl and best.rmck as they were" \
  || fail "refused runs left the folder" "metrics.jsonl or best.rmck changed"

# --- a folder another run is writing to: refused, naming the owner's pid; free again when it has ended
"$RMTRAIN" train --train-limit 4096 --val-limit 64 --batch-size 32 --epochs 1 --quiet --out "$WORK/busy" > "$WORK/busy.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "pid $pid" "$WORK/busy/rmtrain.lock" 2>/dev/null && break; sleep 0.1; done
expect_error "a run into a folder another run holds is refused, naming its pid" \
  "--out $WORK/busy is in use by another run \(pid $pid on .*\): one folder holds one run" "${Q[@]}" --resume auto --out "$WORK/busy"
wait_catching $pid "$(kill -l USR1)"; kill -USR1 $pid; wait $pid; rc=$?
if [ $rc -eq 75 ] && "$RMTRAIN" train --train-limit 4096 --val-limit 64 --batch-size 32 --epochs 1 --quiet --max-steps 1 \
     --resume auto --out "$WORK/busy" > "$WORK/busy2.log" 2>&1; then ok "the folder is free once its run has ended (preempted, exit 75)"
else fail "lock released" "exit $rc; $(tail -n 2 "$WORK/busy.log" "$WORK/busy2.log")"; fi

# --- --resume auto into a fresh folder starts at step 0 and says so (a requeue script's first launch)
if "$RMTRAIN" "${Q[@]}" --max-steps 2 --resume auto --out "$WORK/fresh" > "$WORK/fresh.log" 2>&1 \
   && grep -q "no checkpoint in $WORK/fresh; starting at step 0" "$WORK/fresh.log"; then ok "--resume auto into a fresh folder starts at step 0, said"
else fail "--resume auto, fresh folder" "$(tail -n 2 "$WORK/fresh.log")"; fi

# --- every step checkpoint corrupt: --resume auto moves them aside, refuses (naming what it found), and the
#     metrics and best.rmck stay; the next requeue is refused again instead of restarting
for f in "$WORK/a"/ckpt-*.rmck; do head -c 3000 "$f" > "$f.cut" && mv "$f.cut" "$f"; done
refusal="--resume auto: $WORK/a holds a run \(metrics.jsonl with 2 epoch rows, .*ckpt-000000016.rmck.corrupt.*\) but no step checkpoint that verifies: resume from $WORK/a/best.rmck with --resume"
"$RMTRAIN" "${Q[@]}" --resume auto --out "$WORK/a" > /dev/null 2> "$WORK/corrupt.err"; rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l < "$WORK/corrupt.err")" -eq 3 ] && tail -n 1 "$WORK/corrupt.err" | grep -qE -- "error: $refusal" \
   && [ "$(grep -c "warning: skipping checkpoint $WORK/a/ckpt-0000000[01][86].rmck: .*; moved aside as ckpt-0000000[01][86].rmck.corrupt" "$WORK/corrupt.err")" -eq 2 ]; then
  ok "all checkpoints corrupt: each moved aside in one warning line, --resume auto refused naming what it found"
else fail "all checkpoints corrupt" "exit $rc: $(cat "$WORK/corrupt.err")"; fi
expect_error "all checkpoints corrupt: the next requeue is refused again" "$refusal" "${Q[@]}" --resume auto --out "$WORK/a"
[ -f "$WORK/a/ckpt-000000016.rmck.corrupt" ] && ! ls "$WORK/a"/ckpt-*.rmck > /dev/null 2>&1 \
  && [ "$(md5sum "$WORK/a/metrics.jsonl" "$WORK/a/best.rmck")" = "$sum" ] \
  && ok "corrupt checkpoints moved aside as NAME.corrupt; metrics.jsonl and best.rmck unchanged" \
  || fail "corrupt checkpoints" "$(ls "$WORK/a")"
rm -f "$WORK/a"/*.corrupt      # only best.rmck left: refused the same way, and the named way out works
expect_error "only best.rmck left: --resume auto refused" "holds a run \(metrics.jsonl with 2 epoch rows, best.rmck, final.safetensors\) but no step checkpoint" \
  "${Q[@]}" --resume auto --out "$WORK/a"
if "$RMTRAIN" "${Q[@]}" --resume "$WORK/a/best.rmck" --out "$WORK/a" > "$WORK/best.log" 2>&1 && [ "$(rows "$WORK/a")" = "1 2 " ]; then
  ok "--resume RUN/best.rmck continues the run"
else fail "--resume best.rmck" "rows '$(rows "$WORK/a")' $(tail -n 1 "$WORK/best.log")"; fi

# --- the newest checkpoint corrupt with --keep 1: moved aside, so the resumed run's checkpoints are the ones kept
"$RMTRAIN" "${Q[@]}" --max-steps 6 --save-every 3 --keep 2 --out "$WORK/k1" > /dev/null 2>&1
head -c 3000 "$WORK/k1/ckpt-000000006.rmck" > "$WORK/k1/cut" && mv "$WORK/k1/cut" "$WORK/k1/ckpt-000000006.rmck"
"$RMTRAIN" "${Q[@]}" --max-steps 4 --keep 1 --resume auto --out "$WORK/k1" > "$WORK/k1.log" 2>&1
left=$(cd "$WORK/k1" && ls ckpt-* | tr '\n' ' ')
if [ "$left" = "ckpt-000000004.rmck ckpt-000000006.rmck.corrupt " ] \
   && grep -q "warning: skipping checkpoint $WORK/k1/ckpt-000000006.rmck: .*; moved aside as ckpt-000000006.rmck.corrupt" "$WORK/k1.log"; then
  ok "corrupt newest checkpoint moved aside: --keep 1 keeps the resumed run's checkpoint"
else fail "corrupt newest, --keep 1" "left: $left; $(grep warning "$WORK/k1.log")"; fi

# --- --max-steps mid-epoch leaves a checkpoint and best.rmck; eval loads it; resuming it equals an unbroken run
R=(train --mix rm --train-limit 640 --val-limit 128 --batch-size 16 --epochs 2 --quiet --check-every 0)   # 40 steps/epoch
"$RMTRAIN" "${R[@]}" --max-steps 50 --out "$WORK/straight" > /dev/null 2>&1
"$RMTRAIN" "${R[@]}" --max-steps 25 --out "$WORK/ms" > "$WORK/ms.log" 2>&1
"$RMTRAIN" eval --checkpoint "$WORK/ms/best.rmck" --val-limit 128 > "$WORK/ms-eval.log" 2>&1
best=$(sed -nE 's/.*\(best ([0-9.]+)%.*/\1/p' "$WORK/ms.log"); evaluated=$(sed -nE 's/.*top-1 ([0-9.]+)%.*/\1/p' "$WORK/ms-eval.log")
if [ -f "$WORK/ms/ckpt-000000025.rmck" ] && [ -n "$best" ] && [ "$best" = "$evaluated" ] \
   && grep -q "stopped it in epoch 1 at step 25; ckpt-000000025.rmck continues it with --resume auto" "$WORK/ms.log"; then
  ok "--max-steps mid-epoch: ckpt-000000025.rmck and best.rmck written, said; eval of best.rmck gives the best $best %"
else fail "--max-steps mid-epoch" "$(ls "$WORK/ms" | tr '\n' ' ') $(tail -n 1 "$WORK/ms.log" "$WORK/ms-eval.log")"; fi
"$RMTRAIN" "${R[@]}" --max-steps 50 --resume auto --out "$WORK/ms" > "$WORK/ms2.log" 2>&1
if grep -q "resumed from $WORK/ms/ckpt-000000025.rmck: epoch 1, batch 25, step 25" "$WORK/ms2.log" \
   && msg=$("$RMTRAIN" diff "$WORK/straight/final.safetensors" "$WORK/ms/final.safetensors" 2>&1); then
  ok "stopped by --max-steps at step 25 + resumed to 50 == 50 straight, bitwise ($msg)"
else fail "resume after --max-steps" "$(head -n 3 "$WORK/ms2.log") ${msg:-}"; fi
# 2 ranks (20 steps per epoch): the checkpoint keeps each rank's own BN statistics, not their average
"${MPIRUN[@]}" -np 2 "$RMTRAIN" "${R[@]}" --max-steps 30 --out "$WORK/straight2" > /dev/null 2>&1
"${MPIRUN[@]}" -np 2 "$RMTRAIN" "${R[@]}" --max-steps 15 --out "$WORK/ms2" > "$WORK/ms2-1.log" 2>&1
"${MPIRUN[@]}" -np 2 "$RMTRAIN" "${R[@]}" --max-steps 30 --resume auto --out "$WORK/ms2" > "$WORK/ms2-2.log" 2>&1
if grep -q "resumed from $WORK/ms2/ckpt-000000015.rmck: epoch 1, batch 15, step 15" "$WORK/ms2-2.log" \
   && msg=$("$RMTRAIN" diff "$WORK/straight2/final.safetensors" "$WORK/ms2/final.safetensors" 2>&1); then
  ok "-np 2: stopped by --max-steps at step 15 + resumed to 30 == 30 straight, bitwise ($msg)"
else fail "-np 2 resume after --max-steps" "$(tail -n 2 "$WORK/ms2-1.log") $(head -n 3 "$WORK/ms2-2.log") ${msg:-}"; fi

# --- stdout and stderr on a full file system: the run finishes and leaves its checkpoint
if "$RMTRAIN" train --train-limit 256 --val-limit 64 --batch-size 32 --epochs 1 --out "$WORK/full" > /dev/full 2> /dev/full \
   && [ -f "$WORK/full/ckpt-000000008.rmck" ] && grep -q "epoch 1/1 " "$WORK/full/train.log"; then
  ok "stdout and stderr on /dev/full: the run finishes, checkpoint written, train.log complete"
else fail "/dev/full" "exit $?; $(ls "$WORK/full" 2>&1 | tr '\n' ' ')"; fi

# --- train.log holds every line printed: the start line, bad-image warnings, "resumed from", "preempted"
cifar_subset "$WORK/bi" 15 4
echo garbage > "$WORK/bi/train/airplane/broken.jpg"
B=(train --data "imagefolder:$WORK/bi" --batch-size 8 --epochs 2 --quiet --out "$WORK/bilog")
"$RMTRAIN" "${B[@]}" --max-steps 4 > /dev/null 2>&1    # 31 images, 4 steps: the first epoch, every image read once
"$RMTRAIN" "${B[@]}" --max-steps 5 --resume auto > /dev/null 2>&1
"$RMTRAIN" "${B[@]}" --resume auto > /dev/null 2>&1 &
pid=$!; wait_catching $pid "$(kill -l USR1)"; kill -USR1 $pid; wait $pid; rc=$?
missing=""
for want in "rmtrain: resnet20 .* steps/epoch" "skipped bad image .*broken.jpg" "resumed from $WORK/bilog/ckpt-000000004.rmck" \
            "rmtrain: preempted before the first step"; do
  grep -qE "$want" "$WORK/bilog/train.log" || missing+="/$want/ "
done
[ $rc -eq 75 ] && [ -z "$missing" ] && ok "train.log: start line, bad-image warning, resumed from, preempted" \
  || fail "train.log lines" "exit $rc; missing $missing"

finish runfolder
