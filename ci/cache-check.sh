#!/usr/bin/env bash
# Local caching, measured:
#  1. a no-op rebuild runs no action;
#  2. changing one injected file re-runs only the steps after the rootfs (never the Rust tools,
#     the boot pieces or the initramfs);
#  3. build logs show the tools' own messages and no sandbox debug noise: a `remove` pattern that
#     matches nothing prints icos-rootfs's warning.
# Sharing results between builders (a remote cache, two output bases, two checkout paths) is
# ci/remote-cache.sh. Prints the figures it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
work=$(mktemp -d /tmp/icos-cache-check.XXXXXX)
motd=ic-os/files/motd
cp "$motd" "$work/motd"
probe=ci/cache-check-probe
cleanup() {
  cp "$work/motd" "$motd"
  rm -rf "$work" "$probe"
}
trap cleanup EXIT
fail() { echo "cache-check: FAILED: $*" >&2; exit 1; }

bazel build "${ci_flags[@]}" //ic-os:image >/dev/null 2>&1
start=$(date +%s%N)
bazel build "${ci_flags[@]}" --execution_log_json_file="$work/noop.json" //ic-os:image 2>"$work/noop.log"
noop_ms=$((($(date +%s%N) - start) / 1000000))
[[ -z "$(executed_mnemonics "$work/noop.json")" ]] || fail "a no-op rebuild executed actions: $(processes_line "$work/noop.log")"
echo "cache-check: no-op rebuild: 0 actions, ${noop_ms} ms wall"

echo "changed by cache-check" >>"$motd"
bazel build "${ci_flags[@]}" --execution_log_json_file="$work/exec.json" //ic-os:image 2>"$work/change.log"
cp "$work/motd" "$motd"
ran=$(executed_mnemonics "$work/exec.json")
echo "cache-check: after changing $motd, re-ran: $ran"
for never in CargoBuild IcosDebLayer IcosInitramfs; do
  [[ " $ran" != *" $never "* ]] || fail "$never re-ran after a change to the root filesystem only"
done
[[ "$ran" == *IcosRootfs* ]] || fail "the rootfs did not re-run"
[[ "$ran" == *IcosExt4* ]] || fail "the ext4 image did not re-run"

# 3. A rootfs whose spec removes what is not there: the tool's warning reaches the build log.
mkdir -p "$probe"
cat >"$probe/BUILD.bazel" <<'BUILD'
load("//ic-os:defs.bzl", "icos_rootfs")

icos_rootfs(
    name = "probe",
    source_date_epoch = 1764028800,
    spec = "probe.toml",
)
BUILD
# A path unique to this run, so the action really runs (a cached action replays no output).
printf 'remove = ["/no/such/path/**"]\n\n[[dir]]\npath = "/probe-%s"\n' "$(date +%s%N)" >"$probe/probe.toml"
bazel build "${ci_flags[@]}" "//$probe:probe" >"$work/probe.log" 2>&1 || { cat "$work/probe.log" >&2; fail "the probe rootfs did not build"; }
grep -q 'icos-rootfs: warning: .*"/no/such/path/\*\*" matched nothing' "$work/probe.log" ||
  { cat "$work/probe.log" >&2; fail "icos-rootfs's warning is not in the build log"; }
for log in "$work/change.log" "$work/probe.log"; do
  ! grep -q 'linux-sandbox-pid1\|linux-sandbox\.cc' "$log" ||
    fail "the build log carries linux-sandbox debug lines (is --nosandbox_debug in .bazelrc?)"
done
echo "cache-check: the build log shows the tool's warning: $(grep 'icos-rootfs: warning' "$work/probe.log")"
echo "cache-check: no sandbox debug lines in the build logs"
