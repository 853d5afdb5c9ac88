#!/usr/bin/env bash
# README's second command: every test — Rust (fmt, clippy, unit and integration tests), Bazel
# (Starlark rules and the end-to-end image build with stock checkers), and the two-builder
# determinism check. CI runs exactly this (.ci/run).
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    Rust checks and tests only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=false
[[ "${1:-}" == "--quick" ]] && quick=true

scripts/setup.sh --deps-only
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

passed=0
failed=0
failures=()
stage() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

if ! $quick; then
  # One remote cache for the whole run (a local BuildGrid): the first build compiles the tools and
  # every later stage that need not be cold takes them from here. The one cold build that proves
  # something (the determinism check's builder B, sealed: no network, no host toolchain) never
  # uses it.
  ci_cache_dir=$(mktemp -d /tmp/icos-ci-cache.XXXXXX)
  ICOS_CI_REMOTE_CACHE=$(ci/buildgrid.sh start "$ci_cache_dir")
  export ICOS_CI_REMOTE_CACHE
  trap 'ci/buildgrid.sh stop "$ci_cache_dir"; rm -rf "$ci_cache_dir"' EXIT
  echo "test: the run's remote cache: $ICOS_CI_REMOTE_CACHE"
fi
source ci/lib.sh

if ! $quick; then
  # The Debian image's base (mmdebstrap and docker: mostly network and disk) is made in the
  # background while the Rust tools compile; the debian-image stage waits for it.
  debian_base_dir=$(mktemp -d /tmp/icos-debian-base.XXXXXX)
  chmod 0755 "$debian_base_dir" # builder B, another user, reads the archive
  trap 'ci/buildgrid.sh stop "$ci_cache_dir"; rm -rf "$ci_cache_dir" "$debian_base_dir"' EXIT
  scripts/make-debian-base.sh "$debian_base_dir/base.tar" >"$debian_base_dir/base.ref" 2>"$debian_base_dir/make.log" &
  debian_base_pid=$!
fi
# The Debian stage: its base, then ci/debian-image.sh; ICOS_DEBIAN_BASE stays set, so the
# determinism stage's builder B builds the Debian image too (the tools compile once for both).
debian_image() {
  local start=$SECONDS
  wait "$debian_base_pid" || { cat "$debian_base_dir/make.log" >&2; return 1; }
  echo "test: the Debian base was ready $((SECONDS - start)) s after this stage began (made in the background)"
  grep "^make-debian-base: times" "$debian_base_dir/make.log" || true
  ICOS_DEBIAN_BASE=$(tail -n 1 "$debian_base_dir/base.ref")
  export ICOS_DEBIAN_BASE
  ci/debian-image.sh --skip-two-builders
}

stage fmt cargo fmt --manifest-path rs/Cargo.toml --all -- --check
# Clippy and the tests in one compile: clippy-driver as the workspace's rustc wrapper is what
# `cargo clippy` runs, and here it also emits the code the tests run. Dependencies are cargo's
# --cap-lints allow, so -D warnings reaches our crates only. Saves a second cold compile of the
# workspace (about 2 minutes on 2 cores); `cargo clippy --all-targets -- -D warnings` stays the
# developer's command and finds the same lints.
clippy_test() {
  local -x RUSTC_WORKSPACE_WRAPPER RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
  RUSTC_WORKSPACE_WRAPPER=$(command -v clippy-driver)
  local cargo=(cargo test --manifest-path rs/Cargo.toml --workspace --locked)
  # Lint and build every target (benches too), then run the tests; benches are built, not run.
  "${cargo[@]}" --all-targets --no-run --quiet &&
    "${cargo[@]}" --lib --bins --tests &&
    "${cargo[@]}" --doc
}
stage clippy-test clippy_test
if ! $quick; then
  stage bazel-test bazel test "${ci_flags[@]}" //...
  stage registry-e2e ci/registry-e2e.sh
  stage release-e2e ci/release-e2e.sh
  stage pin-rerun ci/pin-rerun.sh
  stage cache-check ci/cache-check.sh
  stage spec-escape ci/spec-escape.sh
  stage remote-cache ci/remote-cache.sh
  stage debian-image debian_image
  stage tool-rerun ci/tool-rerun.sh
  stage determinism ci/determinism.sh
fi

echo
if ((failed)); then
  echo "failed stages: ${failures[*]}"
fi
echo "stages: $passed passed, $failed failed"
cd "$root"
((failed == 0))
