#!/usr/bin/env bash
# Upgrades the default image under QEMU + OVMF (TCG) with one persistent EFI variable store and
# one disk across five QEMU runs, through a hostile channel and a power loss. Each delivery is a
# tar (update-manifest.json, its signature, update-img.tar.zst) on its own virtio disk; the image's
# init offers them to icos-upgrade in turn (vdb, vdc, ...), and the console names each refusal.
#  1. slot A (version N): refused before writing a byte: a manifest signed by another key, a
#     replay (version N again), a downgrade (a signed older version), metadata claiming a member
#     bigger than the stream has. From the host, on the disk QEMU left: slot B's two partitions
#     hash as before, the ESP holds the same entries (no .efi.partial either).
#  2. slot A: refused after writing (the check needs the bytes): one flipped byte, a truncated
#     package, a signed root hash the members do not make; then the genuine N+1, and QEMU is killed
#     once icos-upgrade announced its write, before it reported it done (power loss mid-write).
#  3. slot A boots again (its entry is still the default), the same N+1 applies into slot B,
#     reboot; systemd-boot tries the new entry (renaming +3 to +2-1), the initramfs maps slot B
#     through dm-verity, the init marks it good, and the same update offered again is refused as a
#     replay.
#  4. slot B: N+2 with one flipped byte is refused, no reboot (A's old entry went before the write
#     began: slot A is no longer bootable, B stays the default); no .efi.partial is left.
#  5. slot B: N+2 applies into slot A, reboot into A, mark good.
# One test rather than two: runs 1-3 leave the node exactly where a plain A -> B upgrade does, so
# the happy path continues from there (two boots fewer than starting it afresh).
# Arguments: the default image's release directory, version N+1's, version N+2's, the directory
# holding the signed manifests (icos_test_signed targets), the time limit per run in seconds.
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
old=$PWD/$1 new=$PWD/$2 newer=$PWD/$3 signed=$PWD/$4
limit=${5:-600}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
log=$tmp/serial.log
fail() { echo "FAIL: $*"; show_console "$log" 120; exit 1; }
source "$here/upgrade_lib.sh"

n=$(field "$old" version) n1=$(field "$new" version) n2=$(field "$newer" version)
a=$(field "$old" root_hash) b=$(field "$new" root_hash) c=$(field "$newer" root_hash)
cmp "$signed/v2_signed/update-manifest.json" "$new/update-manifest.json" || fail "v2_signed signed another manifest"
cmp "$signed/v3_signed/update-manifest.json" "$newer/update-manifest.json" || fail "v3_signed signed another manifest"
pkg=$new/update-img.tar.zst
delivery "$pkg" "$signed/other_key_signed" "$tmp/other-key.tar"
delivery "$old/update-img.tar.zst" "$signed/replay_signed" "$tmp/replay.tar"
delivery "$pkg" "$signed/downgrade_signed" "$tmp/downgrade.tar"
delivery "$pkg" "$signed/bigger_signed" "$tmp/bigger.tar"
delivery "$pkg" "$signed/v2_signed" "$tmp/flipped.tar" flip
delivery "$pkg" "$signed/v2_signed" "$tmp/truncated.tar" truncate
delivery "$pkg" "$signed/wrong_root_hash_signed" "$tmp/wrong-root-hash.tar"
delivery "$pkg" "$signed/v2_signed" "$tmp/v$n1.tar"
delivery "$newer/update-img.tar.zst" "$signed/v3_signed" "$tmp/v$n2-flipped.tar" flip
delivery "$newer/update-img.tar.zst" "$signed/v3_signed" "$tmp/v$n2.tar"
tar --zstd -xf "$old/disk-img.tar.zst" -C "$tmp"
disk=$tmp/disk.img
vars=$tmp/vars.fd
cp "$ovmf_vars" "$vars"
disks() { local t; for t in "$@"; do printf -- '-drive\0file=%s,format=raw,if=virtio,readonly=on\0' "$tmp/$t.tar"; done; }
# run N DELIVERY...: one QEMU run with the deliveries attached, its console kept as runN.log.
run() {
  local number=$1 start=$SECONDS extra
  shift
  mapfile -d '' extra < <(disks "$@")
  boot_disk "$disk" "$log" "$limit" "$vars" "${extra[@]}" || true
  echo "run $number took $((SECONDS - start)) s"
  cp "$log" "$tmp/run$number.log"
}
booted_a=("root_a (vda3) verified by root_a_verity (vda4), root hash $a" "ICOS-VERSION icos $n" "ICOS-BOOT-OK")
booted_b=("root_b (vda5) verified by root_b_verity (vda6), root hash $b" "ICOS-VERSION icos $n1" "ICOS-BOOT-OK")
refusal="ICOS-UPGRADE icos-upgrade: error:"

echo "--- 1: refused before writing"
before=$(slot_sums "$disk" root_b root_b_verity)
entries=$(esp_entries "$disk")
run 1 other-key replay downgrade bigger
in_order "${booted_a[@]}" \
  "ICOS-UPGRADE-FROM /dev/vdb" \
  "$refusal the update manifest's signature does not verify, nothing was written: signature update-manifest.json.minisig was made by key ID" \
  "wrong key" \
  "ICOS-UPGRADE-FROM /dev/vdc" \
  "$refusal refused, nothing was written: replay: version $n is the version this node runs" \
  "ICOS-UPGRADE-FROM /dev/vdd" \
  "$refusal refused, nothing was written: downgrade: version 0 is older than the running version $n" \
  "ICOS-UPGRADE-FROM /dev/vde" \
  "$refusal update package (standard input): member root.img holds" "refusing it before writing"
! grep -aq "ICOS-UPGRADE-REBOOT" "$log" || fail "an update was accepted"
after=$(slot_sums "$disk" root_b root_b_verity)
[[ "$after" == "$before" ]] || fail "slot B was written: before: $before; after: $after"
[[ "$(esp_entries "$disk")" == "$entries" ]] || fail "the ESP's entries were $entries, now $(esp_entries "$disk")"
echo "slot B unchanged: $(echo $after)"

echo "--- 2: refused after writing, then a power loss mid-write"
start=$SECONDS
mapfile -d '' extra < <(disks flipped truncated wrong-root-hash "v$n1")
boot_disk "$disk" "$log" "$limit" "$vars" -pidfile "$tmp/qemu.pid" "${extra[@]}" &
qemu_job=$!
# The fourth write announced is the genuine update's (the three before are refused after theirs).
writes() { local c; c=$(grep -ac "checked; writing it to root_b" "$log" 2>/dev/null) || true; echo "${c:-0}"; }
while (($(writes) < 4)); do
  kill -0 "$qemu_job" 2>/dev/null || fail "QEMU ended before the genuine update was written"
  ((SECONDS - start < limit)) || fail "no write of the genuine update within $limit s"
  sleep 0.2
done
sleep 0.5
kill -KILL "$(cat "$tmp/qemu.pid")"
wait "$qemu_job" || true
echo "run 2 took $((SECONDS - start)) s, killed"
cp "$log" "$tmp/run2.log"
in_order "${booted_a[@]}" \
  "ICOS-UPGRADE-FROM /dev/vdb" "$refusal update package (standard input): " \
  "ICOS-UPGRADE-FROM /dev/vdc" "$refusal update package (standard input): " "truncated" \
  "ICOS-UPGRADE-FROM /dev/vdd" \
  "$refusal the written slot root_b (/dev/vda5) + root_b_verity does not verify against the signed root hash, the boot entry is unchanged" \
  "ICOS-UPGRADE-FROM /dev/vde" "icos-upgrade: version $n1 checked; writing it to root_b + root_b_verity"
! grep -aq "version $n1 written to" "$log" || fail "QEMU was killed after the write, not during it"
grep -a "$refusal" "$log"
case "$(esp_entries "$disk")" in
  *"icos_$n1+"*) fail "an entry for $n1 is on the ESP: $(esp_entries "$disk")" ;;
  *"icos_$n.efi "*) echo "ESP after the power loss: $(esp_entries "$disk")" ;;
  *) fail "the running entry is gone: $(esp_entries "$disk")" ;;
esac

echo "--- 3: the old slot boots, the same update again: A ($n) -> B ($n1)"
run 3 "v$n1"
in_order "${booted_a[@]}" \
  "ICOS-UPGRADE icos-upgrade: version $n was good already (icos_$n.efi)" \
  "ICOS-UPGRADE icos-upgrade: version $n1 written to root_b + root_b_verity and verified; next boot: icos_$n1+3.efi (3 tries)" \
  "ICOS-UPGRADE-REBOOT" \
  "${booted_b[0]}" "${booted_b[1]}" "ICOS-ROOT /dev/mapper/root ext4 ro" "ICOS-VERITY status root: 0" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n1 marked good: icos_$n1+2-1.efi -> icos_$n1.efi" \
  "$refusal refused, nothing was written: replay: version $n1 is the version this node runs"
! grep -aq "Failed to rename" "$log" || fail "systemd-boot could not count the boot"
[[ "$(esp_entries "$disk")" == "icos_$n.efi icos_$n1.efi " ]] || fail "the ESP's entries are: $(esp_entries "$disk")"

echo "--- 4: a package with one flipped byte"
run 4 "v$n2-flipped"
in_order "${booted_b[@]}" "$refusal update package (standard input): "
! grep -aq "ICOS-UPGRADE-REBOOT" "$log" || fail "the tampered package was accepted"
grep -a "$refusal" "$log"
# The failed apply took its partial UKI away again; A's entry went before the write began.
[[ "$(esp_entries "$disk")" == "icos_$n1.efi " ]] || fail "the ESP's entries are: $(esp_entries "$disk")"

echo "--- 5: B ($n1) -> A ($n2)"
run 5 "v$n2"
in_order "${booted_b[@]}" \
  "ICOS-UPGRADE icos-upgrade: version $n2 written to root_a + root_a_verity and verified; next boot: icos_$n2+3.efi (3 tries)" \
  "ICOS-UPGRADE-REBOOT" \
  "root_a (vda3) verified by root_a_verity (vda4), root hash $c" \
  "ICOS-VERSION icos $n2" "ICOS-BOOT-OK" \
  "ICOS-UPGRADE icos-upgrade: version $n2 marked good: icos_$n2+2-1.efi -> icos_$n2.efi" \
  "$refusal refused, nothing was written: replay: version $n2 is the version this node runs"

entries=$(esp_entries "$disk")
[[ "$entries" == "icos_$n1.efi icos_$n2.efi " ]] || fail "the ESP's entries are: $entries"
echo "PASS: 7 hostile deliveries refused (4 before writing, slot B unchanged); a write cut by power loss left A the default; A ($n) -> B ($n1) -> A ($n2) with boot counting and mark-good; replays and a tampered package refused; ESP: $entries"
