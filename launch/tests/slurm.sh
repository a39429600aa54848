#!/usr/bin/env bash
# SLURM test: a one-node cluster on this machine (launch/slurm-bed.sh: munged, slurmctld, slurmd under a
# private folder), and launch/slurm.sbatch submitted with sbatch:
#   1. 2 ranks through srun --mpi=pmix, preempted with USR1 mid-training (scancel --signal=USR1 --batch, as
#      the scheduler does before the time limit): the ranks checkpoint and exit 75, the script requeues the
#      job, SLURM starts it again, it resumes from that checkpoint and ends with parameters bitwise equal
#      to an uninterrupted run;
#   2. the mpirun launcher inside the allocation: 2 ranks, same parameters as plain mpirun;
#   3. a plain scancel ends the job for good (the script does not requeue a cancelled job);
#   4. scontrol requeue from outside (SIGTERM to the job, SLURM requeues it): the ranks checkpoint, the job
#      comes back by itself and ends bitwise equal to the uninterrupted run;
#   5. a job that comes back with another --ntasks: 2 ranks train epoch 1, the job resubmitted on 1 rank with
#      --epochs 2 resumes from the epoch's end (re-sharded, logged) and finishes.
# Without root or the daemons the test FAILS loudly. Prints 'slurm: N passed, M failed'.
set -uo pipefail
NAME=slurm source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BED="$WORK/bed"
export SLURM_CONF="$BED/slurm.conf"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

jobs_left() { squeue -h -o %i 2>/dev/null; }
wait_no_jobs() { for _ in $(seq 1 "$1"); do [ -z "$(jobs_left)" ] && return 0; sleep 0.5; done; return 1; }
cleanup() {
  if [ -f "$SLURM_CONF" ]; then            # cancel what is left in this private cluster, then stop it by PID
    for j in $(jobs_left); do scancel "$j" 2>/dev/null; done
    wait_no_jobs 40
  fi
  bash "$ROOT/launch/slurm-bed.sh" down "$BED" > /dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
t0=$SECONDS

if ! bash "$ROOT/launch/slurm-bed.sh" up "$BED" > "$WORK/bed.log" 2>&1; then
  echo "##########################################################################################"
  echo "## SLURM TEST BED COULD NOT START — the SLURM test did NOT run:"
  sed 's/^/##   /' "$WORK/bed.log"
  echo "## (needs root and Debian's munge slurmctld slurmd slurm-client: launch/setup.sh)"
  echo "##########################################################################################"
  fail "SLURM bed" "cannot start munged/slurmctld/slurmd here"
  finish slurm; exit 1
fi
ok "SLURM bed up in $((SECONDS - t0)) s ($(sinfo -h -o '%P %D node(s) %c CPUs %t' | head -n 1))"

if srun --mpi=list 2>&1 | grep -qw pmix; then
  LAUNCHER=srun
else
  LAUNCHER=mpirun
  echo "NOTE: this SLURM has no pmix plugin (srun --mpi=list); the preemption job runs with LAUNCHER=mpirun"
fi

# --- 1. preempted, requeued, resumed, bitwise equal to an uninterrupted run
ARGS=(--train-limit 3200 --val-limit 64 --batch-size 16 --epochs 1 --quiet --check-every 0 --mix rm)
cd "$WORK"
t1=$SECONDS
job=$(LAUNCHER=$LAUNCHER RMTRAIN="$RMTRAIN" RUN_DIR="$WORK/run" sbatch --parsable "$ROOT/launch/slurm.sbatch" "${ARGS[@]}")
log="$WORK/rmtrain-$job.log"
for _ in $(seq 1 300); do grep -q "steps/epoch" "$log" 2>/dev/null && break; sleep 0.2; done
sleep 2                                                     # well into the epoch (100 steps)
scancel --signal=USR1 --batch "$job"
for _ in $(seq 1 300); do grep -q "requeueing job" "$log" 2>/dev/null && break; sleep 0.2; done
t_requeue=$SECONDS
# SLURM starts the requeued job by itself after cred_expire + 1 s (10 s in the bed); wait for the end.
for _ in $(seq 1 120); do grep -q "restart 1 on" "$log" 2>/dev/null && break; sleep 0.5; done
t_restart=$SECONDS
wait_no_jobs 360
t_done=$SECONDS
state=$(scontrol show job "$job" 2>/dev/null | grep -oE 'JobState=[A-Z]+|Restarts=[0-9]+' | tr '\n' ' ' | sed 's/ $//')

ckpt=$(grep -o 'preempted: checkpoint written to [^;]*' "$log" | sed 's/.* to //')
if grep -q "USR1 received" "$log" && [ -n "$ckpt" ] && grep -q "exit 75); requeueing job $job" "$log"; then
  ok "USR1 mid-run: the ranks wrote $(basename "$ckpt"), exited 75, the script requeued job $job ($((t_requeue - t1)) s after submit)"
else
  fail "preemption" "$(tail -n 8 "$log")"
fi
if grep -q "^+ srun --mpi=pmix " "$log" || [ "$LAUNCHER" = mpirun ]; then
  ok "the script printed the command it runs: $(grep -m1 '^+ ' "$log" | cut -c1-90)..."
else
  fail "printed command" "$(grep -m1 '^+ ' "$log")"
fi
if grep -q "restart 1 on" "$log" && grep -q "resumed from $ckpt:" "$log" && grep -q "rmtrain exited with 0" "$log" \
   && [[ "$state" == *"JobState=COMPLETED"* && "$state" == *"Restarts=1"* ]]; then
  ok "SLURM restarted it $((t_restart - t_requeue)) s after the requeue; $(grep -o 'resumed from [^:]*: epoch [0-9]*, batch [0-9]*' "$log" | sed "s#$WORK/##"), finished ($state, job $((t_done - t1)) s)"
else
  fail "requeued run" "state: $state; log: $(tail -n 8 "$log")"
fi
"${MPIRUN[@]}" -np 2 "$RMTRAIN" train "${ARGS[@]}" --out "$WORK/ref" > "$WORK/ref.log" 2>&1
if msg=$("$RMTRAIN" diff "$WORK/run/final.safetensors" "$WORK/ref/final.safetensors" 2>&1); then
  ok "preempted + requeued under SLURM == uninterrupted mpirun run, bitwise ($msg)"
else
  fail "same final parameters" "$msg"
fi

# --- 2. LAUNCHER=mpirun inside the allocation
SHORT=(--train-limit 640 --val-limit 64 --batch-size 16 --epochs 1 --max-steps 12 --quiet --check-every 0 --mix rm)
job2=$(LAUNCHER=mpirun RMTRAIN="$RMTRAIN" RUN_DIR="$WORK/run2" sbatch --parsable "$ROOT/launch/slurm.sbatch" "${SHORT[@]}")
wait_no_jobs 240
log2="$WORK/rmtrain-$job2.log"
"${MPIRUN[@]}" -np 2 "$RMTRAIN" train "${SHORT[@]}" --out "$WORK/ref2" > /dev/null 2>&1
if grep -q "^+ mpirun -np 2 " "$log2" && grep -q "2 ranks × batch 16" "$log2" && grep -q "rmtrain exited with 0" "$log2" \
   && msg=$("$RMTRAIN" diff "$WORK/run2/final.safetensors" "$WORK/ref2/final.safetensors" 2>&1); then
  ok "LAUNCHER=mpirun in the allocation: 2 ranks, same parameters as plain mpirun ($msg)"
else
  fail "LAUNCHER=mpirun" "${msg:-} $(tail -n 6 "$log2")"
fi

# --- 3. scancel without --signal: the job ends and is not requeued
job3=$(RMTRAIN="$RMTRAIN" LAUNCHER=$LAUNCHER RUN_DIR="$WORK/run3" sbatch --parsable "$ROOT/launch/slurm.sbatch" "${ARGS[@]}")
log3="$WORK/rmtrain-$job3.log"
for _ in $(seq 1 300); do grep -q "steps/epoch" "$log3" 2>/dev/null && break; sleep 0.2; done
scancel "$job3"
wait_no_jobs 60
sleep 2
state3=$(scontrol show job "$job3" 2>/dev/null | grep -oE 'JobState=[A-Z]+|Restarts=[0-9]+' | tr '\n' ' ' | sed 's/ $//')
if [ -z "$(jobs_left)" ] && [[ "$state3" == *"JobState=CANCELLED"* && "$state3" == *"Restarts=0"* ]]; then
  ok "plain scancel: job $job3 ended for good ($state3)"
else
  fail "plain scancel" "state: $state3; queue: $(jobs_left | tr '\n' ' ' | sed 's/ $//'); log: $(tail -n 5 "$log3")"
fi

# --- 4. scontrol requeue from outside
t4=$SECONDS
job4=$(RMTRAIN="$RMTRAIN" LAUNCHER=$LAUNCHER RUN_DIR="$WORK/run4" sbatch --parsable "$ROOT/launch/slurm.sbatch" "${ARGS[@]}")
log4="$WORK/rmtrain-$job4.log"
for _ in $(seq 1 300); do grep -q "steps/epoch" "$log4" 2>/dev/null && break; sleep 0.2; done
sleep 2
scontrol requeue "$job4"
for _ in $(seq 1 120); do grep -q "restart 1 on" "$log4" 2>/dev/null && break; sleep 0.5; done
wait_no_jobs 360
state4=$(scontrol show job "$job4" 2>/dev/null | grep -oE 'JobState=[A-Z]+|Restarts=[0-9]+' | tr '\n' ' ' | sed 's/ $//')
ckpt4=$(grep -o 'preempted: checkpoint written to [^;]*' "$log4" | sed 's/.* to //')
if grep -q "TERM received" "$log4" && grep -q "not requeueing" "$log4" && [ -n "$ckpt4" ] \
   && grep -q "resumed from $ckpt4:" "$log4" && grep -q "rmtrain exited with 0" "$log4" \
   && [[ "$state4" == *"JobState=COMPLETED"* && "$state4" == *"Restarts=1"* ]] \
   && msg=$("$RMTRAIN" diff "$WORK/run4/final.safetensors" "$WORK/ref/final.safetensors" 2>&1); then
  ok "scontrol requeue: SIGTERM, $(basename "$ckpt4") written, SLURM requeued it, resumed and finished bitwise equal ($state4, $((SECONDS - t4)) s)"
else
  fail "scontrol requeue" "state: $state4; ${msg:-}; log: $(tail -n 8 "$log4")"
fi

# --- 5. requeued on another number of ranks: 2 ranks for epoch 1, then 1 rank for epoch 2
EL=(--train-limit 640 --val-limit 64 --batch-size 16 --quiet --check-every 0 --mix rm)
job5=$(RMTRAIN="$RMTRAIN" LAUNCHER=$LAUNCHER RUN_DIR="$WORK/run5" sbatch --parsable --ntasks-per-node=2 \
  "$ROOT/launch/slurm.sbatch" "${EL[@]}" --epochs 1)
wait_no_jobs 240
job6=$(RMTRAIN="$RMTRAIN" LAUNCHER=$LAUNCHER RUN_DIR="$WORK/run5" sbatch --parsable --ntasks-per-node=1 \
  "$ROOT/launch/slurm.sbatch" "${EL[@]}" --epochs 2)
wait_no_jobs 240
log6="$WORK/rmtrain-$job6.log"
if grep -q "rmtrain exited with 0" "$WORK/rmtrain-$job5.log" && grep -q "resumed on 1 rank(s) from a checkpoint of 2 at the end of epoch 1" "$log6" \
   && grep -q "rmtrain exited with 0" "$log6" && [ "$(grep -c '"epoch"' "$WORK/run5/metrics.jsonl")" -eq 2 ]; then
  ok "requeued with --ntasks 2 → 1: $(grep -o 'resumed on 1 rank.*steps per epoch' "$log6" | cut -c1-110)…"
else
  fail "requeue on another --ntasks" "$(tail -n 6 "$log6")"
fi

echo "slurm test took $((SECONDS - t0)) s"
finish slurm
