#!/usr/bin/env bash
# SLURM test: a one-node cluster (launch/slurm-bed.sh), launch/slurm.sbatch submitted with sbatch (2 ranks
# through srun --mpi=pmix), preempted with USR1 mid-training, requeued by the script, resumed from its
# checkpoint, and finished with parameters bitwise equal to an uninterrupted run. Without root or the
# daemons the test FAILS loudly. Prints 'slurm: N passed, M failed'.
set -uo pipefail
NAME=slurm source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BED="$WORK/bed"
trap 'bash "$ROOT/launch/slurm-bed.sh" down "$BED" >/dev/null 2>&1; pkill -9 -f "^$RMTRAIN .*$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

if ! bash "$ROOT/launch/slurm-bed.sh" up "$BED" > "$WORK/bed.log" 2>&1; then
  echo "########## the SLURM bed could not start: $(tail -n 2 "$WORK/bed.log") ##########"
  fail "SLURM bed" "cannot start munged/slurmctld/slurmd here (needs root and Debian's slurm packages)"
  finish slurm; exit 1
fi
ok "SLURM bed up ($(grep -o 'export SLURM_CONF=.*' "$WORK/bed.log"))"
export SLURM_CONF="$BED/slurm.conf"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

ARGS=(--train-limit 3200 --val-limit 64 --batch-size 16 --epochs 2 --quiet --check-every 0 --mix rm)
cd "$WORK"
job=$(RMTRAIN="$RMTRAIN" RUN_DIR="$WORK/run" sbatch --parsable --export=ALL "$ROOT/launch/slurm.sbatch" "${ARGS[@]}")
log="$WORK/rmtrain-$job.log"
for _ in $(seq 1 150); do grep -q "steps/epoch" "$log" 2>/dev/null && break; sleep 0.2; done
sleep 2
scancel --signal=USR1 --batch "$job"
# The requeued job waits for its begin time; start it now, then wait for the end.
for _ in $(seq 1 150); do grep -q "requeueing job" "$log" 2>/dev/null && break; sleep 0.2; done
sleep 1
scontrol update jobid="$job" StartTime=now > /dev/null 2>&1
for _ in $(seq 1 300); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.5; done

if grep -q "USR1 received" "$log" && grep -q "preempted: checkpoint written" "$log" && grep -q "requeueing job $job" "$log"; then
  ok "USR1: the ranks checkpointed, exit 75, the script requeued job $job"
else
  fail "preemption" "$(tail -n 5 "$log")"
fi
if grep -q "restart 1 on" "$log" && grep -q "resumed from $WORK/run/ckpt-" "$log" && grep -q "rmtrain exited with 0" "$log"; then
  ok "requeued run resumed ($(grep -o 'resumed from [^:]*: epoch [0-9]*, batch [0-9]*' "$log")) and finished"
else
  fail "requeued run" "$(tail -n 5 "$log")"
fi
"${MPIRUN[@]}" -np 2 "$RMTRAIN" train "${ARGS[@]}" --out "$WORK/ref" > /dev/null 2>&1
if msg=$("$RMTRAIN" diff "$WORK/run/final.safetensors" "$WORK/ref/final.safetensors" 2>&1); then
  ok "preempted + requeued == uninterrupted, bitwise ($msg)"
else
  fail "same final parameters" "$msg"
fi
finish slurm
