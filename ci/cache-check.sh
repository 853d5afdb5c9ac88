#!/usr/bin/env bash
# Caching, measured: every action is fit for a shared cache.
#  1. a no-op rebuild runs no action;
#  2. changing one injected file re-runs only the steps after the rootfs (never the Rust tools,
#     the boot pieces or the ESP);
#  3. two fresh output bases sharing one --disk_cache: the second build is served entirely from the
#     cache (0 actions executed) and gives identical SHA256SUMS.
# Prints the figures it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/icos-cache-check.XXXXXX)
motd=ic-os/files/motd
cp "$motd" "$work/motd"
cleanup() {
  cp "$work/motd" "$motd"
  for ob in "$work"/ob1 "$work"/ob2; do
    [[ -d "$ob" ]] && bazel --output_base="$ob" shutdown >/dev/null 2>&1 || true
  done
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
  # Point bazel-bin back at this checkout's own output base.
  bazel build --config=ci //ic-os:image >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "cache-check: FAILED: $*" >&2; exit 1; }
# "INFO: 18 processes: 4 internal, 14 linux-sandbox." -> spawns that really executed (not internal,
# not served from a cache); "INFO: 0 processes." -> 0.
executed() {
  grep -E '^INFO: [0-9]+ process' "$1" | tail -n 1 | python3 -c '
import re, sys
line = sys.stdin.read()
parts = re.findall(r"(\d+) ([a-z -]+)", line.split(":", 2)[-1] if line.count(":") > 1 else "")
print(sum(int(n) for n, kind in parts if "internal" not in kind and "cache hit" not in kind))'
}

bazel build --config=ci //ic-os:image >/dev/null 2>&1
start=$(date +%s%N)
bazel build --config=ci //ic-os:image 2>"$work/noop.log"
noop_ms=$((($(date +%s%N) - start) / 1000000))
[[ "$(executed "$work/noop.log")" == 0 ]] || fail "a no-op rebuild executed actions: $(grep processes "$work/noop.log")"
echo "cache-check: no-op rebuild: 0 actions, ${noop_ms} ms wall"

echo "changed by cache-check" >>"$motd"
bazel build --config=ci --execution_log_json_file="$work/exec.json" //ic-os:image 2>"$work/change.log"
cp "$work/motd" "$motd"
mnemonics=$(grep -o '"mnemonic": "[A-Za-z0-9]*"' "$work/exec.json" | cut -d'"' -f4 | sort | uniq -c | tr '\n' ' ')
echo "cache-check: after changing $motd, re-ran: $mnemonics"
for never in CargoBuild IcosDebLayer IcosInitramfs IcosVfat; do
  ! grep -q "\"mnemonic\": \"$never\"" "$work/exec.json" || fail "$never re-ran after a change to the root filesystem only"
done
grep -q '"mnemonic": "IcosRootfs"' "$work/exec.json" || fail "the rootfs did not re-run"
grep -q '"mnemonic": "IcosExt4"' "$work/exec.json" || fail "the ext4 image did not re-run"

for n in 1 2; do
  start=$(date +%s)
  bazel --output_base="$work/ob$n" build --config=ci --disk_cache="$work/disk-cache" //ic-os:image 2>"$work/ob$n.log"
  echo "cache-check: output base $n: $(($(date +%s) - start)) s, $(grep -E '^INFO: [0-9]+ process' "$work/ob$n.log" | tail -n 1)"
  cp -L bazel-bin/ic-os/SHA256SUMS "$work/sums$n"
done
[[ "$(executed "$work/ob2.log")" == 0 ]] || fail "the second output base executed actions instead of using the disk cache"
grep -q "cache hit" "$work/ob2.log" || fail "the second output base reports no cache hits"
cmp "$work/sums1" "$work/sums2" || fail "the two output bases produced different SHA256SUMS"
echo "cache-check: the second output base was served entirely from the disk cache, identical SHA256SUMS"
