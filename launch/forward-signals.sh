# Sourced by launch/local.sh and launch/hostfile.sh: run_forwarding CMD... runs the mpirun command in the
# background and turns SIGTERM, SIGINT and SIGUSR1 sent to this script into SIGUSR1 for mpirun, which
# forwards it to every rank: the ranks agree at their next step, write a checkpoint and exit 75.
# Why: mpirun passes SIGTERM on to the ranks but kills them about a second later (Open MPI's
# odls_base_sigkill_timeout), so a run whose step takes longer lost everything since its last checkpoint.
# A second TERM or INT while the ranks save is passed on as TERM (mpirun then ends the job at once).
run_forwarding() {
  local child asked=0 rc
  forward() {
    if [ "$asked" -eq 0 ]; then
      asked=1
      echo "$(basename "$0"): $1 received: asking the ranks to checkpoint and stop (exit 75); send it again to kill" >&2
      kill -USR1 "$child" 2>/dev/null
    else
      kill -TERM "$child" 2>/dev/null
    fi
  }
  trap 'forward TERM' TERM
  trap 'forward INT' INT
  trap 'forward USR1' USR1
  "$@" &
  child=$!
  while true; do
    wait "$child" && rc=0 || rc=$?
    # wait returns early (> 128) when a trapped signal arrives: wait again until mpirun itself ends.
    if [ $rc -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
    break
  done
  trap - TERM INT USR1
  return $rc
}
