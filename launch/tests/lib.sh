# Shared by the integration test scripts: source it after setting NAME (the work folder's prefix).
# Gives RMTRAIN (checked), WORK (a fresh folder, removed on exit with any rmtrain left running in it),
# ok/fail counters and `finish NAME` (prints 'NAME: N passed, M failed', exits non-zero on failures),
# and MPIRUN (mpirun with --oversubscribe, and --allow-run-as-root when root).
RMTRAIN=${RMTRAIN:?set RMTRAIN to the rmtrain binary}
WORK=$(mktemp -d "/tmp/rmtrain-${NAME:-test}.XXXXXX")
trap 'pkill -9 -f "^$RMTRAIN .*$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
finish() { echo "$1: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
MPIRUN=(mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)

# expect_error NAME PATTERN ARGS... : rmtrain must exit non-zero with exactly one stderr line
# matching PATTERN, and no stack trace.
expect_error() {
  local name=$1 pattern=$2; shift 2
  local err="$WORK/err.txt"
  if "$RMTRAIN" "$@" >/dev/null 2>"$err"; then fail "$name" "exit code 0"; return; fi
  local lines; lines=$(wc -l < "$err")
  if [ "$lines" -ne 1 ]; then fail "$name" "expected one stderr line, got $lines: $(head -c 400 "$err")"; return; fi
  if ! grep -qE -- "$pattern" "$err"; then fail "$name" "message '$(cat "$err")' lacks /$pattern/"; return; fi
  ok "$name"
}

# wait_catching PID SIGNUM : wait (≤ 10 s) until process PID catches signal SIGNUM (its bit in SigCgt of
# /proc/PID/status). A test that signals a process "at start" must wait for this: before main() installs
# the handler the kernel's default action ends the process (exit 128+N, nothing done yet, nothing lost), and
# under CI load the dynamic loader alone can take longer than any fixed sleep.
wait_catching() {
  local pid=$1 sig=$2 mask i
  for i in $(seq 1000); do
    mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [ -n "$mask" ] && (( (16#$mask >> (sig - 1)) & 1 )) && return 0
    sleep 0.01
  done
  return 1
}

# cifar_folder DIR N CLASS... : an image folder DIR/{train,test}/CLASS/ holding copies of the first N CIFAR-10
# images of each class (from ../shared/data beside the repository; never copied into it)
CIFAR10="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/data/cifar10"
cifar_folder() {
  local dir=$1 n=$2 split cls; shift 2
  for split in train test; do
    for cls in "$@"; do
      mkdir -p "$dir/$split/$cls"
      ls "$CIFAR10/$split/$cls" | head -n "$n" | while read -r f; do cp "$CIFAR10/$split/$cls/$f" "$dir/$split/$cls/"; done
    done
  done
}

# cifar_link DIR SRC N CLASS... : DIR/CLASS/ holding symlinks to the first N CIFAR-10 images of SRC/CLASS (SRC: train
# or test; ../shared/data stays read-only and nothing is copied)
cifar_link() {
  local dir=$1 src=$2 n=$3 cls f; shift 3
  for cls in "$@"; do
    mkdir -p "$dir/$cls"
    ls "$CIFAR10/$src/$cls" | head -n "$n" | while read -r f; do ln -s "$CIFAR10/$src/$cls/$f" "$dir/$cls/$f"; done
  done
}

# cifar_subset DIR TRAIN VAL : an image folder DIR/{train,val}/{airplane,automobile} of symlinks to the first
# TRAIN training and VAL test images of those two CIFAR-10 classes.
cifar_subset() {
  cifar_link "$1/train" train "$2" airplane automobile
  cifar_link "$1/val" test "$3" airplane automobile
}
