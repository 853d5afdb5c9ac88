#!/usr/bin/env bash
# Checks the default image's release files with stock tools only: sha256sum, GNU tar, zstd,
# sgdisk, sfdisk, e2fsck, debugfs, fsck.fat, mtools, veritysetup, objdump/objcopy, pefile.
# Argument: the package holding the release.
set -euo pipefail
export PATH=/usr/sbin:/sbin:/usr/bin:/bin
release=$PWD/$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "--- sha256sum -c SHA256SUMS"
(cd "$release" && sha256sum -c SHA256SUMS) || fail "SHA256SUMS does not match the artifacts"
for f in disk-img.tar.zst update-img.tar.zst update-manifest.json build-manifest.json rootfs.manifest.json; do
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

echo "--- sfdisk --dump: the verified A/B layout, each partition with its type"
sfdisk --dump "$disk" | tee "$tmp/layout"
for expected in \
  esp:C12A7328-F81F-11D2-BA4B-00A0C93EC93B \
  config:0FC63DAF-8483-4772-8E79-3D69D8477DE4 \
  root_a:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 \
  root_a_verity:2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5 \
  root_b:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 \
  root_b_verity:2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5 \
  var:4D21B016-B534-45C2-A9FB-5C16E091FD2D; do
  name=${expected%%:*} type=${expected#*:}
  grep -i "type=$type" "$tmp/layout" | grep -q "name=\"$name\"" || fail "no partition $name of type $type"
done
[[ $(grep -c 'name=' "$tmp/layout") == 7 ]] || fail "expected exactly 7 partitions"

extract() { # partition name -> file
  local line start size
  line=$(grep "name=\"$1\"" "$tmp/layout")
  start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")
  size=$(sed -n 's/.*size= *\([0-9]*\).*/\1/p' <<<"$line")
  dd if="$disk" of="$2" bs=512 skip="$start" count="$size" status=none
}
for p in esp config root_a root_a_verity root_b root_b_verity var; do extract "$p" "$tmp/$p.part"; done

echo "--- slot B is allocated and empty (zeros)"
for p in root_b root_b_verity; do
  cmp -s "$tmp/$p.part" <(head -c "$(stat -c %s "$tmp/$p.part")" /dev/zero) || fail "$p is not all zeros"
done

echo "--- e2fsck -fn root_a, config, var"
for p in root_a config var; do
  e2fsck -fn "$tmp/$p.part" || fail "e2fsck reports problems in $p"
done
cp "$tmp/root_a.part" "$tmp/root.ext4"

echo "--- veritysetup verify root_a with the root hash of the build manifest and the disk report"
params=$(python3 - "$release/build-manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
parts = {p["name"]: p for p in m["disk"]["partitions"]}
fs = parts["root_a_verity"]["filesystem"]
if parts["root_a_verity"].get("verity_root_hash") != fs["root_hash"]:
    sys.exit("FAIL: the disk report's root hash differs from the verity params'")
print(fs["root_hash"], fs["salt"], fs["uuid"], fs["data_blocks"], fs["hash_size"])
PY
) || fail "$params"
read -r root_hash salt uuid data_blocks hash_size <<<"$params"
veritysetup verify "$tmp/root_a.part" "$tmp/root_a_verity.part" "$root_hash" || fail "veritysetup verify rejects root_a"
echo "root hash $root_hash verified"

echo "--- veritysetup format with the same salt and uuid writes the same hash data"
head -c $((data_blocks * 4096)) "$tmp/root_a.part" >"$tmp/data"
veritysetup format --format=1 --hash=sha256 --data-block-size=4096 --hash-block-size=4096 \
  --salt="$salt" --uuid="$uuid" "$tmp/data" "$tmp/stock.verity" | tee "$tmp/format.out"
grep -q "Root hash:[[:space:]]*$root_hash" "$tmp/format.out" || fail "veritysetup format computes another root hash"
cmp "$tmp/stock.verity" <(head -c "$hash_size" "$tmp/root_a_verity.part") || fail "veritysetup's hash device differs from ours"
echo "identical hash device ($hash_size bytes)"

echo "--- fsck.fat -n esp; the UKI is a Type #2 entry with the root hash on its command line"
cp "$tmp/esp.part" "$tmp/esp.vfat"
fsck.fat -n "$tmp/esp.vfat" || fail "fsck.fat reports problems in the ESP"
mtype -i "$tmp/esp.vfat" ::/loader/loader.conf | grep -q "editor no" || fail "loader.conf must forbid the editor"
uki_name=$(mdir -b -i "$tmp/esp.vfat" ::/EFI/Linux/ | sed -n 's|.*/||p' | grep '\.efi$')
[[ $(wc -l <<<"$uki_name") == 1 ]] || fail "expected exactly one UKI in /EFI/Linux, found: $uki_name"
mcopy -n -i "$tmp/esp.vfat" "::/EFI/Linux/$uki_name" "$tmp/uki.efi"
objdump -h "$tmp/uki.efi" | tee "$tmp/sections"
for section in .osrel .cmdline .initrd .linux; do
  grep -q " $section " "$tmp/sections" || fail "the UKI has no $section section"
done
objcopy -O binary --only-section=.cmdline "$tmp/uki.efi" "$tmp/cmdline"
grep -q "roothash=$root_hash" "$tmp/cmdline" || fail "the UKI's command line does not carry roothash=$root_hash: $(cat "$tmp/cmdline")"
objcopy -O binary --only-section=.osrel "$tmp/uki.efi" "$tmp/osrel"
debugfs -R "cat /etc/os-release" "$tmp/root.ext4" 2>/dev/null | cmp - "$tmp/osrel" || fail ".osrel differs from the root's /etc/os-release"
/usr/bin/python3 - "$tmp/uki.efi" <<'PY' || fail "pefile rejects the UKI"
import sys, pefile
pe = pefile.PE(sys.argv[1])
names = [s.Name.rstrip(b"\0").decode() for s in pe.sections]
assert {".osrel", ".cmdline", ".initrd", ".linux"} <= set(names), names
assert pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum(), "PE checksum"
print("pefile: sections", names)
PY

echo "--- update-img.tar.zst: what an upgrade writes, the same bytes as the disk's slot A and ESP"
mkdir -p "$tmp/update"
tar --zstd -xf "$release/update-img.tar.zst" -C "$tmp/update"
[[ "$(tar --zstd -tf "$release/update-img.tar.zst" | tr '\n' ' ')" == "uki.efi root.img root.verity " ]] ||
  fail "update-img.tar.zst must hold uki.efi root.img root.verity in this order"
cmp "$tmp/update/uki.efi" "$tmp/uki.efi" || fail "the update's UKI differs from the ESP's"
cmp "$tmp/update/root.img" <(head -c "$(stat -c %s "$tmp/update/root.img")" "$tmp/root_a.part") || fail "root.img differs from slot A"
cmp "$tmp/update/root.verity" <(head -c "$(stat -c %s "$tmp/update/root.verity")" "$tmp/root_a_verity.part") || fail "root.verity differs from slot A's hash partition"

echo "--- update-manifest.json describes update-img.tar.zst (sizes, digests, root hash, version)"
python3 - "$release" "$tmp/update" <<'PY'
import hashlib, json, os, sys
release, update = sys.argv[1], sys.argv[2]
sha = lambda p: "sha256:" + hashlib.sha256(open(p, "rb").read()).hexdigest()
m = json.load(open(f"{release}/update-manifest.json"))
assert m["schema"] == "icos.update-manifest/v1", m["schema"]
pkg = f"{release}/update-img.tar.zst"
assert m["package"] == {"name": "update-img.tar.zst", "size": os.path.getsize(pkg), "sha256": sha(pkg)}, m["package"]
assert [x["name"] for x in m["members"]] == ["uki.efi", "root.img", "root.verity"], m["members"]
for x in m["members"]:
    p = f"{update}/{x['name']}"
    assert (x["size"], x["sha256"]) == (os.path.getsize(p), sha(p)), x
parts = {p["name"]: p for p in json.load(open(f"{release}/build-manifest.json"))["disk"]["partitions"]}
assert m["root_hash"] == parts["root_a_verity"]["filesystem"]["root_hash"], m["root_hash"]
print("update manifest: version", m["version"], "root hash", m["root_hash"])
PY

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
