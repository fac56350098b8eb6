#!/usr/bin/env bash
# Install the Debian packages tsdp needs to build, test and run. Idempotent: only missing
# packages are installed, so running it twice is cheap. Pass --dev to also install the Python
# tools that regenerate committed test fixtures (python3-torch, python3-numpy, python3-h5py), and
# --mpi for OpenMPI (libopenmpi-dev, openmpi-bin: multi-rank training, core/dist.h).
set -euo pipefail
pkgs=(build-essential pkg-config libopenblas-dev libhdf5-dev zlib1g-dev check
      libchipmunk-dev libblosc-dev libinih-dev libgif-dev libstb-dev libcairo2-dev
      fonts-dejavu-core clang libclang-rt-dev)
for a in "$@"; do
  case "$a" in
    --dev) pkgs+=(python3-torch python3-numpy python3-h5py) ;;
    --mpi) pkgs+=(libopenmpi-dev openmpi-bin) ;;
    *) echo "deps.sh: unknown option '$a' (--dev, --mpi)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
