#!/usr/bin/env bash
# dm-verity and the UKI refuse tampered bytes, on copies of the default image's disk:
#  1. one flipped byte in a data block of /etc/motd in root slot A: the kernel reports the verity
#     corruption when the init reads the file, and the success marker does not appear;
#  2. one flipped byte of the root hash in the UKI's .cmdline: no slot belongs to that root hash,
#     so the initramfs refuses to boot before any root is mounted.
# Arguments: the package holding the release, the time limit in seconds per boot.
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
release=$PWD/$1
limit=${2:-300}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*"; show_console "$2"; exit 1; }

tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
disk=$tmp/disk.img
sfdisk --dump "$disk" >"$tmp/layout"
part_start() { sed -n "s/.*start= *\([0-9]*\).*name=\"$1\".*/\1/p" "$tmp/layout"; }
part_size() { sed -n "s/.*size= *\([0-9]*\).*name=\"$1\".*/\1/p" "$tmp/layout"; }

# 1. A data block of /etc/motd: its first block in the ext4 image, located with debugfs.
root_start=$(part_start root_a)
dd if="$disk" of="$tmp/root.ext4" bs=512 skip="$root_start" count="$(part_size root_a)" status=none
block=$(debugfs -R "bmap /etc/motd 0" "$tmp/root.ext4" 2>/dev/null)
[[ "$block" =~ ^[0-9]+$ ]] || { echo "FAIL: debugfs cannot map /etc/motd: $block"; exit 1; }
cp --sparse=always "$disk" "$tmp/data-tampered.img"
python3 - "$tmp/data-tampered.img" $((root_start * 512 + block * 4096 + 3)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x01]))
PY
log=$tmp/data.log
boot_disk "$tmp/data-tampered.img" "$log" "$limit" "" -no-reboot || true
grep -aqE "device-mapper: verity: .*data block [0-9]+ is corrupted" "$log" || fail "no verity corruption report for a flipped data byte" "$log"
! grep -aq "ICOS-BOOT-OK" "$log" || fail "the success marker appeared although /etc/motd's block was flipped" "$log"
echo "PASS: a flipped byte in /etc/motd (block $block of root_a): $(grep -a -m1 -o 'device-mapper: verity: .*corrupted' "$log")"

# 2. The root hash in the UKI's .cmdline, found in the ESP's bytes (the cmdline section is small
#    and contiguous); one hex digit changes.
root_hash=$(python3 -c '
import json, sys
parts = {p["name"]: p for p in json.load(open(sys.argv[1]))["disk"]["partitions"]}
print(parts["root_a_verity"]["filesystem"]["root_hash"])' "$release/build-manifest.json")
esp_start=$(part_start esp)
cp --sparse=always "$disk" "$tmp/cmdline-tampered.img"
python3 - "$tmp/cmdline-tampered.img" $((esp_start * 512)) "roothash=$root_hash" <<'PY'
import sys
path, esp, needle = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with open(path, "r+b") as f:
    f.seek(esp); data = f.read(64 << 20)
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        sys.exit("FAIL: the ESP holds the root hash not exactly once")
    digit = at + len(b"roothash=")
    f.seek(esp + digit); f.write(b"0" if data[digit:digit + 1] != b"0" else b"1")
PY
log=$tmp/cmdline.log
boot_disk "$tmp/cmdline-tampered.img" "$log" "$limit" "" -no-reboot || true
grep -aq "no partition pair X / X_verity belongs to root hash" "$log" || fail "the initramfs did not refuse the wrong root hash" "$log"
grep -aq "initramfs: cannot map a verified root: refusing to boot" "$log" || fail "the initramfs went on" "$log"
! grep -aq "ICOS-VERSION\|ICOS-BOOT-OK" "$log" || fail "the image's init ran with a tampered root hash" "$log"
echo "PASS: a flipped root hash digit in the UKI's .cmdline stops the boot in the initramfs:"
grep -a "icos-veritysetup\|initramfs:" "$log"
