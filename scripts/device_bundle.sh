#!/usr/bin/env bash
# Pack what `scripts/device_spec.sh` needs on another x86-64 Linux machine that has none of the
# Debian libraries (the lent 16-core machine of results/spec_device/): a single-process tsdp
# binary with every shared library it loads (and the loader, so the target's glibc does not
# matter), slim copies of the base and the drafter (scripts/slim_ckpt.py), and the dataset.
# Usage: scripts/device_bundle.sh BASE.h5 DRAFTER.h5[+LATE.h5] DATA.h5 [DIR]   (default DIR .dev, < 64 MB
# for the U-Net base of the README)
set -euo pipefail
base=$1 drafter=$2 data=$3 dir=${4:-.dev}
make -s BUILD=build-dev MPI=0 build-dev/tsdp
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib"
cp build-dev/tsdp "$tmp/"
ldd build-dev/tsdp | awk '/=>/{print $3} /ld-linux/{print $1}' | xargs -I{} cp -L {} "$tmp/lib/"
(cd "$tmp" && tar -cf - .) | xz -6 -T1 > "$dir/bund.tar.xz"
/usr/bin/python3 "$(dirname "$0")/slim_ckpt.py" "$base" "$dir/base.h5"
# DRAFTER may be MAIN.h5+LATE.h5 (a main drafter and its late-step specialist), MAIN.h5+x0[@LO-HI],
# x0+LATE.h5 or x0
if [ "${drafter%%+*}" = x0 ]; then
  if [ "$drafter" != x0 ]; then /usr/bin/python3 "$(dirname "$0")/slim_ckpt.py" "${drafter#*+}" "$dir/late.h5"; fi
  if [ "$drafter" = x0 ]; then echo "x0" > "$dir/drafter_arg"; else echo "x0+late.h5" > "$dir/drafter_arg"; fi
else
/usr/bin/python3 "$(dirname "$0")/slim_ckpt.py" "${drafter%%+*}" "$dir/drafter.h5"
if [ "${drafter#*+}" != "$drafter" ] && [ "${drafter#*+x0}" != "$drafter" ]; then
  echo "drafter.h5+${drafter#*+}" > "$dir/drafter_arg"   # MAIN.h5+x0[@LO-HI]: nothing more to pack
elif [ "${drafter#*+}" != "$drafter" ]; then
  /usr/bin/python3 "$(dirname "$0")/slim_ckpt.py" "${drafter#*+}" "$dir/late.h5"
  echo "drafter.h5+late.h5" > "$dir/drafter_arg"
else
  echo "drafter.h5" > "$dir/drafter_arg"
fi
fi
cp "$data" "$dir/pusht.h5"
# XZ=1: compress the base and the data too (the Transformer base: 36 MB -> 33 MB)
if [ "${XZ:-0}" = 1 ]; then xz -6 -T1 -f "$dir/base.h5" "$dir/pusht.h5"; fi
cp "$(dirname "$0")/device_spec.sh" "$dir/run.sh"
du -sh "$dir"
