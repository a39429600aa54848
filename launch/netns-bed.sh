#!/usr/bin/env bash
# Multi-node test bed on one machine: network namespaces as "hosts", joined by veth pairs to a bridge
# in the root namespace, on a private /24 that exists only on that bridge. Open MPI reaches the "hosts"
# through a launch agent (--mca plm_rsh_agent) that enters the namespace instead of using ssh, and
# launch/hostfile.sh runs rmtrain across them over TCP. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
#
#   launch/netns-bed.sh run [--] [rmtrain train args...]   up, launch/hostfile.sh over the bed, down (always)
#   launch/netns-bed.sh up                                 create the bed, print how to use it
#   launch/netns-bed.sh down                               remove everything (also leftovers of a crashed run)
#   launch/netns-bed.sh status                             what exists now
#   launch/netns-bed.sh exec NODE -- COMMAND...            run a command on a "host" (as the agent does)
#
# Environment: BED_NODES (2, at most 9), BED_NAME (rmtrain: names rmtrain-node1.., bridge rmtrain-br0),
# BED_SUBNET (10.213.7: the bridge is .1, node k is .1k), BED_DIR (/tmp/<BED_NAME>-netns-bed),
# BED_SLOTS (1 slot per node), BED_RATE (e.g. 100mbit, 1gbit: each node's link limited to that rate in both
# directions by a token-bucket qdisc, `tc … tbf`, with a 10 ms burst; unset: unlimited). `run` passes RMTRAIN, NP, OPENBLAS_NUM_THREADS, MPIRUN_ARGS through.
#
# Layout for the defaults:
#   root namespace:  bridge rmtrain-br0 10.213.7.1/24 (mpirun runs here; the remote daemons call back to it)
#                    veth rmtrain-v1 <-> eth0 10.213.7.11/24 in namespace rmtrain-node1, hostname rmtrain-node1
#                    veth rmtrain-v2 <-> eth0 10.213.7.12/24 in namespace rmtrain-node2, hostname rmtrain-node2
# No physical interface is on the bridge, the namespaces have no default route and the root namespace
# does not forward, so nothing sent on the bed can leave the machine.
set -euo pipefail
ME=netns-bed.sh
REPO=$(cd "$(dirname "$0")/.." && pwd)
NAME=${BED_NAME:-rmtrain}
NODES=${BED_NODES:-2}
SUBNET=${BED_SUBNET:-10.213.7}
DIR=${BED_DIR:-/tmp/$NAME-netns-bed}
SLOTS_PER_NODE=${BED_SLOTS:-1}
BR=$NAME-br0
CIDR=$SUBNET.0/24
RATE=${BED_RATE:-}
[ -z "$RATE" ] || [[ "$RATE" =~ ^([1-9][0-9]{0,5}kbit|[1-9][0-9]{0,2}mbit|1000mbit|1gbit)$ ]] ||
  { echo "$ME: error: BED_RATE must be 1kbit..1gbit, like 100mbit or 1gbit, got '$RATE' (at 10gbit the 10 ms burst tbf needs is refused here and no rank reached the other)" >&2; exit 2; }
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "$ME: error: BED_NODES must be 1..9, got '$NODES'" >&2; exit 2; }
[[ "$SUBNET" =~ ^10\.[0-9]{1,3}\.[0-9]{1,3}$|^192\.168\.[0-9]{1,3}$ ]] ||
  { echo "$ME: error: BED_SUBNET must be the first three numbers of a private /24 (10.x.y or 192.168.x), got '$SUBNET'" >&2; exit 2; }
[ ${#BR} -le 15 ] || { echo "$ME: error: BED_NAME '$NAME' too long for interface names (at most 11 characters)" >&2; exit 2; }

node()  { echo "$NAME-node$1"; }          # namespace name = host name in the hostfile = hostname inside
veth()  { echo "$NAME-v$1"; }             # root-side end of node k's veth pair (the other end is eth0 inside)
addr()  { echo "$SUBNET.1$1"; }

die() {
  echo "$ME: ERROR: $*" >&2
  exit 1
}

# ------------------------------------------------------------------------------------------------ down
down() {
  local k ns pids pid removed=()
  # the launcher (mpirun) of a run that crashed, by the pid `run` recorded, if it is still that process
  pid=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$DIR/hostfile"; then
    # hostfile.sh runs mpirun as its child (it turns TERM into a checkpoint request): end both.
    local kids; kids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)
    # shellcheck disable=SC2086
    kill -TERM $kids "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      local alive=0 p
      for p in "$pid" $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" -eq 0 ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    for p in "$pid" $kids; do kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }; done
    removed+=("launcher (hostfile.sh $pid, mpirun ${kids:-gone})")
  fi
  for k in $(seq 1 9); do
    ns=$(node "$k")
    # the root-side end first: deleting it deletes its peer inside the namespace too
    if ip link show "$(veth "$k")" >/dev/null 2>&1; then
      ip link del "$(veth "$k")" 2>/dev/null && removed+=("veth $(veth "$k")")
    fi
    if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
      # processes still inside (a crashed run): ask, then insist, by pid
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      if [ -n "$pids" ]; then
        kill -TERM $pids 2>/dev/null || true
        sleep 1
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && { kill -KILL $pids 2>/dev/null || true; sleep 0.2; }
      fi
      ip netns del "$ns" && removed+=("namespace $ns")
    fi
  done
  if ip link show "$BR" >/dev/null 2>&1; then
    ip link del "$BR" && removed+=("bridge $BR")
  fi
  if [ -d "$DIR" ]; then rm -rf "$DIR" && removed+=("$DIR"); fi
  if [ ${#removed[@]} -gt 0 ]; then
    echo "$ME: down: removed ${removed[*]}"
  else
    echo "$ME: down: nothing to remove"
  fi
}

# ------------------------------------------------------------------------------------------------ up
need() { command -v "$1" >/dev/null || die "'$1' not found: install Debian's $2 (launch/setup.sh does)"; }

up() {
  need ip iproute2; need unshare util-linux; need hostname hostname
  if [ "$(id -u)" -ne 0 ]; then
    die "cannot create network namespaces as uid $(id -u): the bed needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Run as root (CI does), or with sudo."
  fi
  down >/dev/null 2>&1 || true           # leftovers of a crashed run
  mkdir -p "$DIR"

  local err k ns
  err=$(mktemp)
  try() { "$@" 2>"$err" || { local m; m=$(cat "$err"); rm -f "$err"; down >/dev/null 2>&1 || true; die "'$*' failed: ${m:-no message}. Cannot build the namespace bed (need root with CAP_SYS_ADMIN and CAP_NET_ADMIN, and a kernel with network namespaces, veth and bridge)."; }; }

  try ip link add "$BR" type bridge
  try ip addr add "$SUBNET.1/24" dev "$BR"
  [ -w "/proc/sys/net/ipv6/conf/$BR/disable_ipv6" ] && echo 1 > "/proc/sys/net/ipv6/conf/$BR/disable_ipv6" 2>/dev/null || true
  try ip link set "$BR" up
  for k in $(seq 1 "$NODES"); do
    ns=$(node "$k")
    try ip netns add "$ns"
    try ip link add "$(veth "$k")" type veth peer name "$NAME-p$k"
    try ip link set "$NAME-p$k" netns "$ns"
    try ip -n "$ns" link set "$NAME-p$k" name eth0
    try ip -n "$ns" addr add "$(addr "$k")/24" dev eth0
    try ip -n "$ns" link set lo up
    try ip -n "$ns" link set eth0 up
    try ip link set "$(veth "$k")" master "$BR"
    [ -w "/proc/sys/net/ipv6/conf/$(veth "$k")/disable_ipv6" ] && echo 1 > "/proc/sys/net/ipv6/conf/$(veth "$k")/disable_ipv6" 2>/dev/null || true
    try ip link set "$(veth "$k")" up
    if [ -n "$RATE" ]; then
      # the burst is 10 ms at the rate (at least 32 kbit): tbf needs rate/HZ, and a smaller one caps lower
      local burst; burst=$(awk -v r="$RATE" 'BEGIN { n = r + 0; u = r; sub(/^[0-9]+/, "", u);
        m = (u == "gbit") ? 1e9 : (u == "mbit") ? 1e6 : 1e3; b = n * m / 100; if (b < 32000) b = 32000; printf "%dkbit", b / 1000 }')
      try tc qdisc add dev "$(veth "$k")" root tbf rate "$RATE" burst "$burst" latency 400ms
      try ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$RATE" burst "$burst" latency 400ms
    fi
  done
  # the UTS namespace trick must work too, or every "host" would carry the machine's name
  try ip netns exec "$(node 1)" unshare --uts sh -c "hostname $(node 1)"
  rm -f "$err"

  write_agent
  : > "$DIR/hostfile"
  { echo "# generated by launch/netns-bed.sh: one line per network-namespace \"host\""
    for k in $(seq 1 "$NODES"); do echo "$(node "$k") slots=$SLOTS_PER_NODE"; done; } > "$DIR/hostfile"
  local threads=$(( $(nproc) / (NODES * SLOTS_PER_NODE) )); [ $threads -ge 1 ] || threads=1
  cat > "$DIR/env" <<EOF
# source this, then: launch/hostfile.sh $DIR/hostfile [rmtrain train args]
export IFACE=$CIDR
export BIND_TO=none
export OPENBLAS_NUM_THREADS=\${OPENBLAS_NUM_THREADS:-$threads}
export MPIRUN_ARGS="--mca plm_rsh_agent $DIR/agent --mca plm_rsh_no_tree_spawn 1 \${MPIRUN_ARGS:-}"
EOF
  # wait until the links are up (carrier on both ends)
  for k in $(seq 1 "$NODES"); do
    for _ in $(seq 1 50); do
      [ "$(cat "/sys/class/net/$(veth "$k")/operstate" 2>/dev/null)" = up ] && break
      sleep 0.1
    done
  done
  [ -z "$RATE" ] || echo "$ME: up: every node's link limited to $RATE each way (tc tbf)"
  echo "$ME: up: bridge $BR $SUBNET.1/24; $(for k in $(seq 1 "$NODES"); do printf '%s %s  ' "$(node "$k")" "$(addr "$k")"; done)"
  echo "$ME: up: hostfile $DIR/hostfile, agent $DIR/agent, environment $DIR/env"
}

write_agent() {
  local k
  {
    echo '#!/bin/sh'
    echo '# Open MPI launch agent for the netns bed (--mca plm_rsh_agent), called like ssh: AGENT [options] HOST COMMAND...'
    echo '# Maps HOST to its network namespace and runs COMMAND through sh -c there, in a UTS namespace named HOST.'
    echo 'while [ $# -gt 0 ]; do case "$1" in -l|-p|-o|-i|-F) shift 2 ;; -*) shift ;; *) break ;; esac; done'
    echo 'host=${1:?usage: agent HOST COMMAND...}; shift'
    echo 'case "$host" in'
    for k in $(seq 1 "$NODES"); do echo "  $(node "$k")|$(addr "$k")) ns=$(node "$k") ;;"; done
    echo "  *) echo \"netns-bed agent: unknown host '\$host' (this bed has $(for k in $(seq 1 "$NODES"); do printf '%s ' "$(node "$k")"; done| sed 's/ $//'))\" >&2; exit 255 ;;"
    echo 'esac'
    echo "echo \"\$(date +%H:%M:%S) host=\$host ns=\$ns: \$*\" >> $DIR/agent.log"
    echo 'exec ip netns exec "$ns" unshare --uts sh -c '"'"'hostname "$1" && shift && exec sh -c "$*"'"'"' netns-agent "$ns" "$@"'
  } > "$DIR/agent"
  chmod 755 "$DIR/agent"
}

status() {
  echo "namespaces: $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NAME-node[0-9]$" | tr '\n' ' ')"
  echo "links:      $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^($BR|$NAME-v[0-9])$" | tr '\n' ' ')"
  echo "folder:     $( [ -d "$DIR" ] && echo "$DIR" || echo none)"
}

# bytes each node sent and received through its veth (counted on the root side: rx there = sent by the node)
traffic() {
  local k v
  for k in $(seq 1 "$NODES"); do
    v=$(veth "$k")
    echo "$ME: traffic: $(node "$k") sent $(cat "/sys/class/net/$v/statistics/rx_bytes") bytes, received $(cat "/sys/class/net/$v/statistics/tx_bytes") bytes"
  done
}

# one bed at a time on this machine: up, down and a whole run each hold this lock (a second one waits)
lock() {
  exec 9>"/tmp/$NAME-netns-bed.lock"
  command -v flock >/dev/null || return 0
  flock -w 900 9 || die "another netns bed command still holds /tmp/$NAME-netns-bed.lock after 900 s"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up|down|run) [ "$(id -u)" -eq 0 ] && lock ;;
esac
case "$cmd" in
  up) up; echo "$ME: up: try:  . $DIR/env && launch/hostfile.sh $DIR/hostfile --max-steps 10" ;;
  down) down ;;
  status) status ;;
  exec)
    [ $# -ge 1 ] || die "usage: $ME exec NODE -- COMMAND..."
    n=$1; shift; [ "${1:-}" = -- ] && shift
    [ -x "$DIR/agent" ] || die "the bed is not up ($ME up)"
    exec "$DIR/agent" "$n" "$@" ;;
  run)
    [ "${1:-}" = -- ] && shift
    trap 'down' EXIT
    trap 'exit 130' INT TERM
    up
    # shellcheck disable=SC1091
    . "$DIR/env"
    rc=0
    bash "$REPO/launch/hostfile.sh" "$DIR/hostfile" "$@" 9>&- &
    echo $! > "$DIR/launcher.pid"       # hostfile.sh and its mpirun child: `down` ends both if we crash
    wait $! || rc=$?
    traffic
    sed "s/^/$ME: agent: /" "$DIR/agent.log" 2>/dev/null | cut -c1-150 || true
    exit $rc ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $ME run [--] [rmtrain train args] | up | down | status | exec NODE -- CMD (see --help)" >&2; exit 2 ;;
esac
