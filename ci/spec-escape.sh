#!/usr/bin/env bash
# Spec sources cannot pull host files, under `bazel build` (the sandbox stages inputs as links):
#  1. a spec whose [[file]] source climbs out with '..' (to /etc/shadow) fails with icos-rootfs's
#     refusal;
#  2. a declared source that is a link to a host file (/etc/passwd) fails with icos-rootfs's
#     refusal, though Bazel staged it;
#  3. the default image's rootfs, whose sources are staged links into the workspace and bazel-out,
#     still builds.
# Prints how long each build took.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
probe=ci/spec-escape-probe
work=$(mktemp -d /tmp/icos-spec-escape.XXXXXX)
cleanup() { rm -rf "$work" "$probe"; }
trap cleanup EXIT
fail() { echo "spec-escape: FAILED: $*" >&2; exit 1; }

mkdir -p "$probe"
cat >"$probe/BUILD.bazel" <<'BUILD'
load("//ic-os:defs.bzl", "icos_rootfs")

icos_rootfs(
    name = "dotdot",
    source_date_epoch = 1764028800,
    spec = "dotdot.toml",
)

icos_rootfs(
    name = "link",
    srcs = ["host-link"],
    source_date_epoch = 1764028800,
    spec = "link.toml",
)
BUILD
# A line unique to this run, so the actions really run (a cached failure is never stored, but be sure).
stamp="# $(date +%s%N)"
printf '%s\n[[file]]\npath = "/stolen"\nsource = "../../../../../../etc/shadow"\n' "$stamp" >"$probe/dotdot.toml"
printf '%s\n[[file]]\npath = "/stolen"\nsource = "host-link"\n' "$stamp" >"$probe/link.toml"
ln -s /etc/passwd "$probe/host-link"

expect_refusal() {
  local target=$1 expected=$2 start
  start=$(date +%s%N)
  if bazel build "${ci_flags[@]}" "//$probe:$target" >"$work/$target.log" 2>&1; then
    cat "$work/$target.log" >&2
    fail "//$probe:$target built: the spec pulled a host file into the image"
  fi
  grep -q -- "$expected" "$work/$target.log" || { cat "$work/$target.log" >&2; fail "//$probe:$target failed without icos-rootfs's refusal ($expected)"; }
  echo "spec-escape: //$probe:$target refused in $((($(date +%s%N) - start) / 1000000)) ms: $(grep -m1 'icos-rootfs: error' "$work/$target.log")"
}
expect_refusal dotdot "source \"../../../../../../etc/shadow\" has a '..' component"
expect_refusal link "source \"host-link\": .*host-link resolves to /etc/passwd, outside the source roots"

start=$(date +%s%N)
bazel build "${ci_flags[@]}" //ic-os:image_rootfs >"$work/image.log" 2>&1 || { cat "$work/image.log" >&2; fail "//ic-os:image_rootfs did not build"; }
echo "spec-escape: //ic-os:image_rootfs builds ($((($(date +%s%N) - start) / 1000000)) ms; $(processes_line "$work/image.log"))"
