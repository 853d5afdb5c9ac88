#!/usr/bin/env bash
# Boots the default image's disk under QEMU (software emulation; no KVM here) with OVMF UEFI
# firmware and asserts that the image's init prints its marker on the serial console.
# Arguments: the package holding the release, the marker, the time limit in seconds.
set -euo pipefail
export PATH=/usr/sbin:/sbin:/usr/bin:/bin
release=$PWD/$1
marker=$2
limit=${3:-300}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
firmware=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
for need in qemu-system-x86_64 "$firmware" "$vars"; do
  command -v "$need" >/dev/null 2>&1 || [[ -f "$need" ]] ||
    { echo "FAIL: $need missing: apt-get install qemu-system-x86 ovmf (scripts/setup.sh does)"; exit 1; }
done

tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
cp "$vars" "$tmp/vars.fd"
log=$tmp/serial.log
start=$SECONDS
set +e
timeout "$limit" qemu-system-x86_64 -accel tcg -machine q35 -m 512 -smp 1 -nographic -no-reboot \
  -drive if=pflash,format=raw,unit=0,readonly=on,file="$firmware" \
  -drive if=pflash,format=raw,unit=1,file="$tmp/vars.fd" \
  -drive file="$tmp/disk.img",format=raw,if=virtio,snapshot=on \
  -serial file:"$log" -monitor none -display none </dev/null >"$tmp/qemu.out" 2>&1
status=$?
set -e
elapsed=$((SECONDS - start))
if grep -aq -- "$marker" "$log"; then
  echo "PASS: booted to the image's init in ${elapsed} s (QEMU exit $status):"
  grep -a -- "$marker" "$log"
  exit 0
fi
echo "FAIL: no '$marker' on the serial console after ${elapsed} s (QEMU exit $status, limit $limit s)."
echo "--- serial console:"
cat -v "$log" | tail -n 80
echo "--- qemu:"
cat "$tmp/qemu.out"
exit 1
