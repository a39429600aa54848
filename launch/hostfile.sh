#!/usr/bin/env bash
# Several nodes over TCP: runs `rmtrain train` with mpirun across the hosts of an OpenMPI hostfile,
# one process per slot. Prints the exact mpirun command before running it.
#
#   launch/hostfile.sh [--iface IF] [--np N] [--bind-to WHAT] [--dry-run] HOSTFILE [rmtrain train args...]
#
#   launch/hostfile.sh hostfiles/localhost --epochs 1                        # 2 ranks on this machine
#   IFACE=10.1.0.0/16 launch/hostfile.sh hostfiles/two-nodes --batch-size 64 # two nodes, one subnet
#
# Options (before HOSTFILE) and the environment variables they stand for:
#   --iface IF     IFACE          interfaces for MPI traffic: names (eth0,ib0) or subnets (10.1.0.0/16), comma
#                                 separated; sets both btl_tcp_if_include and oob_tcp_if_include. A subnet is
#                                 safer than a name when the interface is called differently on each node.
#                                 Unset: Open MPI uses every non-loopback interface.
#   --np N         NP             number of processes (default: the sum of the hostfile's slots; more than the
#                                 slots adds --oversubscribe)
#   --bind-to W    BIND_TO        none | core | socket | ... (default: none when two or more of the hostfile's
#                                 hosts are this machine, otherwise Open MPI's default, core for up to 2 ranks)
#   --dry-run      DRY_RUN=1      print the command, do not run it
#                  BTL            default tcp,self, or tcp,vader,self when a host has more than one slot
#                                 (vader is shared memory between ranks of one host; never used across hosts)
#                  OPENBLAS_NUM_THREADS  BLAS threads per rank, exported to every rank with -x (default: this
#                                 machine's cores / the largest slot count, at least 1; nodes assumed alike)
#                  EXPORT_ENV     more variable names to pass to the ranks with -x (space separated)
#                  MPIRUN_ARGS    extra mpirun options, split on spaces (e.g. "--mca plm_rsh_agent /path/agent")
#                  RMTRAIN        the rmtrain binary; must exist at this path on every node (default: this
#                                 repo's .build/release/rmtrain, built here if missing)
#                  MPIRUN         the mpirun command (default mpirun)
# A leading `train` among the rmtrain arguments is accepted and dropped.
set -euo pipefail
ME=hostfile.sh
REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "$ME: error: $*" >&2; exit 2; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

IFACE=${IFACE:-}
NP=${NP:-}
BIND_TO=${BIND_TO:-}
DRY_RUN=${DRY_RUN:-0}
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --iface) [ $# -ge 2 ] || die "--iface needs a value (an interface name or a subnet like 10.1.0.0/16)"; IFACE=$2; shift 2 ;;
    --iface=*) IFACE=${1#*=}; shift ;;
    --np) [ $# -ge 2 ] || die "--np needs a value"; NP=$2; shift 2 ;;
    --np=*) NP=${1#*=}; shift ;;
    --bind-to) [ $# -ge 2 ] || die "--bind-to needs a value (none, core, socket)"; BIND_TO=$2; shift 2 ;;
    --bind-to=*) BIND_TO=${1#*=}; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; break ;;
    -*) die "unknown option $1 before the hostfile (rmtrain arguments go after HOSTFILE; see --help)" ;;
    *) break ;;
  esac
done

[ $# -ge 1 ] || { echo "usage: $ME [--iface IF] [--np N] [--bind-to W] [--dry-run] HOSTFILE [rmtrain train args...]" >&2; exit 2; }
HOSTFILE=$1; shift
[ "${1:-}" = train ] && shift
[ -e "$HOSTFILE" ] || die "hostfile $HOSTFILE does not exist (examples: $REPO/hostfiles/localhost, $REPO/hostfiles/two-nodes)"
[ -f "$HOSTFILE" ] || die "hostfile $HOSTFILE is not a regular file"
[ -r "$HOSTFILE" ] || die "hostfile $HOSTFILE is not readable"
HOSTFILE=$(cd "$(dirname "$HOSTFILE")" && pwd)/$(basename "$HOSTFILE")

# --- read the hostfile: "host [slots=N] [max_slots=M]" per line, '#' comments. A host named on two lines is
#     refused: Open MPI 4.1 stops on a node whose slot count is given twice ("multiple definitions of the slot
#     count", or an internal error), and a repeat without slots= would count one slot there, not the cores.
declare -A SLOTS=() FIRST=()
HOSTS=()
total=0; maxslots=0; lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line=${line%%#*}
  read -ra words <<< "$line" || true
  [ ${#words[@]} -eq 0 ] && continue
  host=${words[0]}; slots=""; max=""
  for w in "${words[@]:1}"; do
    case "$w" in
      slots=*|cpu=*|count=*) slots=${w#*=} ;;
      max_slots=*|max-slots=*|slots_max=*|slots-max=*) max=${w#*=} ;;
      *) die "$HOSTFILE line $lineno: unknown field '$w' (expected slots=N or max_slots=N)" ;;
    esac
  done
  [ -z "$slots" ] && slots=$max
  if [ -z "$slots" ]; then
    [ -n "$NP" ] || die "$HOSTFILE line $lineno: host $host has no slots=N (Open MPI would then use that node's core count, which this script cannot see): add slots=N or set NP"
    slots=0
  fi
  [[ "$slots" =~ ^[0-9]+$ ]] || die "$HOSTFILE line $lineno: slots must be a whole number, got '$slots'"
  if [ -n "${FIRST[$host]+x}" ]; then
    die "$HOSTFILE line $lineno: host $host is already on line ${FIRST[$host]} (Open MPI refuses a node listed twice with slots): write it on one line, with slots=$(( SLOTS[$host] + slots ))"
  fi
  FIRST[$host]=$lineno; HOSTS+=("$host"); SLOTS[$host]=$slots
  total=$((total + slots))
done < "$HOSTFILE"
[ ${#HOSTS[@]} -gt 0 ] || die "hostfile $HOSTFILE lists no hosts"
for h in "${HOSTS[@]}"; do [ "${SLOTS[$h]}" -gt "$maxslots" ] && maxslots=${SLOTS[$h]}; done

if [ -n "$NP" ]; then
  [[ "$NP" =~ ^[1-9][0-9]*$ ]] || die "NP must be a positive whole number, got '$NP'"
else
  [ "$total" -gt 0 ] || die "hostfile $HOSTFILE has 0 slots in total"
  NP=$total
fi

# --- which hosts are this machine? (name, short name, localhost, or a name resolving to one of our addresses)
declare -A LOCAL=([localhost]=1 [127.0.0.1]=1 [::1]=1)
for n in "$(hostname 2>/dev/null)" "$(hostname -s 2>/dev/null)" "$(hostname -f 2>/dev/null)"; do [ -n "$n" ] && LOCAL[$n]=1; done
if command -v ip >/dev/null; then
  while read -r a; do LOCAL[${a%/*}]=1; done < <(ip -o addr show 2>/dev/null | awk '{print $4}')
fi
is_local() {
  [ -n "${LOCAL[$1]+x}" ] && return 0
  local a
  for a in $(timeout 2 getent ahosts "$1" 2>/dev/null | awk '{print $1}' | sort -u); do
    [ -n "${LOCAL[$a]+x}" ] && return 0
  done
  return 1
}
nlocal=0; localslots=0
for h in "${HOSTS[@]}"; do
  if is_local "$h"; then nlocal=$((nlocal + 1)); localslots=$((localslots + SLOTS[$h])); fi
done
if [ -z "$BIND_TO" ] && [ "$nlocal" -ge 2 ]; then
  BIND_TO=none
  echo "$ME: $nlocal of the hostfile's hosts are this machine: --bind-to none (else each would bind its ranks to the same cores)"
fi

# --- BLAS threads per rank
if [ -z "${OPENBLAS_NUM_THREADS:-}" ]; then
  cores=$(nproc 2>/dev/null || echo 1)
  per=$maxslots
  [ "$nlocal" -ge 2 ] && per=$localslots
  [ "$per" -ge 1 ] || per=1
  OPENBLAS_NUM_THREADS=$(( cores / per )); [ "$OPENBLAS_NUM_THREADS" -ge 1 ] || OPENBLAS_NUM_THREADS=1
fi
[[ "$OPENBLAS_NUM_THREADS" =~ ^[1-9][0-9]*$ ]] || die "OPENBLAS_NUM_THREADS must be a positive whole number, got '$OPENBLAS_NUM_THREADS'"

# --- the binary
if [ -n "${RMTRAIN:-}" ]; then
  [ -x "$RMTRAIN" ] || die "RMTRAIN=$RMTRAIN is not an executable file"
else
  RMTRAIN=$REPO/.build/release/rmtrain
  if [ ! -x "$RMTRAIN" ]; then
    echo "$ME: $RMTRAIN missing, building it: swift build -c release --product rmtrain"
    (cd "$REPO" && swift build -c release --product rmtrain 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]') || true
    [ -x "$RMTRAIN" ] || die "build failed: $RMTRAIN still missing"
  fi
fi
case "$RMTRAIN" in /*) ;; *) RMTRAIN=$(cd "$(dirname "$RMTRAIN")" && pwd)/$(basename "$RMTRAIN") ;; esac

# --- the command
if [ -z "${BTL:-}" ]; then
  BTL=tcp,self
  [ "$maxslots" -gt 1 ] && BTL=tcp,vader,self
fi
CMD=(${MPIRUN:-mpirun} --hostfile "$HOSTFILE" -np "$NP")
[ "$(id -u)" -eq 0 ] && CMD+=(--allow-run-as-root)
[ "$NP" -gt "$total" ] && CMD+=(--oversubscribe)
[ -n "$BIND_TO" ] && CMD+=(--bind-to "$BIND_TO")
CMD+=(--mca btl "$BTL")
if [ -n "$IFACE" ]; then
  CMD+=(--mca btl_tcp_if_include "$IFACE" --mca oob_tcp_if_include "$IFACE")
fi
CMD+=(-x "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS")
for v in OPENBLAS_CORETYPE ${EXPORT_ENV:-}; do
  [[ "$v" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "EXPORT_ENV: '$v' is not a variable name"
  [ -n "${!v+x}" ] && CMD+=(-x "$v=${!v}")
done
if [ -n "${MPIRUN_ARGS:-}" ]; then
  read -ra extra <<< "$MPIRUN_ARGS"
  CMD+=("${extra[@]}")
fi
CMD+=("$RMTRAIN" train "$@")

# the command as one copy-pasteable line: words quoted only when the shell needs it
shown=""
for w in "${CMD[@]}"; do
  if [[ "$w" =~ ^[A-Za-z0-9_./,:=@%+^-]+$ ]]; then shown+="$w "; else shown+="'${w//\'/\'\\\'\'}' "; fi
done
echo "$ME: ${#HOSTS[@]} host(s), $total slot(s), $NP rank(s)"
echo "$ME: running: ${shown% }"
[ "$DRY_RUN" = 1 ] && exit 0
# SIGTERM, SIGINT (Ctrl-C), SIGHUP or SIGUSR1 to this script: the ranks checkpoint and exit 75 (see forward-signals.sh).
source "$(dirname "${BASH_SOURCE[0]}")/forward-signals.sh"
run_forwarding "${CMD[@]}"
