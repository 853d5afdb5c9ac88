#!/usr/bin/env bash
# CI's determinism job (run by scripts/test.sh):
#  1. two independent builders must produce identical SHA256SUMS for //ic-os:image;
#  2. the check must be able to fail: with one injected file carrying the current time, it must
#     report a difference and icos-diff must name the root partition, /etc/motd and its content.
# The second run reuses the first run's output bases, so only the steps after the rootfs re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/icos-determinism.XXXXXX)
trap 'scripts/two-builders.sh --work "$work" --cleanup-only >/dev/null 2>&1 || true' EXIT

start=$SECONDS
scripts/two-builders.sh --work "$work" --keep
echo "determinism: two builders agree ($((SECONDS - start)) s)"

start=$SECONDS
set +e
scripts/two-builders.sh --work "$work" --keep --inject-nondeterminism >"$work/injected.log" 2>&1
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
