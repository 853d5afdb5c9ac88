#!/usr/bin/env bash
# Benchmark (not a test): icos-uki on the pinned systemd-stub with a stand-in kernel and a large
# random initramfs, against the floor (cat of the inputs into one file + sync + sha256sum).
# Reports wall time, CPU time and peak RSS (/usr/bin/time -f '%e %U %M'); peak RSS must stay flat
# whatever INITRD_MIB is (the large sections are streamed).
#
#   scripts/bench-uki.sh                  # 256 MiB initramfs
#   INITRD_MIB=32 scripts/bench-uki.sh    # a quick run
#   KEEP=1 scripts/bench-uki.sh           # keep the work directory
set -euo pipefail
cd "$(dirname "$0")/.."

INITRD_MIB=${INITRD_MIB:-256}
STUB_VERSION=252.39-1~deb12u2
STUB_DEB_SHA256=8f2b81bdcfafc466882a0cae460272dbf10d8d97c6a3c1c6ea33038c155a2f5e

[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing python3: apt-get install python3" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-uki.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

echo "== building icos-uki (release)" >&2
(cd rs && cargo build --release --quiet -p icos-tools --bin icos-uki)
bin=$PWD/rs/target/release/icos-uki

echo "== the pinned stub (systemd-boot-efi $STUB_VERSION)" >&2
deb=/var/cache/apt/archives/systemd-boot-efi_${STUB_VERSION}_amd64.deb
if ! echo "$STUB_DEB_SHA256  $deb" | sha256sum -c --status 2>/dev/null; then
  (cd "$work" && apt-get download -q "systemd-boot-efi=$STUB_VERSION" >/dev/null)
  deb=$work/systemd-boot-efi_${STUB_VERSION}_amd64.deb
  echo "$STUB_DEB_SHA256  $deb" | sha256sum -c --quiet
fi
dpkg-deb -x "$deb" "$work/pkg"
stub=$work/pkg/usr/lib/systemd/boot/efi/linuxx64.efi.stub

echo "== inputs: a 10 MiB stand-in kernel, a ${INITRD_MIB} MiB random initramfs" >&2
python3 - "$work/vmlinuz" <<'PY'
import os, struct, sys
k = bytearray(os.urandom(10 << 20))
k[0:2] = b"MZ"; k[0x3c:0x40] = struct.pack("<I", 0x80)
k[0x80:0x84] = b"PE\0\0"; k[0x84:0x88] = struct.pack("<HH", 0x8664, 1)
k[0x94:0x96] = struct.pack("<H", 112); k[0x98:0x9a] = struct.pack("<H", 0x20b)
k[0x98 + 44:0x98 + 46] = struct.pack("<H", 1)                 # MajorImageVersion: EFI stub 1.0
k[0x1fe:0x200] = b"\x55\xaa"; k[0x202:0x206] = b"HdrS"
k[0x206:0x208] = struct.pack("<H", 0x20f); k[0x238:0x23c] = struct.pack("<I", 2047)
open(sys.argv[1], "wb").write(k)
PY
head -c $((INITRD_MIB << 20)) /dev/urandom >"$work/initrd.img"
printf 'ID=icos\nVERSION_ID=1\n' >"$work/os-release"

measure() { /usr/bin/time -f "%e %U %M" -o "$work/time" "$@" >/dev/null 2>&1; read -r wall cpu rss <"$work/time"; }
measure "$bin" --stub "$stub" --linux "$work/vmlinuz" --initrd "$work/initrd.img" --osrel "$work/os-release" \
  --cmdline "console=ttyS0 ro" --out "$work/icos.efi"
printf '%-28s %8s s wall %8s s cpu %8s KiB peak RSS\n' "icos-uki" "$wall" "$cpu" "$rss"
measure sh -c "cat '$stub' '$work/vmlinuz' '$work/initrd.img' >'$work/floor.bin' && sync '$work/floor.bin' && sha256sum '$work/floor.bin'"
printf '%-28s %8s s wall %8s s cpu %8s KiB peak RSS\n' "floor: cat + sync + sha256sum" "$wall" "$cpu" "$rss"
echo "UKI: $(stat -c %s "$work/icos.efi") bytes" >&2
