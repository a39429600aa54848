# Sourced by launch/local.sh and launch/hostfile.sh: run_forwarding CMD... runs the mpirun command in the
# background and turns SIGTERM, SIGINT, SIGHUP and SIGUSR1 sent to this script into SIGUSR1 for mpirun, which
# forwards it to every rank: the ranks agree at their next step, write a checkpoint and exit 75.
# Why: mpirun passes SIGTERM and SIGINT on to the ranks but kills them about a second later (Open MPI's
# odls_base_sigkill_timeout), so a run whose step takes longer lost everything since its last checkpoint.
# Ctrl-C in a terminal sends SIGINT to the whole foreground process group, mpirun included: mpirun therefore
# runs in a session of its own (setsid; the ranks are in process groups of their own already), so the INT
# reaches this script alone. The terminal's hangup (SIGHUP) is forwarded the same way.
# A second TERM or INT while the ranks save is passed on as TERM (mpirun then ends the job at once).
# mpirun reports the ranks' exit 75 as an aborted job: those banners are left out, and one line says plainly
# that the run checkpointed.
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
  trap 'forward HUP' HUP
  trap 'forward USR1' USR1
  # mpirun's stderr goes through the banner filter, a background job of this shell (so that it can be
  # waited for) reading a FIFO. A background child of a shell without job control is not a process-group
  # leader, so setsid execs mpirun in place (no fork): $! is mpirun. stdin: mpirun would read the terminal
  # for rank 0; the ranks read none.
  local tmp filter
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/rmtrain-launch.XXXXXX")
  mkfifo "$tmp/stderr"
  mpirun_banner_filter "$tmp/banners" < "$tmp/stderr" >&2 &
  filter=$!
  setsid "$@" < /dev/null 2> "$tmp/stderr" &
  child=$!
  while true; do
    wait "$child" && rc=0 || rc=$?
    # wait returns early (> 128) when a trapped signal arrives: wait again until mpirun itself ends.
    if [ $rc -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
    break
  done
  trap - TERM INT HUP USR1
  wait "$filter" || true
  if [ $rc -eq 75 ]; then
    echo "$(basename "$0"): the ranks wrote a checkpoint and stopped (exit 75); to continue, run the same command with --resume auto" >&2
  else
    cat "$tmp/banners" >&2
  fi
  rm -rf "$tmp"
  return $rc
}

# Copies mpirun's stderr, holding back the banners Open MPI prints when a rank exits with a non-zero code
# ("Primary job terminated normally, but 1 process returned a non-zero exit code…", "mpirun detected that
# one or more processes exited with non-zero status…": blocks between lines of 74 dashes) into the file $1;
# run_forwarding prints them unless the exit code was 75, the checkpoint exit. Every other line passes at
# once. It ignores the signals meant for the run, so a Ctrl-C does not close mpirun's stderr under it.
mpirun_banner_filter() {
  trap '' INT TERM HUP USR1
  exec awk -v held="$1" '
    BEGIN { dashes = sprintf("%74s", ""); gsub(/ /, "-", dashes) }
    $0 == dashes {
      if (!inblock) { inblock = 1; block = $0 "\n"; n = 1; next }
      inblock = 0; block = block $0 "\n"
      if (block ~ /Primary job +terminated normally|exited with non-zero status/) kept = kept block
      else { printf "%s", block; fflush() }
      next
    }
    inblock {
      block = block $0 "\n"
      if (++n > 40) { printf "%s", block; fflush(); inblock = 0 }     # not a banner after all
      next
    }
    { print; fflush() }
    END { if (inblock) printf "%s", block; printf "%s", kept > held }
  '
}
