#!/usr/bin/env bash
# Install the Debian packages tsdp needs to build, test and run. Idempotent: only missing
# packages are installed, so running it twice is cheap. Pass --dev to also install the Python
# tools that regenerate committed test fixtures (python3-torch, python3-numpy, python3-h5py).
set -euo pipefail
pkgs=(build-essential pkg-config libopenblas-dev libhdf5-dev zlib1g-dev check
      libchipmunk-dev libblosc-dev libinih-dev libgif-dev libstb-dev
      clang libclang-rt-dev)
if [ "${1:-}" = "--dev" ]; then pkgs+=(python3-torch python3-numpy python3-h5py); fi
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
