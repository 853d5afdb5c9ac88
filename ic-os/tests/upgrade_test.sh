#!/usr/bin/env bash
# Upgrades the default image under QEMU + OVMF (TCG), in one QEMU run with a persistent EFI
# variable store: boot slot A (version N), the image's init finds the update on a second virtio
# disk (a tar of update-manifest.json, its signature and update-img.tar.zst) and icos-upgrade
# writes version N+1 into slot B, reboot, systemd-boot tries the new entry, the initramfs maps
# slot B through dm-verity, the init marks it good, refuses the same update again (replay) and
# powers off.
# Arguments: the default image's release directory, version N+1's, the directory with N+1's
# update-manifest.json and its signature (by the test release key), the time limit in seconds.
set -euo pipefail
here=$(dirname "$0")
source "$here/qemu.sh"
old=$PWD/$1 new=$PWD/$2 signed=$PWD/$3
limit=${4:-900}
tmp=${TEST_TMPDIR:-$(mktemp -d)}
log=$tmp/serial.log
fail() { echo "FAIL: $*"; show_console "$log" 120; exit 1; }
root_hash() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["root_hash"])' "$1/update-manifest.json"
}
version() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$1/update-manifest.json"
}

# What a mirror serves: the package, the manifest and its signature, here on a second disk.
mkdir -p "$tmp/update"
cp "$signed/update-manifest.json" "$signed/update-manifest.json.minisig" "$new/update-img.tar.zst" "$tmp/update/"
cmp "$signed/update-manifest.json" "$new/update-manifest.json" || fail "the signed manifest is not version N+1's"
tar -cf "$tmp/update.tar" -C "$tmp/update" update-manifest.json update-manifest.json.minisig update-img.tar.zst

tar --zstd -xf "$old/disk-img.tar.zst" -C "$tmp"
vars=$tmp/vars.fd
cp "$ovmf_vars" "$vars"
start=$SECONDS
boot_disk "$tmp/disk.img" "$log" "$limit" "$vars" \
  -drive file="$tmp/update.tar",format=raw,if=virtio,readonly=on || true
took=$((SECONDS - start))

n=$(version "$old") n1=$(version "$new")
a=$(root_hash "$old") b=$(root_hash "$new")
# The console, in order: boot A, upgrade, reboot, boot B, mark good, replay refused.
python3 - "$log" "$n" "$n1" "$a" "$b" <<'PY' || fail "the console does not show the upgrade in order"
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
n, n1, a, b = sys.argv[2:]
steps = [
    f"root_a (vda3) verified by root_a_verity (vda4), root hash {a}",
    f"ICOS-VERSION icos {n}",
    "ICOS-BOOT-OK",
    f"ICOS-UPGRADE icos-upgrade: version {n1} written to root_b + root_b_verity and verified; next boot: icos_{n1}+3.efi (3 tries)",
    "ICOS-UPGRADE-REBOOT",
    f"root_b (vda5) verified by root_b_verity (vda6), root hash {b}",
    f"ICOS-VERSION icos {n1}",
    f"ICOS-VERITY status root: 0",
    "ICOS-BOOT-OK",
    f"ICOS-UPGRADE icos-upgrade: version {n1} marked good: icos_{n1}+2-1.efi -> icos_{n1}.efi",
    f"ICOS-UPGRADE icos-upgrade: error: refused, nothing was written: replay: version {n1} is the version this node runs",
]
at = 0
for s in steps:
    i = text.find(s, at)
    if i < 0:
        sys.exit(f"missing, after offset {at}: {s}")
    at = i + len(s)
PY
grep -aq "ICOS-ROOT /dev/mapper/root ext4 ro" "$log" || fail "the root is not /dev/mapper/root"
echo "PASS: upgraded $n -> $n1 (slot A -> B), rebooted into B, marked good, refused the replay ($took s, two boots):"
grep -a "ICOS-VERSION\|ICOS-UPGRADE\|icos-veritysetup\|ICOS-BOOT-OK" "$log"
