#!/usr/bin/env bash
# Upgrades the default image under QEMU + OVMF (TCG) with one persistent EFI variable store and
# one disk across three QEMU runs; the update arrives on a second virtio disk (a tar of
# update-manifest.json, its signature and update-img.tar.zst), which the image's init hands to
# icos-upgrade:
#  1. boot slot A (version N), apply N+1 into slot B, reboot; systemd-boot tries the new entry
#     (renaming +3 to +2-1), the initramfs maps slot B through dm-verity, the init marks it good,
#     and the same update offered again is refused as a replay;
#  2. boot B, a package with one flipped byte is refused, no reboot (A's old entry went before the
#     write began: slot A is no longer bootable, B stays the default);
#     the failed apply leaves no .efi.partial on the ESP;
#  3. boot B, apply N+2 into slot A, reboot into A, mark good.
# Arguments: the default image's release directory; version N+1's, and the directory with its
# manifest signed by the test release key; the same for N+2; the time limit per run in seconds.
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
old=$PWD/$1 new=$PWD/$2 signed=$PWD/$3 newer=$PWD/$4 signed2=$PWD/$5
limit=${6:-600}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
log=$tmp/serial.log
fail() { echo "FAIL: $*"; show_console "$log" 120; exit 1; }
source "$here/upgrade_lib.sh"

run() {
  local update=$1 start=$SECONDS
  boot_disk "$tmp/disk.img" "$log" "$limit" "$vars" \
    -drive file="$update",format=raw,if=virtio,readonly=on || true
  echo "run took $((SECONDS - start)) s"
  cp "$log" "$tmp/$(basename "$update").log"
}

n=$(field "$old" version) n1=$(field "$new" version) n2=$(field "$newer" version)
a=$(field "$old" root_hash) b=$(field "$new" root_hash) c=$(field "$newer" root_hash)
cmp "$signed/update-manifest.json" "$new/update-manifest.json" || fail "$signed signed another manifest"
cmp "$signed2/update-manifest.json" "$newer/update-manifest.json" || fail "$signed2 signed another manifest"
delivery "$new/update-img.tar.zst" "$signed" "$tmp/v$n1.tar"
delivery "$newer/update-img.tar.zst" "$signed2" "$tmp/v$n2-flipped.tar" flip
delivery "$newer/update-img.tar.zst" "$signed2" "$tmp/v$n2.tar"
tar --zstd -xf "$old/disk-img.tar.zst" -C "$tmp"
vars=$tmp/vars.fd
cp "$ovmf_vars" "$vars"

echo "--- 1: A ($n) -> B ($n1)"
run "$tmp/v$n1.tar"
in_order \
  "root_a (vda3) verified by root_a_verity (vda4), root hash $a" \
  "ICOS-VERSION icos $n" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n was good already (icos_$n.efi)" \
  "ICOS-UPGRADE icos-upgrade: version $n1 written to root_b + root_b_verity and verified; next boot: icos_$n1+3.efi (3 tries)" \
  "ICOS-UPGRADE-REBOOT" \
  "root_b (vda5) verified by root_b_verity (vda6), root hash $b" \
  "ICOS-VERSION icos $n1" "ICOS-ROOT /dev/mapper/root ext4 ro" "ICOS-VERITY status root: 0" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n1 marked good: icos_$n1+2-1.efi -> icos_$n1.efi" \
  "ICOS-UPGRADE icos-upgrade: error: refused, nothing was written: replay: version $n1 is the version this node runs"
! grep -aq "Failed to rename" "$log" || fail "systemd-boot could not count the boot"

echo "--- 2: a package with one flipped byte"
run "$tmp/v$n2-flipped.tar"
in_order \
  "root_b (vda5) verified by root_b_verity (vda6), root hash $b" \
  "ICOS-VERSION icos $n1" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: error: update package (standard input): "
! grep -aq "ICOS-UPGRADE-REBOOT" "$log" || fail "the tampered package was accepted"
grep -a "ICOS-UPGRADE icos-upgrade: error" "$log"
# The failed apply took its partial UKI away again; A's entry went before the write began.
[[ "$(esp_entries "$tmp/disk.img")" == "icos_$n1.efi " ]] || fail "the ESP's entries are: $(esp_entries "$tmp/disk.img")"

echo "--- 3: B ($n1) -> A ($n2)"
run "$tmp/v$n2.tar"
in_order \
  "root_b (vda5) verified by root_b_verity (vda6), root hash $b" \
  "ICOS-VERSION icos $n1" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n2 written to root_a + root_a_verity and verified; next boot: icos_$n2+3.efi (3 tries)" \
  "ICOS-UPGRADE-REBOOT" \
  "root_a (vda3) verified by root_a_verity (vda4), root hash $c" \
  "ICOS-VERSION icos $n2" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n2 marked good: icos_$n2+2-1.efi -> icos_$n2.efi" \
  "ICOS-UPGRADE icos-upgrade: error: refused, nothing was written: replay: version $n2 is the version this node runs"

entries=$(esp_entries "$tmp/disk.img")
[[ "$entries" == "icos_$n1.efi icos_$n2.efi " ]] || fail "the ESP's entries are: $entries"
echo "PASS: A ($n) -> B ($n1) -> A ($n2) with boot counting and mark-good; replays and a tampered package refused; ESP: $entries"
