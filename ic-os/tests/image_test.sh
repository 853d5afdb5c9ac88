#!/usr/bin/env bash
# Checks the default image's release files with stock tools only: sha256sum, GNU tar, zstd,
# sgdisk, sfdisk, e2fsck, debugfs, fsck.fat, mtools. Argument: the package holding the release.
set -euo pipefail
export PATH=/usr/sbin:/sbin:/usr/bin:/bin
release=$PWD/$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "--- sha256sum -c SHA256SUMS"
(cd "$release" && sha256sum -c SHA256SUMS) || fail "SHA256SUMS does not match the artifacts"
for f in disk-img.tar.zst update-img.tar.zst build-manifest.json rootfs.manifest.json; do
  grep -q "  $f\$" "$release/SHA256SUMS" || fail "SHA256SUMS does not list $f"
done

echo "--- GNU tar restores the sparse disk image"
tar --zstd -tvf "$release/disk-img.tar.zst"
tar --zstd -xf "$release/disk-img.tar.zst" -C "$tmp"
disk=$tmp/disk.img
[[ -f "$disk" ]] || fail "disk-img.tar.zst holds no disk.img"

echo "--- sgdisk -v"
out=$(sgdisk -v "$disk")
echo "$out"
grep -q "No problems found" <<<"$out" || fail "sgdisk -v reports problems"

echo "--- sfdisk --dump"
sfdisk --dump "$disk" | tee "$tmp/layout"
grep -q 'name="esp"' "$tmp/layout" || fail "no partition named esp"
grep -q 'name="root"' "$tmp/layout" || fail "no partition named root"
grep -qi 'type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B' "$tmp/layout" || fail "esp has not the ESP type GUID"
grep -qi 'type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709' "$tmp/layout" || fail "root has not the x86-64 root type GUID"

extract() { # partition name -> file
  local line start size
  line=$(grep "name=\"$1\"" "$tmp/layout")
  start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")
  size=$(sed -n 's/.*size= *\([0-9]*\).*/\1/p' <<<"$line")
  dd if="$disk" of="$2" bs=512 skip="$start" count="$size" status=none
}
extract root "$tmp/root.ext4"
extract esp "$tmp/esp.vfat"

echo "--- e2fsck -fn root"
e2fsck -fn "$tmp/root.ext4" || fail "e2fsck reports problems in the root filesystem"
echo "--- fsck.fat -n esp"
fsck.fat -n "$tmp/esp.vfat" || fail "fsck.fat reports problems in the ESP"
mtype -i "$tmp/esp.vfat" ::/loader/loader.conf | grep -q "timeout 0" || fail "ESP lacks loader/loader.conf"

echo "--- debugfs agrees with rootfs.manifest.json"
python3 - "$release/rootfs.manifest.json" "$tmp/root.ext4" <<'PY'
import json, subprocess, sys, re
manifest = json.load(open(sys.argv[1]))
entries = {e["path"]: e for e in manifest["entries"]}
def stat(path):
    return subprocess.run(["debugfs", "-R", f"stat {path}", sys.argv[2]], capture_output=True, text=True, check=True).stdout
checked = 0
for path in ["/etc/motd", "/usr/bin/su-stub", "/usr/bin/hello-again", "/bin/sh", "/usr/bin/ping-stub", "/dev/console"]:
    e = entries.get(path)
    if e is None:
        sys.exit(f"FAIL: {path} missing from rootfs.manifest.json")
    out = stat(path)
    mode = int(re.search(r"Mode:\s+(\d+)", out).group(1), 8)
    uid = int(re.search(r"User:\s+(\d+)", out).group(1))
    gid = int(re.search(r"Group:\s+(\d+)", out).group(1))
    mtime = re.search(r"mtime: (0x[0-9a-f]+)", out)
    want_mode = int(e["mode"], 8)
    if (mode, uid, gid) != (want_mode, e["uid"], e["gid"]):
        sys.exit(f"FAIL: {path}: debugfs says mode {mode:o} {uid}:{gid}, manifest {want_mode:o} {e['uid']}:{e['gid']}")
    if mtime and int(mtime.group(1), 16) != e["mtime"]:
        sys.exit(f"FAIL: {path}: debugfs mtime {int(mtime.group(1), 16)}, manifest {e['mtime']}")
    checked += 1
ea = subprocess.run(["debugfs", "-R", "ea_list /usr/bin/ping-stub", sys.argv[2]], capture_output=True, text=True).stdout
if "security.capability" not in ea:
    sys.exit("FAIL: /usr/bin/ping-stub lost its security.capability xattr")
links = re.search(r"Links:\s+(\d+)", stat("/usr/bin/hello")).group(1)
if links != "2":
    sys.exit(f"FAIL: /usr/bin/hello has {links} links, expected 2 (hardlink to hello-again)")
print(f"debugfs matches the manifest for {checked} sampled paths")
PY
echo "PASS"
