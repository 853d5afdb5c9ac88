#!/usr/bin/env bash
# Proves that the build needs nothing from the host but its shell, and that a tool's bytes and each
# toolchain pin are part of the cache key of exactly the actions they feed:
#  1. In a fresh output base, with the network cut (a new network namespace) and every host
#     compiler, assembler, linker, C header, crt file and Rust toolchain hidden (each replaced by a
#     program that fails loudly), `bazel build //ic-os:image` succeeds from Bazel's repository cache
#     and the pinned crates alone, and gives the same SHA256SUMS as this checkout's own build.
#     This is the CI run's one sealed cold build: it shares no cache with the rest of the run.
#  2. Changing icos-ext4's bytes (its --help text) and moving one toolchain pin (linux-libc-dev,
#     the kernel headers the C parts compile against, to the other version the mirror serves) in
#     the same build re-runs the Rust builds, the ext4 images (whose bytes stay the same, so nothing
#     after them re-runs), the build manifest and the sums; nothing else. The manifest records the new
#     icos-ext4 digest and the new pin; every other tool comes out byte-identical. (One build proves
#     both: each change alone would re-run a subset of the same actions.)
#  3. Restoring the source and the pin is served from the disk cache: same SHA256SUMS as in 1.
# Needs root (mount and network namespaces). Prints what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
checkout=$PWD
[[ $(id -u) -eq 0 ]] || { echo "hermetic-check: needs root for mount and network namespaces (unshare)" >&2; exit 1; }
work=$(mktemp -d /tmp/icos-hermetic.XXXXXX)
ext4_main=rs/tools/src/bin/icos-ext4.rs
pins=toolchains/debian/packages.bzl
cp "$ext4_main" "$work/icos-ext4.rs"
cp "$pins" "$work/packages.bzl"
cleanup() {
  cp "$work/icos-ext4.rs" "$checkout/$ext4_main"
  cp "$work/packages.bzl" "$checkout/$pins"
  bazel --output_base="$work/ob" shutdown >/dev/null 2>&1 || true
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
  # Point bazel-bin back at this checkout's own output base.
  bazel build "${ci_flags[@]}" //ic-os:image >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "hermetic-check: FAILED: $*" >&2; exit 1; }

# Compares the tools and toolchain packages of two build manifests: prints "NAME OLD NEW" for each
# entry whose version or digest differs.
changed_tools() {
  python3 - "$1" "$2" <<'PY'
import json, sys
before, after = ({t["name"]: (t["version"], t.get("digest")) for t in json.load(open(p))["tools"]} for p in sys.argv[1:])
binaries = [n for n in before if n.startswith("icos-") and n != "icos-tools"]
if len(binaries) < 10:
    sys.exit(f"hermetic-check: FAILED: the build manifest lists only the tools {binaries}")
for name in sorted(set(before) | set(after)):
    if before.get(name) != after.get(name):
        print(name, *(" ".join(str(x) for x in side.get(name, ("-", "-"))) for side in (before, after)))
PY
}

bazel build "${ci_flags[@]}" //ic-os:image
cp -L bazel-bin/ic-os/SHA256SUMS "$work/sums.reference"

# Every host program or file a C or Rust build could reach for, whether or not this host has it.
cat >"$work/hidden-tool" <<'EOF'
#!/bin/sh
echo "hermetic-check: the build ran a host tool it must not use: $0 $*" >&2
exit 97
EOF
chmod +x "$work/hidden-tool"
printf '/* hidden by hermetic-check: the build must not read the host C library */\n#error host file\n' >"$work/hidden-file"
hidden_tools=()
for name in cc c89 c99 gcc gcc-12 x86_64-linux-gnu-gcc-12 c++ g++ g++-12 cpp cpp-12 clang \
  ld ld.bfd ld.gold ld.lld x86_64-linux-gnu-ld x86_64-linux-gnu-ld.bfd x86_64-linux-gnu-ld.gold \
  as x86_64-linux-gnu-as ar x86_64-linux-gnu-ar ranlib rustc cargo; do
  for dir in /usr/bin /usr/local/bin /bin; do
    [[ -e "$dir/$name" ]] && hidden_tools+=("$(realpath "$dir/$name")")
  done
done
hidden_files=()
for f in /usr/lib/x86_64-linux-gnu/{crt1.o,Scrt1.o,crti.o,crtn.o,libc.so,libc_nonshared.a,libm.so}; do
  [[ -e "$f" ]] && hidden_files+=("$(realpath "$f")")
done
hidden_dirs=(/usr/include /usr/lib/gcc)
for d in "$HOME/.cargo/bin" "$HOME/.rustup"; do [[ -d "$d" ]] && hidden_dirs+=("$d"); done
printf '%s\n' "${hidden_tools[@]}" | sort -u >"$work/hidden-tools"
printf '%s\n' "${hidden_files[@]}" >"$work/hidden-files"
printf '%s\n' "${hidden_dirs[@]}" >"$work/hidden-dirs"
echo "hermetic-check: hiding $(wc -l <"$work/hidden-tools") host tools, $(wc -l <"$work/hidden-files") C library files, ${hidden_dirs[*]}; cutting the network"

# Runs bazel in the fresh output base inside the namespaces. $1: log file; the rest: build flags.
# NETWORK=keep leaves the network up (for a pin that is not in the repository cache yet).
sealed_build() {
  local log=$1 net=(--net)
  shift
  [[ "${NETWORK:-}" == keep ]] && net=()
  unshare --mount "${net[@]}" --fork env WORK="$work" NETWORK="${NETWORK:-}" bash -s -- "$@" >"$log" 2>&1 <<'EOF'
set -euo pipefail
mount --make-rprivate /
[[ "$NETWORK" == keep ]] || ip link set lo up # the Bazel client talks to its server over loopback
while read -r t; do mount --bind "$WORK/hidden-tool" "$t"; done <"$WORK/hidden-tools"
while read -r f; do mount --bind "$WORK/hidden-file" "$f"; done <"$WORK/hidden-files"
while read -r d; do mount -t tmpfs -o ro,size=1m hidden "$d"; done <"$WORK/hidden-dirs"
if [[ "$NETWORK" != keep ]] && timeout 10 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80' 2>/dev/null; then
  echo "hermetic-check: the network is still reachable inside the namespace" >&2
  exit 1
fi
! command -v cc >/dev/null || [[ "$(cc 2>&1)" == *"must not use"* ]] || { echo "host cc still runs" >&2; exit 1; }
status=0
# Cold on purpose: no remote cache, whatever a user's rc files configure; only this check's disk cache.
bazel --output_base="$WORK/ob" build --config=ci --remote_cache= --disk_cache="$WORK/disk-cache" "$@" //ic-os:image || status=$?
bazel --output_base="$WORK/ob" shutdown
exit $status
EOF
}

start=$(date +%s)
sealed_build "$work/sealed.log" || { tail -n 40 "$work/sealed.log" >&2; fail "the build did not succeed without network and host toolchain"; }
echo "hermetic-check: sealed build in a fresh output base: $(($(date +%s) - start)) s, $(processes_line "$work/sealed.log")"
! grep -q "must not use" "$work/sealed.log" || fail "$(grep "must not use" "$work/sealed.log" | head -n 1)"
cp -L bazel-bin/ic-os/SHA256SUMS "$work/sums.sealed"
cp -L bazel-bin/ic-os/build-manifest.json "$work/manifest.before"
cmp "$work/sums.reference" "$work/sums.sealed" || fail "the sealed build's SHA256SUMS differ from this checkout's own build"
echo "hermetic-check: identical SHA256SUMS without network or host toolchain"

# 2. icos-ext4's bytes change and one toolchain pin moves, in one build.
sed -i 's/no root, no mounts, reproducible\./no root, no mounts, reproducible (hermetic-check)./' "$ext4_main"
grep -q "(hermetic-check)" "$ext4_main" || fail "could not change $ext4_main's help text"
ci/move-pin.py "$pins" toolchain_linux_libc_dev 6.1.176-1 \
  pool/main/l/linux/linux-libc-dev_6.1.176-1_amd64.deb \
  8bb258735b9dffbb111da778ebdd024750878e435ffd9dfcadcb6762ede6b4cf
# The network stays up for this build only: the moved pin may not be in the repository cache yet.
NETWORK=keep sealed_build "$work/changed.log" --execution_log_json_file="$work/exec.json" ||
  { tail -n 40 "$work/changed.log" >&2; fail "the build with a changed icos-ext4 and a moved pin failed"; }
cp "$work/icos-ext4.rs" "$ext4_main"
cp "$work/packages.bzl" "$pins"
cp -L bazel-bin/ic-os/build-manifest.json "$work/manifest.after"
ran=$(executed_mnemonics "$work/exec.json")
echo "hermetic-check: after changing icos-ext4's help text and moving the linux-libc-dev pin, re-ran: $ran"
# The node tools' build re-runs too (it reads the same sources and toolchain) and gives the same
# bytes; icos-ext4 writes three filesystems (root, config, var), each the same bytes as before.
expected="CargoBuild CargoBuildNode IcosExt4 IcosExt4 IcosExt4 IcosManifest IcosSums "
[[ "$ran" == "$expected" ]] || fail "expected exactly $expected to re-run"
changed=$(changed_tools "$work/manifest.before" "$work/manifest.after")
[[ "$(cut -d' ' -f1 <<<"$changed" | tr '\n' ' ')" == "deb:linux-libc-dev icos-ext4 icos-tools " ]] ||
  fail "expected the manifest to record a new icos-ext4 and the moved pin only, changed: $changed"
echo "hermetic-check: the manifest records the new icos-ext4 digest and $(grep '^deb:linux-libc-dev' <<<"$changed"); every other tool is byte-identical"

# 3. Back to the original source and pins: everything from the disk cache.
sealed_build "$work/restored.log" || { tail -n 40 "$work/restored.log" >&2; fail "the restored build failed"; }
cp -L bazel-bin/ic-os/SHA256SUMS "$work/sums.restored"
cmp "$work/sums.sealed" "$work/sums.restored" || fail "restoring the source did not restore SHA256SUMS"
echo "hermetic-check: restored source: $(processes_line "$work/restored.log"), identical SHA256SUMS"
