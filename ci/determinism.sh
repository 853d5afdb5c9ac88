#!/usr/bin/env bash
# CI's determinism job (run by scripts/test.sh):
#  1. two independent builders must produce identical SHA256SUMS for //ic-os:image (and for
#     //ic-os/debian:image when ICOS_DEBIAN_BASE names a base, see ci/debian-image.sh). Builder B
#     builds sealed (scripts/sealed.sh, when run as root): without network and with every host
#     compiler, linker, C header and Rust toolchain hidden, from its own repository cache, in a
#     fresh output base. This is the CI run's proof that the build needs nothing of the host but its
#     shell, as a remote executor would see it: one cold build proves hermeticity and determinism. B is
#     configured (in its $HOME/.bazelrc) with a remote cache that holds every result of this commit
#     (the CI run's cache: the earlier stages filled it, and ci/remote-cache.sh showed a builder at
#     another path gets all of them from it). B must still build everything itself: it takes
#     nothing from any cache, or the check would compare A with A;
#  2. the check must be able to fail: with one injected file carrying the current time, it must
#     report a difference and icos-diff must name the root partition, /etc/motd and its content.
# The second run reuses the first run's output bases, so only the steps after the rootfs re-run.
#
#   ci/determinism.sh                    both steps
#   ci/determinism.sh --builder-b WORK   only builder B's cold build, kept in WORK (scripts/test.sh
#                                        runs it beside the other stages)
#   ci/determinism.sh --compare WORK     builder A, the comparison with the kept B, and step 2
#   ci/determinism.sh --cleanup WORK     stop B's Bazel server and delete WORK
# SOURCE (with --builder-b): B's sources, a snapshot taken before other stages edit the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

phase=all
work=""
source_dir=""
case ${1:-} in
  --builder-b) phase=builder-b; work=${2:?--builder-b needs WORK}; source_dir=${3:-} ;;
  --compare) phase=compare; work=${2:?--compare needs WORK} ;;
  --cleanup) exec scripts/two-builders.sh --work "${2:?--cleanup needs WORK}" --cleanup-only ;;
  "") work=$(mktemp -d /tmp/icos-determinism.XXXXXX) ;;
  *) echo "determinism: unknown argument $1 (see the header)" >&2; exit 2 ;;
esac
mkdir -p "$work"
own_cache=""
cleanup() {
  [[ $phase != builder-b ]] || return 0
  scripts/two-builders.sh --work "$work" --cleanup-only >/dev/null 2>&1 || true
  [[ -z "$own_cache" ]] || ci/buildgrid.sh stop "$own_cache"
  rm -rf "$own_cache"
}
trap cleanup EXIT

cache=${ICOS_CI_REMOTE_CACHE:-}
export BUILDER_A_FLAGS="${ci_flags[*]}"
if [[ -z "$cache" ]]; then
  # Standalone: a cache of our own, filled by a build in a fresh output base (which executes and
  # uploads everything; the checkout's own output base would upload nothing it already has).
  [[ $phase == all ]] || { echo "determinism: --builder-b and --compare need the CI run's cache (ICOS_CI_REMOTE_CACHE)" >&2; exit 2; }
  own_cache=$(mktemp -d /tmp/icos-determinism-cache.XXXXXX)
  cache=$(ci/buildgrid.sh start "$own_cache")
  bazel --output_base="$own_cache/ob" build --config=ci --config=remote "--remote_cache=$cache" //ic-os:image
  bazel --output_base="$own_cache/ob" shutdown
  export BUILDER_A_FLAGS="--config=ci --config=remote --remote_cache=$cache"
fi

# With a Debian base at hand (scripts/test.sh makes one), builder B builds the Debian image too:
# its tools compile once for both.
targets=(--target //ic-os:image)
[[ -z "${ICOS_DEBIAN_BASE:-}" ]] || targets+=(--target //ic-os/debian:image)
sealed=()
if [[ $(id -u) -eq 0 ]]; then
  sealed=(--sealed)
else
  echo "determinism: not root: builder B cannot be sealed (no namespaces); the build's hermeticity is not checked" >&2
fi
# B's log must show it built everything itself.
check_b() {
  grep -q "none from a cache" "$1" || { echo "determinism: FAILED: builder B's cache use is not reported" >&2; exit 1; }
  if grep -q "must not use" "$1"; then
    echo "determinism: FAILED: $(grep "must not use" "$1" | head -n 1)" >&2
    exit 1
  fi
}
start=$SECONDS
if [[ $phase != compare ]]; then
  # B's cold build, kept for the comparison (which reuses it as it is).
  scripts/two-builders.sh --work "$work" --builder-b-only ${source_dir:+--source "$source_dir"} \
    "${sealed[@]}" "${targets[@]}" --user-remote-cache "$cache" 2>&1 | tee "$work/builder-b.log"
  check_b "$work/builder-b.log"
  echo "determinism: builder B built everything itself${sealed:+, sealed (no network, no host toolchain)}," \
    "ignoring the remote cache its user configuration names ($((SECONDS - start)) s)"
  [[ $phase == all ]] || exit 0
fi
[[ -s "$work/builder-b.log" ]] || { echo "determinism: FAILED: no builder B in $work (run --builder-b first)" >&2; exit 1; }
start=$SECONDS
# A against the B just built (checked above by check_b), as it is: no second server in the jail.
scripts/two-builders.sh --work "$work" --reuse-b "${sealed[@]}" "${targets[@]}" 2>&1 | tee "$work/clean.log"
echo "determinism: two builders agree ($((SECONDS - start)) s)"

start=$SECONDS
set +e
# Unsealed, so builder B could reach the remote cache that holds the good result: it must not take it.
scripts/two-builders.sh --work "$work" --keep --inject-nondeterminism --user-remote-cache "$cache" >"$work/injected.log" 2>&1
status=$?
set -e
cat "$work/injected.log"
if ((status != 1)); then
  echo "determinism: FAILED: with an injected timestamp the check exited $status, expected 1" >&2
  exit 1
fi
for expected in "root" "/etc/motd" "content"; do
  if ! grep -q -- "$expected" "$work/injected.log"; then
    echo "determinism: FAILED: the diff report does not name '$expected'" >&2
    exit 1
  fi
done
echo "determinism: the check catches an injected timestamp and names it ($((SECONDS - start)) s)"
