#!/usr/bin/env bash
# Train with N processes on this machine:  launch/local.sh N [rmtrain train flags...]
#   launch/local.sh 2 --mix rm --epochs 3
# Each rank gets cores/N cores: it is bound to them and runs that many BLAS threads, so the machine is
# never oversubscribed. With more ranks than cores, ranks share cores (one thread each, unbound).
# Environment: RMTRAIN (binary; default: this checkout's release build, built if missing),
# MPIRUN_ARGS (extra mpirun options), OPENBLAS_NUM_THREADS (overrides the per-rank thread count).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: launch/local.sh N [rmtrain train flags...]   (N = number of processes)" >&2
  exit 2
fi
N=$1; shift

BIN=${RMTRAIN:-$ROOT/.build/release/rmtrain}
if [ ! -x "$BIN" ]; then
  echo "local.sh: building $BIN" >&2
  (cd "$ROOT" && swift build -c release --product rmtrain >&2)
fi
command -v mpirun >/dev/null || { echo "local.sh: mpirun not found (run launch/setup.sh)" >&2; exit 1; }

cores=$(nproc)
cmd=(mpirun -np "$N")
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
if [ "$N" -le "$cores" ]; then
  per=$(( cores / N ))
  threads=${OPENBLAS_NUM_THREADS:-$per}
  cmd+=(--map-by "slot:PE=$per" --bind-to core)
else
  threads=${OPENBLAS_NUM_THREADS:-1}
  cmd+=(--oversubscribe --bind-to none)
fi
cmd+=(-x "OPENBLAS_NUM_THREADS=$threads")
# shellcheck disable=SC2206
[ -n "${MPIRUN_ARGS:-}" ] && cmd+=($MPIRUN_ARGS)
cmd+=("$BIN" train "$@")

echo "+ ${cmd[*]}"
# SIGTERM, SIGINT (Ctrl-C), SIGHUP or SIGUSR1 to this script: the ranks checkpoint and exit 75 (see forward-signals.sh).
source "$(dirname "${BASH_SOURCE[0]}")/forward-signals.sh"
run_forwarding "${cmd[@]}"
