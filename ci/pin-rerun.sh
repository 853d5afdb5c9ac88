#!/usr/bin/env bash
# Proves that a pinned tool input is part of the cache key of exactly the actions that use it:
# moving the systemd-boot-efi pin to another version must re-run the boot loader layer and what is
# built from it (ESP tree, ESP image, disk, packages, build manifest, sums) and nothing else (no
# Rust build, no root filesystem, no ext4, no initramfs). The pin is restored on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
pins=toolchains/debian/packages.bzl
work=$(mktemp -d /tmp/icos-pin-rerun.XXXXXX)
cp "$pins" "$work/packages.bzl"
trap 'cp "$work/packages.bzl" "$pins"; rm -rf "$work"' EXIT
fail() { echo "pin-rerun: FAILED: $*" >&2; exit 1; }

bazel build "${ci_flags[@]}" //ic-os:image
before=$(sed -n 's/.*"deb:systemd-boot-efi@\([^"]*\)".*/\1/p' bazel-bin/ic-os/build-manifest.json | head -n 1)

# The previous stable update of systemd-boot-efi (bookworm-security), a real other version.
ci/move-pin.py "$pins" debian_systemd_boot_efi 252.38-1~deb12u1 \
  pool/updates/main/s/systemd/systemd-boot-efi_252.38-1~deb12u1_amd64.deb \
  099343ccb3ad569ee1f0c838423f83267f65b8555fbcc8114167621a3350f245
bazel build "${ci_flags[@]}" --execution_log_json_file="$work/exec.json" //ic-os:image
python3 ci/exec_log.py outputs "$work/exec.json" >"$work/ran"
python3 - "$work/ran" <<'PY'
import sys
# "MNEMONIC OUTPUT..." per executed action (ci/exec_log.py outputs).
ran = sorted((line.split(" ", 1) + [""])[:2] for line in open(sys.argv[1]).read().splitlines())
for mnemonic, out in ran:
    print(f"  re-ran {mnemonic:14} {out}")
outputs = " ".join(out for _, out in ran).split()
expected = ["systemd-boot.tar", "image_esp_tree.tar", "image_esp.vfat", "image_disk.img",
            "disk-img.tar.zst", "update-img.tar.zst", "update-manifest.json", "build-manifest.json",
            "SHA256SUMS"]
missing = [e for e in expected if e not in outputs]
unrelated = {"image_rootfs.tar", "kernel.tar", "modules.tar", "busybox.tar", "initrd.img", "image_root.ext4"}
unexpected = [o for m, o in ran if m in ("CargoBuild", "IcosExt4", "IcosInitramfs")
              or unrelated.intersection(o.split())]
if missing or unexpected:
    sys.exit(f"pin-rerun: FAILED: did not re-run {missing}; re-ran unrelated {unexpected}")
print("pin-rerun: exactly the actions downstream of the systemd-boot-efi pin re-ran")
PY
after=$(sed -n 's/.*"deb:systemd-boot-efi@\([^"]*\)".*/\1/p' bazel-bin/ic-os/build-manifest.json | head -n 1)
[[ "$before" != "$after" && "$after" == 252.38-1~deb12u1 ]] ||
  fail "the build manifest does not record the new pin (before '$before', after '$after')"
echo "pin-rerun: the build manifest records systemd-boot-efi $before, then $after"

# A pin whose version the mirror no longer serves: the fetch fails naming the package, the version
# and the file to update (not a bare 404).
cp "$work/packages.bzl" "$pins"
ci/move-pin.py "$pins" debian_busybox_static 1:0.0-vanished \
  pool/main/b/busybox/busybox-static_0.0-vanished_amd64.deb "$(printf '0%.0s' {1..64})"
if bazel build "${ci_flags[@]}" //ic-os:image >"$work/vanished.log" 2>&1; then
  fail "a build with a vanished pin succeeded"
fi
for needle in "busybox-static 1:0.0-vanished" "toolchains/debian/packages.bzl" "scripts/update-pins.sh"; do
  grep -qF "$needle" "$work/vanished.log" || { tail -n 20 "$work/vanished.log" >&2; fail "the vanished-pin error does not name '$needle'"; }
done
echo "pin-rerun: a vanished pin fails with: $(grep -m1 -o 'cannot fetch the pinned Debian package busybox-static [^(]*' "$work/vanished.log")"
