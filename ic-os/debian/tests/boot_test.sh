#!/usr/bin/env bash
# Boots the Debian image's disk under QEMU + OVMF (TCG) and asserts that systemd, started by the
# initramfs on the dm-verity root, reached multi-user.target, that the unit of the user's docker
# build layer printed its marker, and that the root stayed read-only while /var (the data partition)
# and /tmp (tmpfs) took the writes. QEMU is stopped as soon as every line is there.
# Arguments: the directory holding the release, the time limit in seconds.
set -euo pipefail
source "$1"
release=$PWD/$2
limit=${3:-900}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
log=$tmp/serial.log
fail() { echo "FAIL: $*"; show_console "$log" 80; exit 1; }

tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
: >"$log"
start=$SECONDS
boot_disk "$tmp/disk.img" "$log" "$limit" "" -no-reboot &
qemu=$!
# The console lines every boot must show, as extended regular expressions.
want=(
  'Reached target .*Multi-User System'
  'ICOS-DEBIAN-MARKER icos-debian'
  'ICOS-ROOT /dev/mapper/root ext4 ro'
  'ICOS-ROOT-READONLY'
  'ICOS-VAR /dev/vda7 ext4 rw'
  'ICOS-TMP tmpfs tmpfs rw'
  'ICOS-VAR-WRITE ok'
)
all_seen() {
  local w
  for w in "${want[@]}"; do grep -aqE "$w" "$log" || return 1; done
}
while kill -0 "$qemu" 2>/dev/null && ! all_seen; do sleep 2; done
elapsed=$((SECONDS - start))
kill "$qemu" 2>/dev/null || true
wait "$qemu" 2>/dev/null || true
# The whole console, for a look after the fact (bazel-testlogs/…/test.outputs/).
[[ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ]] && cp "$log" "$TEST_UNDECLARED_OUTPUTS_DIR/serial.log"
for w in "${want[@]}"; do
  grep -aqE "$w" "$log" || fail "no console line matching '$w' after $elapsed s"
done
grep -aqE 'icos-veritysetup: /dev/mapper/root = root_a \(vda3\) verified by root_a_verity \(vda4\)' "$log" ||
  fail "the initramfs did not map slot A through dm-verity"
if grep -aqE '\[FAILED\]' "$log"; then
  fail "a unit failed: $(grep -aE '\[FAILED\]' "$log" | head -5)"
fi
echo "PASS: the Debian image reached multi-user.target on its verified read-only root in $elapsed s:"
# Without systemd's colours and the console's carriage returns.
grep -aE 'Reached target .*Multi-User|ICOS-|icos-veritysetup' "$log" | sed 's/\x1b\[[0-9;]*m//g; s/\r//g'
