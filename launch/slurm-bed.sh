#!/usr/bin/env bash
# A SLURM cluster of one node on this machine, for tests: munged, slurmctld and slurmd from Debian's
# packages, every file (key, sockets, state, logs, slurm.conf) under one private folder, daemons started
# by hand (no init system) and stopped by PID.
#   launch/slurm-bed.sh up DIR     # prints the SLURM_CONF to export for sbatch/squeue/scontrol
#   launch/slurm-bed.sh down DIR
# Needs root (slurmd runs jobs as their user). Fails loudly when the daemons cannot start.
set -euo pipefail
cmd=${1:-}; DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: launch/slurm-bed.sh up|down DIR" >&2; exit 2; }

die() { echo "slurm-bed: ERROR: $*" >&2; exit 1; }

down() {
  for name in slurmd slurmctld munged; do
    pidf="$DIR/$name.pid"
    if [ -f "$pidf" ]; then
      pid=$(cat "$pidf")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$pidf"
    fi
  done
}

if [ "$cmd" = down ]; then down; echo "slurm-bed: stopped"; exit 0; fi
[ "$cmd" = up ] || die "unknown command $cmd"
[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd starts jobs as their users)"
for t in munged mungekey slurmctld slurmd sbatch; do command -v "$t" >/dev/null || die "$t missing: run launch/setup.sh"; done

mkdir -p "$DIR"/{state,spool,munge}
chmod 755 "$DIR"; chmod 711 "$DIR/munge"                      # munge's socket folder needs o+x
DIR=$(cd "$DIR" && pwd)
[ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
chmod 400 "$DIR/munge/munge.key"
munged -f --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.sock" --pid-file="$DIR/munged.pid" \
  --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed" || die "munged did not start ($(tail -n 2 "$DIR/munged.log" 2>/dev/null))"

cpus=$(nproc)
# A requeued job may start again cred_expire + 1 s after it was requeued (SLURM's default 120 s keeps the
# new job step clear of the old one's credential and slurmstepd). 10 s keeps the test short and is still
# well above the 1-3 s the old step needs to wind down here. CRED_EXPIRE=… overrides it.
CRED_EXPIRE=${CRED_EXPIRE:-10}
cat > "$DIR/slurm.conf" <<CONF
ClusterName=rmtrain-bed
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.sock,cred_expire=$CRED_EXPIRE
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16917
SlurmdPort=16918
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
# Test pending jobs every 2 s (default 60 s), so that a requeued job starts soon after its delay ends.
SchedulerParameters=sched_interval=2
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -i -f "$SLURM_CONF" || die "slurmctld did not start: $(tail -n 3 "$DIR/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" -N localhost || die "slurmd did not start: $(tail -n 3 "$DIR/slurmd.log" 2>/dev/null)"
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %t 2>/dev/null | head -n 1 || true)
  case "$state" in idle*|mix*|alloc*) echo "slurm-bed: up; export SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 0.2
done
down
die "the node never became idle (state '$state'); logs in $DIR"
