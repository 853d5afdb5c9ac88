#!/usr/bin/env bash
# Proves that a tool's bytes and each toolchain pin are part of the cache key of exactly the actions
# they feed. Changing icos-ext4's bytes (its --help text) and moving one toolchain pin
# (linux-libc-dev, the kernel headers the C parts compile against, to the other version the mirror
# serves) in the same build re-runs the Rust build, the ext4 images (whose bytes stay the same, so
# nothing after them re-runs), the build manifest and the sums; nothing else. The manifest records
# the new icos-ext4 digest and the new pin; every other tool comes out byte-identical. (One build
# proves both: each change alone would re-run a subset of the same actions.) Restoring the source
# and the pin is then served from the cache: the same SHA256SUMS as before.
# The build that needs nothing of the host but its shell is the determinism check's builder B
# (scripts/two-builders.sh --sealed). Prints what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
checkout=$PWD
work=$(mktemp -d /tmp/icos-tool-rerun.XXXXXX)
ext4_main=rs/tools/src/bin/icos-ext4.rs
pins=toolchains/debian/packages.bzl
cp "$ext4_main" "$work/icos-ext4.rs"
cp "$pins" "$work/packages.bzl"
cleanup() {
  cp "$work/icos-ext4.rs" "$checkout/$ext4_main"
  cp "$work/packages.bzl" "$checkout/$pins"
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "tool-rerun: FAILED: $*" >&2; exit 1; }

# Compares the tools and toolchain packages of two build manifests: prints "NAME OLD NEW" for each
# entry whose version or digest differs.
changed_tools() {
  python3 - "$1" "$2" <<'PY'
import json, sys
before, after = ({t["name"]: (t["version"], t.get("digest")) for t in json.load(open(p))["tools"]} for p in sys.argv[1:])
binaries = [n for n in before if n.startswith("icos-") and n != "icos-tools"]
if len(binaries) < 10:
    sys.exit(f"tool-rerun: FAILED: the build manifest lists only the tools {binaries}")
for name in sorted(set(before) | set(after)):
    if before.get(name) != after.get(name):
        print(name, *(" ".join(str(x) for x in side.get(name, ("-", "-"))) for side in (before, after)))
PY
}

bazel build "${ci_flags[@]}" //ic-os:image
cp -L bazel-bin/ic-os/SHA256SUMS "$work/sums.before"
cp -L bazel-bin/ic-os/build-manifest.json "$work/manifest.before"

# icos-ext4's bytes change and one toolchain pin moves, in one build.
sed -i 's/no root, no mounts, reproducible\./no root, no mounts, reproducible (tool-rerun)./' "$ext4_main"
grep -q "(tool-rerun)" "$ext4_main" || fail "could not change $ext4_main's help text"
ci/move-pin.py "$pins" toolchain_linux_libc_dev 6.1.176-1 \
  pool/main/l/linux/linux-libc-dev_6.1.176-1_amd64.deb \
  8bb258735b9dffbb111da778ebdd024750878e435ffd9dfcadcb6762ede6b4cf
start=$SECONDS
bazel build "${ci_flags[@]}" --execution_log_json_file="$work/exec.json" //ic-os:image 2>"$work/changed.log" ||
  { tail -n 40 "$work/changed.log" >&2; fail "the build with a changed icos-ext4 and a moved pin failed"; }
cp "$work/icos-ext4.rs" "$ext4_main"
cp "$work/packages.bzl" "$pins"
cp -L bazel-bin/ic-os/build-manifest.json "$work/manifest.after"
ran=$(executed_mnemonics "$work/exec.json")
echo "tool-rerun: after changing icos-ext4's help text and moving the linux-libc-dev pin, re-ran ($((SECONDS - start)) s): $ran"
# icos-ext4 writes three filesystems (root, config, var), each the same bytes as before.
expected="CargoBuild IcosExt4 IcosExt4 IcosExt4 IcosManifest IcosSums "
[[ "$ran" == "$expected" ]] || fail "expected exactly $expected to re-run"
changed=$(changed_tools "$work/manifest.before" "$work/manifest.after")
[[ "$(cut -d' ' -f1 <<<"$changed" | tr '\n' ' ')" == "deb:linux-libc-dev icos-ext4 icos-tools " ]] ||
  fail "expected the manifest to record a new icos-ext4 and the moved pin only, changed: $changed"
echo "tool-rerun: the manifest records the new icos-ext4 digest and $(grep '^deb:linux-libc-dev' <<<"$changed"); every other tool is byte-identical"

# Back to the original source and pins.
bazel build "${ci_flags[@]}" //ic-os:image 2>"$work/restored.log" ||
  { tail -n 40 "$work/restored.log" >&2; fail "the restored build failed"; }
cmp "$work/sums.before" bazel-bin/ic-os/SHA256SUMS || fail "restoring the source did not restore SHA256SUMS"
echo "tool-rerun: restored source: $(processes_line "$work/restored.log"), identical SHA256SUMS"
