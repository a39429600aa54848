#!/usr/bin/env bash
# The test command: install what is missing, build, run the unit tests (swift test), then the
# integration tests that run the rmtrain binary (and, later, mpirun) for real.
set -euo pipefail
cd "$(dirname "$0")/.."

bash launch/setup.sh

echo "== Package.swift's edges against the imports"
swift launch/checks/package_edges.swift

echo "== swift test"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift test --skip-build 2>&1 | tee /tmp/rmtrain-swift-test.log | grep -vE "^Test Case .* (started|passed)" || true
# Every suite prints "Executed N tests, with K failures": any K > 0, or no such line at all, fails.
tests_passed() { grep -qE "Executed [0-9]+ tests?" "$1" && ! grep -qE "with [1-9][0-9]* failures?" "$1"; }
if ! tests_passed /tmp/rmtrain-swift-test.log; then
  echo "swift test failed" >&2
  exit 1
fi

# Numerics on the kernel sets other CPUs pick (issue #22): OpenBLAS's Prescott (its fallback, e.g. on CPUs it does
# not know), Haswell (AVX2) and SkylakeX (AVX-512, also what Zen 4 and Cooper Lake run), and oneDNN capped at AVX2
# (a CPU without AVX-512). Each sums in its own order, so every layer, golden and replay test must hold on all of
# them, whatever this machine picks by itself. The other suites do not depend on the vector ISA.
NUMERICS="ConvBackendTests|LayerGradientTests|GoldenTests|LayerContractTests|ReplayTests"
for kernels in "OPENBLAS_CORETYPE=Prescott" "OPENBLAS_CORETYPE=SkylakeX" "OPENBLAS_CORETYPE=Haswell DNNL_MAX_CPU_ISA=AVX2"; do
  echo "== swift test, numerics with $kernels"
  log=/tmp/rmtrain-swift-test-${kernels%% *}.log
  env $kernels swift test --skip-build --filter "$NUMERICS" 2>&1 | tee "$log" | grep -E "error|Executed .* tests" | tail -3 || true
  if ! tests_passed "$log"; then
    echo "swift test ($kernels) failed" >&2
    exit 1
  fi
done

echo "== integration tests (release build)"
swift build -c release --product rmtrain 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
status=0
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/bad-input.sh || status=1
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/integration.sh || status=1
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/eval.sh || status=1
echo "== distributed tests (mpirun)"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/mpi.sh || status=1
echo "== checkpoint tests"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/checkpoint.sh || status=1
echo "== precision tests (bf16-mixed)"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/precision.sh || status=1
echo "== run folder tests"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/runfolder.sh || status=1
echo "== multi-host tests (launch/hostfile.sh, two network namespaces as hosts; needs root)"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/multihost.sh || status=1
echo "== SLURM test (a one-node cluster on this machine; needs root)"
RMTRAIN="$PWD/.build/release/rmtrain" bash launch/tests/slurm.sh || status=1
exit $status
