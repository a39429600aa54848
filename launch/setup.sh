#!/usr/bin/env bash
# Installs every Debian package rmtrain needs to build, run and test, and nothing else.
# Idempotent: packages already present are not touched, so a second run costs a dpkg query.
set -euo pipefail

PACKAGES=(
  # build: C libraries reached through SwiftPM system-library targets
  libopenmpi-dev openmpi-bin          # MPI (mpi.h via pkg-config ompi-c, mpirun)
  libopenblas-dev                     # cblas_sgemm
  libzstd-dev                         # checkpoint compression
  libturbojpeg0-dev                   # JPEG decode for image folders
  zlib1g-dev                          # .gz data files, PNG writer
  libpng-dev                          # PNG images in image folders (libpng decodes them)
  libdnnl-dev                         # oneDNN 2.6: convolution kernels (the library PyTorch's CPU convolutions use)
  pkg-config
  # data: the embedded default data set (Fashion-MNIST, IDX .gz files)
  dataset-fashion-mnist
  # tests: pngfix (libpng's own decoder) checks the PNGs we write
  libpng-tools
  # launch test beds: SLURM on localhost, and network namespaces as "hosts"
  slurmctld slurmd slurm-client munge
  iproute2 procps                     # ip netns; pgrep/pkill in the tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
