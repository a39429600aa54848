#!/usr/bin/env bash
# Distributed integration tests: real mpirun runs of the rmtrain binary. Prints 'N passed, M failed'.
set -uo pipefail
NAME=mpi source "$(dirname "$0")/lib.sh"

# --- after training, every rank holds bit-identical parameters (2 and 3 ranks); only rank 0 writes metrics
for np in 2 3; do
  out="$WORK/ident$np"
  if "${MPIRUN[@]}" -np $np "$RMTRAIN" train --train-limit 768 --val-limit 301 --batch-size 16 --epochs 2 \
       --max-steps 30 --check-every 5 --quiet --save-all-ranks --out "$out" > "$out.log" 2>&1; then
    same=1
    for r in $(seq 1 $((np - 1))); do
      "$RMTRAIN" diff "$out/final.rank0.safetensors" "$out/final.rank$r.safetensors" >/dev/null || same=0
    done
    [ $same -eq 1 ] && ok "-np $np: parameters bit-identical on all ranks" || fail "-np $np identical" "ranks differ"
    lines=$(wc -l < "$out/metrics.jsonl")
    if [ "$lines" -eq 2 ] && grep -q "\"world_size\": $np" "$out/metrics.jsonl" && grep -q '"val_images": 301,' "$out/metrics.jsonl"; then
      ok "-np $np: rank 0 alone wrote metrics (one line per epoch), val_images 301 exactly"
    else
      fail "-np $np metrics" "$(head -c 400 "$out/metrics.jsonl")"
    fi
  else
    fail "-np $np run" "$(tail -n 5 "$out.log")"
  fi
done

# --- 2 ranks x batch B average to the 1-process gradient on the same 2B samples (BN frozen)
Q=(--train-limit 256 --val-limit 64 --epochs 1 --max-steps 1 --quiet --freeze-bn --check-every 0)
if "$RMTRAIN" train "${Q[@]}" --batch-size 32 --out "$WORK/g1" --dump-gradients "$WORK/g1.st" >/dev/null 2>&1 &&
   "${MPIRUN[@]}" -np 2 "$RMTRAIN" train "${Q[@]}" --batch-size 16 --out "$WORK/g2" --dump-gradients "$WORK/g2.st" >/dev/null 2>&1; then
  if msg=$("$RMTRAIN" diff "$WORK/g2.st" "$WORK/g1.st" --rtol 1e-5); then ok "2x16 gradient = 1x32 gradient ($msg)"
  else fail "gradient equivalence" "$msg"; fi
else
  fail "gradient equivalence" "a run failed"
fi

# --- --allreduce-dtype bf16 (MPI's own reduction with our bf16 sum op): the same gradient to bfloat16's rounding
#     (2^-9 per value and partial sum), not to float32's (bf16 ran), and the same bits when run again
for k in 1 2; do
  "${MPIRUN[@]}" -np 2 "$RMTRAIN" train "${Q[@]}" --batch-size 16 --allreduce-dtype bf16 --out "$WORK/h$k" \
    --dump-gradients "$WORK/h$k.st" >/dev/null 2>&1 || fail "bf16 all-reduce run $k" "failed"
done
if msg=$("$RMTRAIN" diff "$WORK/h1.st" "$WORK/g1.st" --rtol 1e-2) && ! "$RMTRAIN" diff "$WORK/h1.st" "$WORK/g1.st" --rtol 1e-5 >/dev/null 2>&1 \
   && "$RMTRAIN" diff "$WORK/h1.st" "$WORK/h2.st" >/dev/null 2>&1; then
  ok "--allreduce-dtype bf16: 2x16 gradient = 1x32 within bf16 rounding, not float32's, repeatable ($msg)"
else fail "bf16 all-reduce" "$msg"; fi

# --- different configurations stop at start, naming the difference
Q=(--train-limit 256 --val-limit 64 --epochs 1 --max-steps 2 --quiet)
timeout 120 "${MPIRUN[@]}" -np 1 "$RMTRAIN" train "${Q[@]}" --out "$WORK/mm" : \
  -np 1 "$RMTRAIN" train "${Q[@]}" --model resnet56 --out "$WORK/mm" > "$WORK/mm.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "configuration differs across ranks: rank 1 has model=resnet56, rank 0 has model=resnet20" "$WORK/mm.log"; then
  ok "mismatched --model stops at start"
else
  fail "mismatched --model" "rc=$rc $(head -c 300 "$WORK/mm.log")"
fi

# --- an epoch without a step on 2 ranks (3 images, --drop-last: 1 per rank, batch 2): refused at start,
#     nothing written as if trained
timeout 120 "${MPIRUN[@]}" -np 2 "$RMTRAIN" train --train-limit 3 --val-limit 2 --batch-size 2 --drop-last --epochs 1 \
  --quiet --out "$WORK/zero" > "$WORK/zero.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "an epoch has no step: 3 training image(s) over 2 rank(s)" "$WORK/zero.log" \
   && [ ! -f "$WORK/zero/final.safetensors" ]; then ok "zero-step epoch on 2 ranks refused"
else fail "zero-step epoch" "rc=$rc $(head -c 300 "$WORK/zero.log")"; fi

# --- ranks that see different data (a per-node copy, same path, other content): stopped at start within
#     seconds, one line naming the rank and the difference. Each rank runs in its own folder holding "data".
mkdata() {  # mkdata ROOT IMAGES_PER_CLASS CLASS...: an image folder of symbolic links to CIFAR-10 images
  local root=$1 n=$2; shift 2
  cifar_link "$root/data/train" train "$n" "$@"
  cifar_link "$root/data/val" test 5 "$@"
}
mkdata "$WORK/d48" 24 airplane automobile; mkdata "$WORK/d30" 15 airplane automobile
mkdata "$WORK/d44" 22 airplane automobile; mkdata "$WORK/d3c" 16 airplane automobile bird
for case in "d30:data-train-images=30, rank 0 has data-train-images=48" "d44:data-train-images=44, rank 0 has data-train-images=48" \
            "d3c:data-classes=3 (airplane,automobile,bird"; do
  other=${case%%:*}; want=${case#*:}
  start=$(date +%s)
  timeout 120 "${MPIRUN[@]}" -np 1 --wdir "$WORK/d48" "$RMTRAIN" train --data imagefolder:data --batch-size 8 --epochs 1 --quiet --out run : \
    -np 1 --wdir "$WORK/$other" "$RMTRAIN" train --data imagefolder:data --batch-size 8 --epochs 1 --quiet --out run > "$WORK/dd.log" 2>&1
  rc=$?; took=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 30 ] && grep -qF "data differs across ranks: rank 1 has $want" "$WORK/dd.log"; then
    ok "other data on rank 1 ($other) stopped in ${took} s, named"
  else fail "other data on rank 1 ($other)" "rc=$rc, ${took} s: $(grep -m1 error "$WORK/dd.log")"; fi
done

# --- collectives of any size: the checkpoint gather and broadcast in slices (a test-only slice of 1000
#     bytes over 3 ranks), and one real gather past 2 GiB per rank (MPI's Int32 counts wrapped there)
if out=$(RMTRAIN_MPI_SLICE=1000 timeout 120 "${MPIRUN[@]}" -x RMTRAIN_MPI_SLICE -np 3 "$RMTRAIN" check-collectives --mib 3 2>&1) \
   && grep -q "every byte equal" <<< "$out"; then ok "gather/broadcast in 1000-byte slices, 3 ranks"
else fail "sliced collectives" "$(head -c 300 <<< "$out")"; fi
if out=$(timeout 300 "${MPIRUN[@]}" -np 2 "$RMTRAIN" check-collectives --mib 2100 2>&1) && grep -q "every byte equal" <<< "$out"; then
  ok "gather and broadcast of 2100 MiB per rank (past 2 GiB)"
else fail "collectives past 2 GiB" "$(head -c 300 <<< "$out")"; fi

# start_job NAME TIMEOUT: a long 2-rank run in the background; sets JOB_PID and waits until both ranks train
start_job() {
  local name=$1 timeout=$2
  ( timeout 180 "${MPIRUN[@]}" -np 2 "$RMTRAIN" train --train-limit 30000 --val-limit 64 --epochs 5 --quiet \
      --collective-timeout "$timeout" --out "$WORK/$name" > "$WORK/$name.log" 2>&1; echo "rc=$?" >> "$WORK/$name.log" ) &
  JOB_PID=$!
  for _ in $(seq 1 100); do
    [ "$(pgrep -f "^$RMTRAIN train .*$WORK/$name" | wc -l)" -ge 2 ] && grep -q "steps/epoch" "$WORK/$name.log" 2>/dev/null && break
    sleep 0.2
  done
  sleep 2
}
rank_pid() { pgrep -f "^$RMTRAIN train .*$WORK/$1" | sort -n | sed -n "$2p"; }

# --- a rank killed with SIGKILL ends the whole job, with a message, instead of hanging
start_job killed 30
t0=$(date +%s); kill -9 "$(rank_pid killed 2)"; wait $JOB_PID; dt=$(( $(date +%s) - t0 ))
if [ $dt -le 40 ] && grep -q "rc=[1-9]" "$WORK/killed.log" && grep -qi "killed\|signal 9" "$WORK/killed.log"; then
  ok "SIGKILL of a rank ends the job in ${dt}s"
else
  fail "SIGKILL of a rank" "after ${dt}s: $(tail -n 4 "$WORK/killed.log")"
fi

# --- a stalled rank (SIGSTOP): the watchdog aborts within --collective-timeout, naming the collective
start_job stalled 5
t0=$(date +%s); kill -STOP "$(rank_pid stalled 2)"; wait $JOB_PID; dt=$(( $(date +%s) - t0 ))
pkill -9 -f "^$RMTRAIN train .*$WORK/stalled" 2>/dev/null
if [ $dt -le 30 ] && grep -q "waited more than 5 s (--collective-timeout): rank [01] did not answer (dead, or stopped whole)" "$WORK/stalled.log"; then
  ok "stopped rank: watchdog aborted in ${dt}s ($(grep -o "collective #[0-9]* '[^']*' at step [0-9]*" "$WORK/stalled.log" | head -n 1)), naming the stopped rank"
else
  fail "stopped rank" "after ${dt}s: $(tail -n 4 "$WORK/stalled.log")"
fi

# --- the watchdog names the cause: a rank that issues one collective more, a rank that computes instead
#     of joining (each rank's watchdog thread answers the one that timed out)
out=$(timeout 60 "${MPIRUN[@]}" -np 2 "$RMTRAIN" check-collectives --extra-on-rank 1 --collective-timeout 3 2>&1)
if grep -q "ranks disagree on the collectives.*rank [01] waits in collective #2 '[a-z ]*', rank [01] in collective #2 '[a-z ]*'" <<< "$out" \
   && grep "disagree" <<< "$out" | grep -q "'end of run'.*'check extra sum'\|'check extra sum'.*'end of run'"; then
  ok "a rank with one collective more: the watchdog says the ranks disagree"
else fail "collective mismatch" "$(grep rmtrain <<< "$out" | head -c 400)"; fi
out=$(timeout 60 "${MPIRUN[@]}" -np 3 "$RMTRAIN" check-collectives --stall-on-rank 2 --collective-timeout 3 2>&1)
if grep -q "rank 2 is not in a collective: it has computed for [0-9]* s since it started (stalled)" <<< "$out" \
   && ! grep -q "rank 1 did not answer\|disagree" <<< "$out"; then
  ok "a rank that computes instead of joining: the watchdog names it as stalled"
else fail "stalled rank" "$(grep rmtrain <<< "$out" | head -c 400)"; fi

# --- the single-node launcher: 2 ranks, binding and BLAS threads set, the command printed
if out=$(RMTRAIN="$RMTRAIN" bash "$(dirname "$0")/../local.sh" 2 --train-limit 256 --val-limit 64 --batch-size 16 \
           --max-steps 4 --epochs 1 --quiet --out "$WORK/local" 2>&1) \
   && echo "$out" | grep -q "^+ mpirun -np 2 .*OPENBLAS_NUM_THREADS=" && grep -q '"world_size": 2' "$WORK/local/metrics.jsonl"; then
  ok "launch/local.sh 2 ($(echo "$out" | head -n 1 | cut -c1-90)...)"
else
  fail "launch/local.sh" "$(echo "$out" | tail -n 3)"
fi

# --- Ctrl-C in the terminal running launch/local.sh: SIGINT to the whole foreground process group (setsid
#     makes the script's own group here), mpirun included. The ranks checkpoint and exit 75 (mpirun, which
#     would forward INT and kill them a second later, is in a session of its own), and the launcher says so
#     in one line instead of Open MPI's "job has been aborted" banners
( RMTRAIN="$RMTRAIN" setsid bash "$(dirname "$0")/../local.sh" 2 --train-limit 30000 --val-limit 64 --epochs 5 --quiet \
    --check-every 0 --out "$WORK/ctrlc" > "$WORK/ctrlc.log" 2>&1; echo "rc=$?" >> "$WORK/ctrlc.log" ) &
job=$!
for _ in $(seq 1 150); do grep -q "steps/epoch" "$WORK/ctrlc.log" 2>/dev/null && break; sleep 0.2; done
sleep 2
pgid=$(ps -o pgid= -p "$(pgrep -f "local.sh 2 .*$WORK/ctrlc" | head -n 1)" | tr -d ' ')
[ -n "$pgid" ] && kill -INT -- "-$pgid"; wait $job
if grep -q "rc=75" "$WORK/ctrlc.log" && ls "$WORK/ctrlc"/ckpt-*.rmck > /dev/null 2>&1 && grep -q "local.sh: INT received" "$WORK/ctrlc.log" \
   && grep -q "^local.sh: the ranks wrote a checkpoint and stopped (exit 75); to continue, run the same command with --resume auto$" "$WORK/ctrlc.log" \
   && ! grep -q "aborted\|non-zero" "$WORK/ctrlc.log"; then
  ok "Ctrl-C (INT to the process group of launch/local.sh): checkpoint, exit 75, one line saying so"
else fail "Ctrl-C to local.sh" "pgid=$pgid $(grep -v '^[-]' "$WORK/ctrlc.log" | tail -n 5)"; fi

# --- warnings name their rank: a corrupt JPEG in a 2-rank run is skipped, counted once in bad_images,
#     and reported with the rank that met it
IMF="$WORK/imf"
cifar_folder "$IMF" 24 airplane cat
head -c 300 "$(ls "$IMF"/train/cat/* | head -n 1)" > "$IMF/train/cat/zz-truncated.jpg"
if "${MPIRUN[@]}" -np 2 "$RMTRAIN" train --data "imagefolder:$IMF" --batch-size 8 --epochs 1 --quiet --out "$WORK/bad" \
     > "$WORK/bad.log" 2>&1 && grep -qE "^\[rank [01]\] rmtrain: warning: skipped bad image $IMF/train/cat/zz-truncated.jpg" "$WORK/bad.log" \
     && grep -q '"bad_images": 1,' "$WORK/bad/metrics.jsonl"; then
  ok "bad image warning carries its rank; bad_images 1 over 2 ranks"
else
  fail "rank-prefixed warning" "$(grep -i warning "$WORK/bad.log" | head -n 2) $(grep -o '"bad_images": [0-9]*' "$WORK/bad/metrics.jsonl")"
fi

finish mpi
