#!/usr/bin/env bash
# A new slot that never boots falls back to the old one by itself, under QEMU + OVMF (TCG) with a
# persistent EFI variable store. The update (//ic-os:image_unbootable, version N+1) passes every
# check of icos-upgrade, but its initramfs lacks the dm-verity driver, so it cannot map its root
# and reboots (boot/init's fail()). Two runs:
#  1. slot A (version N) applies it: icos_N+1+3.efi; QEMU stops at the reboot (-no-reboot);
#  2. no delivery: systemd-boot tries the new entry three times (+3 -> +2-1 -> +1-2 -> +0-3), each
#     boot refused by the initramfs; with no tries left the entry sorts last, slot A boots again
#     and its entry, still good, stays the default.
# Arguments: the default image's release directory, the unbootable one's, the directory with its
# manifest signed by the test release key, the time limit per run in seconds.
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
old=$PWD/$1 new=$PWD/$2 signed=$PWD/$3
limit=${4:-300}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
log=$tmp/serial.log
fail() { echo "FAIL: $*"; show_console "$log" 120; exit 1; }
source "$here/upgrade_lib.sh"

n=$(field "$old" version) n1=$(field "$new" version) a=$(field "$old" root_hash)
cmp "$signed/update-manifest.json" "$new/update-manifest.json" || fail "$signed signed another manifest"
delivery "$new/update-img.tar.zst" "$signed" "$tmp/unbootable.tar"
tar --zstd -xf "$old/disk-img.tar.zst" -C "$tmp"
disk=$tmp/disk.img
vars=$tmp/vars.fd
cp "$ovmf_vars" "$vars"
booted_a=("root_a (vda3) verified by root_a_verity (vda4), root hash $a" "ICOS-VERSION icos $n" "ICOS-BOOT-OK")

echo "--- 1: A ($n) applies the unbootable $n1"
start=$SECONDS
boot_disk "$disk" "$log" "$limit" "$vars" -no-reboot \
  -drive file="$tmp/unbootable.tar",format=raw,if=virtio,readonly=on || true
echo "run 1 took $((SECONDS - start)) s"
cp "$log" "$tmp/run1.log"
in_order "${booted_a[@]}" \
  "ICOS-UPGRADE icos-upgrade: version $n1 written to root_b + root_b_verity and verified; next boot: icos_$n1+3.efi (3 tries)" \
  "ICOS-UPGRADE-REBOOT"
[[ "$(esp_entries "$disk")" == "icos_$n.efi icos_$n1+3.efi " ]] || fail "the ESP's entries are: $(esp_entries "$disk")"

echo "--- 2: three tries of $n1, then A by itself"
refused="initramfs: cannot map a verified root: refusing to boot"
start=$SECONDS
boot_disk "$disk" "$log" "$limit" "$vars" || true
echo "run 2 took $((SECONDS - start)) s"
in_order "$refused" "$refused" "$refused" "${booted_a[@]}" \
  "ICOS-UPGRADE icos-upgrade: version $n was good already (icos_$n.efi)"
tries=$(grep -ac "$refused" "$log") || true
[[ "$tries" == 3 ]] || fail "the new slot was tried $tries times, not 3"
# The new entry has no tries left (+0-3: systemd-boot sorts it last), A's is still the good default.
[[ "$(esp_entries "$disk")" == "icos_$n.efi icos_$n1+0-3.efi " ]] || fail "the ESP's entries are: $(esp_entries "$disk")"
echo "PASS: the unbootable slot was tried 3 times (icos_$n1+3 -> +0-3), then slot A ($n) booted by itself and stays the default"
