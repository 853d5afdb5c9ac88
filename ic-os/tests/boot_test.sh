#!/usr/bin/env bash
# Boots the default image's disk under QEMU + OVMF (TCG) and asserts that it booted the verified
# way: systemd-boot started the UKI, the initramfs mapped slot A through dm-verity with the root hash
# of the build manifest, the root is that read-only mapping, and the image's init read every file
# and printed its marker.
# With "plain", it boots an unverified image instead and checks it mounted the partition "root".
# Arguments: the directory holding the release, the time limit in seconds, [plain].
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
release=$PWD/$1
limit=${2:-300}
mode=${3:-verified}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*"; show_console "$tmp/serial.log"; exit 1; }

if [[ "$mode" == plain ]]; then
  tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
  boot_disk "$tmp/disk.img" "$tmp/serial.log" "$limit" "" -no-reboot || true
  grep -aq "ICOS-BOOT-OK" "$tmp/serial.log" || fail "no ICOS-BOOT-OK marker"
  grep -aq "ICOS-ROOT /dev/vda2 ext4 ro" "$tmp/serial.log" || fail "the plain image did not mount partition 2 (root) read-only"
  echo "PASS: the plain image booted its unverified root:"
  grep -a "ICOS-" "$tmp/serial.log"
  exit 0
fi

root_hash=$(python3 -c '
import json, sys
parts = {p["name"]: p for p in json.load(open(sys.argv[1]))["disk"]["partitions"]}
print(parts["root_a_verity"]["filesystem"]["root_hash"])' "$release/build-manifest.json")
tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
start=$SECONDS
boot_disk "$tmp/disk.img" "$tmp/serial.log" "$limit" "" -no-reboot || true
log=$tmp/serial.log
grep -aq "ICOS-BOOT-OK" "$log" || fail "no ICOS-BOOT-OK marker after $((SECONDS - start)) s"
grep -aq "ICOS-ROOT /dev/mapper/root ext4 ro" "$log" || fail "the root is not /dev/mapper/root, read-only"
grep -aq "ICOS-DM dm-0 name=root" "$log" || fail "no device-mapper device named root"
grep -aqE "ICOS-VERITY table root: 0 [0-9]+ verity 1 .* sha256 $root_hash " "$log" ||
  fail "the live dm-verity table does not carry the manifest's root hash $root_hash"
grep -aqE "ICOS-VERITY status root: 0 [0-9]+ verity V" "$log" || fail "dm-verity's status is not V (verified)"
grep -aq "root_a (vda3) verified by root_a_verity (vda4)" "$log" || fail "the initramfs did not name slot A"
grep -aq "ICOS-VAR /dev/vda7 rw on /var/lib/icos" "$log" || fail "the data partition var is not mounted writable"
echo "PASS: booted the verified root in $((SECONDS - start)) s:"
grep -a "ICOS-\|icos-veritysetup" "$log"
