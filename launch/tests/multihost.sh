#!/usr/bin/env bash
# Multi-node launch tests: launch/hostfile.sh (the command it prints, slots, errors), a 2-rank run on
# hostfiles/localhost, and the network-namespace bed (launch/netns-bed.sh): two "hosts" with their own
# names and addresses, one rank each, all-reduce over TCP through the bed's bridge, identical parameters
# at the end, nothing left behind. The bed needs root: without it the bed tests FAIL with a loud message
# (CI runs as root), they are never skipped. Prints 'multihost: N passed, M failed'.
set -uo pipefail
cd "$(dirname "$0")/../.."
RMTRAIN=${RMTRAIN:?set RMTRAIN to the rmtrain binary}
WORK=$(mktemp -d /tmp/rmtrain-multihost.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
# the command hostfile.sh printed, one word per line
printed() { sed -n 's/^hostfile.sh: running: //p' "$1" | head -n 1; }
has() { printed "$1" | grep -qF -- "$2"; }

HF=launch/hostfile.sh
BED=launch/netns-bed.sh
SUBNET=10.213.7
Q=(--train-limit 512 --val-limit 128 --batch-size 16 --epochs 1 --max-steps 10 --quiet --save-all-ranks)

# --- hostfile.sh: clear errors
out=$(bash $HF "$WORK/missing" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "error: hostfile $WORK/missing does not exist" <<< "$out"; then ok "missing hostfile: exit $rc, '$out'"
else fail "missing hostfile" "rc=$rc $out"; fi
printf 'nodeA\nnodeB slots=2\n' > "$WORK/noslots"
out=$(bash $HF "$WORK/noslots" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "line 1: host nodeA has no slots=N" <<< "$out"; then ok "host without slots: exit $rc, names the line"
else fail "host without slots" "rc=$rc $out"; fi
printf '# nothing\n\n' > "$WORK/empty"
out=$(bash $HF "$WORK/empty" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "lists no hosts" <<< "$out"; then ok "empty hostfile: exit $rc"
else fail "empty hostfile" "rc=$rc $out"; fi

printf 'nodeA slots=2\nnodeB slots=1\nnodeA slots=1  # again\n' > "$WORK/repeated"
out=$(RMTRAIN=$RMTRAIN bash $HF --dry-run "$WORK/repeated" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(wc -l <<< "$out")" -eq 1 ] \
   && grep -q "line 3: host nodeA is already on line 1 .*write it on one line, with slots=3" <<< "$out"; then
  ok "host on two lines: refused, naming both lines and slots=3"
else fail "host on two lines" "rc=$rc $out"; fi

# --- hostfile.sh: the command (dry run): np = total slots, btl, interfaces, NP override, root flag
RMTRAIN=$RMTRAIN bash $HF --dry-run hostfiles/two-nodes --epochs 1 > "$WORK/dry1" 2>&1
if has "$WORK/dry1" "--hostfile $PWD/hostfiles/two-nodes -np 4 " && has "$WORK/dry1" "--mca btl tcp,vader,self" &&
   has "$WORK/dry1" "-x OPENBLAS_NUM_THREADS=" && has "$WORK/dry1" "$RMTRAIN train --epochs 1" &&
   { [ "$(id -u)" -ne 0 ] || has "$WORK/dry1" "--allow-run-as-root"; }; then
  ok "two-node example: -np 4 (2+2 slots), btl tcp,vader,self"
else fail "two-node dry run" "$(cat "$WORK/dry1")"; fi
NP=3 MPIRUN_ARGS="--mca plm_rsh_agent /bin/false" RMTRAIN=$RMTRAIN bash $HF --dry-run --iface $SUBNET.0/24 "$WORK/noslots" > "$WORK/dry2" 2>&1
if has "$WORK/dry2" "-np 3 " && has "$WORK/dry2" "--oversubscribe" &&
   has "$WORK/dry2" "--mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24" &&
   has "$WORK/dry2" "--mca plm_rsh_agent /bin/false"; then
  ok "--iface maps to btl_tcp_if_include and oob_tcp_if_include; NP overrides; MPIRUN_ARGS passed"
else fail "iface/NP/MPIRUN_ARGS dry run" "$(cat "$WORK/dry2")"; fi

# --- a real 2-rank run through hostfiles/localhost
if RMTRAIN=$RMTRAIN timeout 300 bash $HF hostfiles/localhost "${Q[@]}" --out "$WORK/local" > "$WORK/local.log" 2>&1 &&
   grep -q '"world_size": 2' "$WORK/local/metrics.jsonl" &&
   "$RMTRAIN" diff "$WORK/local/final.rank0.safetensors" "$WORK/local/final.rank1.safetensors" > /dev/null; then
  ok "hostfiles/localhost: 2 ranks, parameters bit-identical"
else fail "hostfiles/localhost run" "$(tail -n 6 "$WORK/local.log")"; fi

# --- the bed refuses loudly without privileges (never skips)
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups bash $BED up 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "ERROR: cannot create network namespaces" <<< "$out"; then ok "bed as an unprivileged user: exit $rc, loud error"
  else fail "bed without privileges" "rc=$rc $out"; fi
  out=$(setpriv --inh-caps=-all --bounding-set=-all bash $BED up 2>&1); rc=$?
  left=$(bash $BED status | grep -c "rmtrain-")
  if [ $rc -ne 0 ] && grep -q "ERROR: 'ip link add rmtrain-br0 type bridge' failed" <<< "$out" && [ "$left" -eq 0 ]; then
    ok "bed as root without capabilities: exit $rc, loud error, nothing left"
  else fail "bed without capabilities" "rc=$rc left=$left $out"; fi
fi

bed_gone() { ! ip netns list 2>/dev/null | grep -q "^rmtrain-node" && ! ip link show rmtrain-br0 > /dev/null 2>&1 &&
             ! ip link show rmtrain-v1 > /dev/null 2>&1 && [ ! -d /tmp/rmtrain-netns-bed ]; }

if [ "$(id -u)" -ne 0 ]; then
  echo "multihost: ##########################################################################" >&2
  echo "multihost: the network-namespace bed needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): NOT TESTED" >&2
  echo "multihost: ##########################################################################" >&2
  fail "namespace bed" "cannot create network namespaces as uid $(id -u); run the tests as root"
else
  # --- up over leftovers, then down: idempotent cleanup
  if bash $BED up > "$WORK/up.log" 2>&1 && bash $BED up >> "$WORK/up.log" 2>&1 &&
     [ "$(ip netns list | grep -c '^rmtrain-node')" -eq 2 ] && bash $BED down > "$WORK/down.log" 2>&1 && bed_gone &&
     bash $BED down 2>&1 | grep -q "nothing to remove"; then
    ok "bed: up twice (leftovers removed), down removes everything, a second down is a no-op"
  else fail "bed up/down" "$(cat "$WORK/up.log" "$WORK/down.log" 2>/dev/null | tail -n 6)"; fi

  # --- a run that crashes (SIGKILL of the bed script mid-training) leaves mpirun, daemons and ranks behind:
  #     `down` ends them (by pid) and removes the bed
  ( RMTRAIN=$RMTRAIN exec bash $BED run -- --train-limit 20000 --val-limit 64 --epochs 3 --quiet --out "$WORK/crash" \
      > "$WORK/crash.log" 2>&1 ) &
  crash_pid=$!
  for _ in $(seq 1 150); do
    [ "$(pgrep -f -- "--out $WORK/crash" | wc -l)" -ge 3 ] && grep -q "^rmtrain: resnet20" "$WORK/crash.log" && break
    sleep 0.2
  done
  kill -9 $crash_pid; wait $crash_pid 2>/dev/null
  before=$(pgrep -f -- "--out $WORK/crash" | wc -l)     # left behind: mpirun and the 2 ranks
  bash $BED down > "$WORK/crash-down.log" 2>&1
  sleep 1
  after=$(pgrep -f -- "--out $WORK/crash" | wc -l)
  if [ "$before" -ge 3 ] && [ "$after" -eq 0 ] && bed_gone; then
    ok "crashed run: down ended the $before processes left behind (mpirun, 2 ranks) and removed the bed"
  else
    fail "cleanup after a crashed run" "$before processes before, $after after; $(cat "$WORK/crash-down.log")"
    for p in $(pgrep -f -- "--out $WORK/crash"); do kill -9 "$p" 2>/dev/null; done
  fi

  # --- the two-namespace hostfile run: one rank per "host", all-reduce over TCP on the bridge
  # A wrapper records where each rank runs (hostname, network namespace, address), then becomes rmtrain.
  cat > "$WORK/where" <<EOF
#!/bin/sh
echo "rank=\${OMPI_COMM_WORLD_RANK:-?} host=\$(hostname) net=\$(readlink /proc/self/ns/net) addr=\$(ip -4 -o addr show eth0 2>/dev/null | awk '{print \$4}')" >> $WORK/ranks.log
exec $RMTRAIN "\$@"
EOF
  chmod 755 "$WORK/where"
  RMTRAIN="$WORK/where" timeout 600 bash $BED run -- "${Q[@]}" --out "$WORK/bed" > "$WORK/bed.log" 2>&1
  rc=$?
  echo "---- bed run (exit $rc):"; sed 's/^/    /' "$WORK/bed.log"; echo "----"
  if [ $rc -eq 0 ] && bed_gone; then
    ok "bed run exited 0 and the bed is gone afterwards"
  else
    echo "multihost: ####################################################################" >&2
    echo "multihost: THE NETWORK-NAMESPACE BED RUN FAILED (exit $rc): see the log above" >&2
    echo "multihost: ####################################################################" >&2
    fail "bed run" "exit $rc, bed removed: $(bed_gone && echo yes || echo NO)"
  fi
  if has "$WORK/bed.log" "-np 2 " && has "$WORK/bed.log" "--bind-to none" && has "$WORK/bed.log" "--mca btl tcp,self " &&
     has "$WORK/bed.log" "--mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24" &&
     has "$WORK/bed.log" "--mca plm_rsh_agent "; then
    ok "bed command: hostfile.sh, -np 2, btl tcp,self on $SUBNET.0/24, rsh agent, --bind-to none"
  else fail "bed command" "$(printed "$WORK/bed.log")"; fi
  # each rank in its own "host"
  r0=$(grep '^rank=0 ' "$WORK/ranks.log" 2>/dev/null); r1=$(grep '^rank=1 ' "$WORK/ranks.log" 2>/dev/null)
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< "$2"; }
  mine=$(readlink /proc/self/ns/net)
  if [ -n "$r0" ] && [ -n "$r1" ] && [ "$(field host "$r0")" = rmtrain-node1 ] && [ "$(field host "$r1")" = rmtrain-node2 ] &&
     [ "$(field net "$r0")" != "$(field net "$r1")" ] && [ "$(field net "$r0")" != "$mine" ] && [ "$(field net "$r1")" != "$mine" ] &&
     [ "$(field addr "$r0")" = "$SUBNET.11/24" ] && [ "$(field addr "$r1")" = "$SUBNET.12/24" ]; then
    ok "one rank per host: rank 0 on rmtrain-node1 ($(field net "$r0"), $SUBNET.11), rank 1 on rmtrain-node2 ($(field net "$r1"), $SUBNET.12)"
  else fail "ranks in their own namespaces" "$(cat "$WORK/ranks.log" 2>/dev/null) (test runs in $mine)"; fi
  # the all-reduce went through the bridge: ResNet-20 has 272,186 parameters (1.09 MB), 10 steps
  sent1=$(sed -n 's/.*traffic: rmtrain-node1 sent \([0-9]*\) bytes.*/\1/p' "$WORK/bed.log")
  sent2=$(sed -n 's/.*traffic: rmtrain-node2 sent \([0-9]*\) bytes.*/\1/p' "$WORK/bed.log")
  if [ -n "$sent1" ] && [ -n "$sent2" ] && [ "$sent1" -gt 5000000 ] && [ "$sent2" -gt 5000000 ] &&
     grep -q '"world_size": 2' "$WORK/bed/metrics.jsonl" 2>/dev/null; then
    ok "all-reduce over TCP: world_size 2, node1 sent $sent1 B and node2 sent $sent2 B through the bridge (> 5 MB each)"
  else fail "all-reduce over TCP" "sent $sent1 / $sent2 bytes; $(head -c 300 "$WORK/bed/metrics.jsonl" 2>/dev/null)"; fi
  if msg=$("$RMTRAIN" diff "$WORK/bed/final.rank0.safetensors" "$WORK/bed/final.rank1.safetensors" 2>&1); then
    ok "parameters bit-identical on both hosts ($msg)"
  else fail "identical parameters across hosts" "$msg"; fi
fi

# --- BED_RATE: each node's link limited both ways (tc tbf), refused past what tbf takes here; down removes it all
if [ "$(id -u)" -eq 0 ]; then
  out=$(BED_RATE=10gbit bash $BED up 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q "BED_RATE must be 1kbit..1gbit" <<< "$out" && ok "BED_RATE=10gbit refused in one line" \
    || fail "BED_RATE=10gbit" "rc=$rc $out"
  if BED_RATE=100mbit bash $BED up > "$WORK/rate.log" 2>&1 &&
     tc qdisc show dev rmtrain-v1 | grep -q "tbf .*rate 100Mbit" &&
     bash $BED exec rmtrain-node2 -- tc qdisc show dev eth0 | grep -q "tbf .*rate 100Mbit"; then
    ok "BED_RATE=100mbit: tbf at 100Mbit on both ends of each link"
  else fail "BED_RATE=100mbit" "$(cat "$WORK/rate.log"; tc qdisc show dev rmtrain-v1 2>&1)"; fi
  bash $BED down > /dev/null 2>&1
  bed_gone && ok "rate-limited bed removed" || fail "rate-limited bed removal" "$(bash $BED status)"
fi

echo "multihost: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
