#!/usr/bin/env bash
# README's second command: every test — Rust (fmt, clippy, unit and integration tests), Bazel
# (Starlark rules and the end-to-end image build with stock checkers), and the two-builder
# determinism check. CI runs exactly this (.ci/run).
#
#   scripts/test.sh            everything CI runs
#   scripts/test.sh --quick    Rust checks and tests only
#   scripts/test.sh --full     also ci/tool-rerun.sh, a third cold compile of the tools (before a
#                              change to the CargoBuild rule, the toolchain pins or ci/ itself)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=false full=false
case "${1:-}" in
  --quick) quick=true ;;
  --full) full=true ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick | --full]" >&2; exit 2 ;;
esac

scripts/setup.sh --deps-only
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

passed=0
failed=0
failures=()
# Busy and total CPU time of the whole machine so far, in clock ticks (/proc/stat's first line).
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
read -r busy_at_start all_at_start < <(cpu_ticks)
finish() {
  echo
  ((failed == 0)) || echo "failed stages: ${failures[*]}"
  local busy all hz
  read -r busy all < <(cpu_ticks)
  hz=$(getconf CLK_TCK)
  echo "stages: $passed passed, $failed failed (${SECONDS} s; the $(nproc) cores were busy" \
    "$(((busy - busy_at_start) * 100 / (all - all_at_start + 1)))% of it: $(((busy - busy_at_start) / hz)) core-seconds)"
  cd "$root"
  exit $((failed > 0))
}
# record NAME STATUS TIMES: counts a finished stage and prints its verdict line.
record() {
  if (($2 == 0)); then
    passed=$((passed + 1))
    echo "=== $1: ok ($3)"
  else
    failed=$((failed + 1))
    failures+=("$1")
    echo "=== $1: FAILED ($3)"
  fi
}
stage() {
  local name=$1 start=$SECONDS status=0
  shift
  echo
  echo "=== $name: $*"
  "$@" || status=$?
  record "$name" "$status" "$((SECONDS - start)) s, ended at +$SECONDS s"
}

# Two cores are kept busy by three lanes, since most stages use one core at a time (QEMU under TCG,
# Bazel's own client and server) while the compiles use both:
#   - this shell: the Bazel stages, in the checkout's output base, one after the other;
#   - clippy-test (cargo, its own target directory), started first;
#   - the Debian base, then the determinism check's builder B: the one cold build that proves
#     something (sealed: no network, no host toolchain; from a snapshot of the checkout taken
#     before any stage edits it). The determinism stage at the end builds A and compares;
#   - with --full only, tool-rerun (its changed tool is a third cold compile, about 550 core-seconds
#     on the CI machine, so CI leaves it out), in a copy of that snapshot with its own output base,
#     once the first build has filled the run's cache: it compiles while the QEMU tests and the
#     one-core stages run.
# The side lanes run at a lower priority (nice 10): the Bazel stages are the longest chain, and the
# side lanes fill the cores those leave idle. A lane's output is printed when it is joined, as one
# stage.
# Linux's autogroup scheduling shares the CPU equally between sessions and applies nice only within
# one, and every Bazel server is a session of its own: the first build's compile then got a third of
# the cores (867 s instead of about 350 s on the CI machine) while the lanes compiled beside it.
# As root, the run turns autogroups off so that nice means what it says, and restores them at exit.
autogroup=/proc/sys/kernel/sched_autogroup_enabled
autogroup_was=""
if [[ -w "$autogroup" && "$(cat "$autogroup")" == 1 ]]; then
  autogroup_was=1
  echo 0 >"$autogroup"
  echo "test: autogroup scheduling off for this run (restored at exit), so that the side lanes' nice 10 holds"
fi
lanes=$(mktemp -d /tmp/icos-test-lanes.XXXXXX)
chmod 0755 "$lanes" # builder B, another user, reads the Debian base archive
cleanup() {
  [[ -z "$autogroup_was" ]] || echo "$autogroup_was" >"$autogroup"
  # A lane still running (the run stopped early) goes first.
  local pids
  pids=$(jobs -pr)
  [[ -z "$pids" ]] || kill $pids 2>/dev/null || true
  [[ -z "${ci_cache_dir:-}" ]] || ci/buildgrid.sh stop "$ci_cache_dir"
  [[ ! -d "$lanes/determinism" ]] || ci/determinism.sh --cleanup "$lanes/determinism" >/dev/null 2>&1 || true
  chmod -R u+w "$lanes" 2>/dev/null || true # Bazel's output trees are read-only
  rm -rf "${ci_cache_dir:-}" "$lanes"
}
trap cleanup EXIT
declare -A lane_pid lane_start
# lane NAME CMD...: runs CMD in the background at nice 10, its output in $lanes/NAME.log.
lane() {
  local name=$1
  shift
  lane_start[$name]=$SECONDS
  {
    renice -n 10 "$BASHPID" >/dev/null
    local status=0
    "$@" || status=$?
    echo "$SECONDS" >"$lanes/$name.end"
    exit $status
  } >"$lanes/$name.log" 2>&1 &
  lane_pid[$name]=$!
}
# join_lane NAME: waits for the lane and reports it as a stage.
join_lane() {
  local name=$1 status=0
  wait "${lane_pid[$name]}" || status=$?
  echo
  echo "=== $name (ran beside the other stages)"
  cat "$lanes/$name.log"
  local end=$SECONDS
  [[ ! -s "$lanes/$name.end" ]] || end=$(cat "$lanes/$name.end")
  record "$name" "$status" "$((end - lane_start[$name])) s, from +${lane_start[$name]} s to +$end s of the run"
}

stage fmt cargo fmt --manifest-path rs/Cargo.toml --all -- --check
# Clippy and the tests in one compile: clippy-driver as the workspace's rustc wrapper is what
# `cargo clippy` runs, and here it also emits the code the tests run. Dependencies are cargo's
# --cap-lints allow, so -D warnings reaches our crates only. Saves a second cold compile of the
# workspace; `cargo clippy --all-targets -- -D warnings` stays the developer's command and finds
# the same lints. The tests include the replay of every fuzz seed (crates/fuzz-harness); the
# instrumented AFL++ build is scripts/fuzz.sh's, not CI's.
clippy_test() {
  # Line tables only: panics and backtraces keep file:line, and the build skips the full debug
  # info (measured: the test build's 470 core-seconds become 331).
  local -x RUSTC_WORKSPACE_WRAPPER RUSTFLAGS="${RUSTFLAGS:-} -D warnings" CARGO_PROFILE_DEV_DEBUG=line-tables-only
  RUSTC_WORKSPACE_WRAPPER=$(command -v clippy-driver)
  local cargo=(cargo test --manifest-path rs/Cargo.toml --workspace --locked)
  # Lint and build every target (benches too), then run the tests; benches are built, not run.
  "${cargo[@]}" --all-targets --no-run --quiet &&
    "${cargo[@]}" --lib --bins --tests &&
    "${cargo[@]}" --doc
}
if $quick; then
  stage clippy-test clippy_test
  finish
fi

# One remote cache for the whole run (a local BuildGrid): the first build compiles the tools and
# every later stage that need not be cold takes them from here. Builder B never uses it.
ci_cache_dir=$(mktemp -d /tmp/icos-ci-cache.XXXXXX)
ICOS_CI_REMOTE_CACHE=$(ci/buildgrid.sh start "$ci_cache_dir")
export ICOS_CI_REMOTE_CACHE
echo "test: the run's remote cache: $ICOS_CI_REMOTE_CACHE"
source ci/lib.sh

# Builder B's sources, before tool-rerun, cache-check and the others edit the checkout.
mkdir "$lanes/source"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$lanes/source"

# The Debian image's base (mmdebstrap and docker: mostly network and disk), then builder B, which
# builds the Debian image too (its tools compile once for both).
debian_base_then_builder_b() {
  local start=$SECONDS
  scripts/make-debian-base.sh "$lanes/base.tar" >"$lanes/base.ref" 2>"$lanes/make-base.log" ||
    { cat "$lanes/make-base.log"; echo failed >"$lanes/base.status"; return 1; }
  echo ok >"$lanes/base.status"
  echo "test: the Debian base took $((SECONDS - start)) s"
  grep "^make-debian-base: times" "$lanes/make-base.log" || true
  ICOS_DEBIAN_BASE=$(tail -n 1 "$lanes/base.ref") ci/determinism.sh --builder-b "$lanes/determinism" "$lanes/source"
}
lane clippy-test clippy_test
lane builder-b debian_base_then_builder_b

# The Debian stage waits for its base, then runs ci/debian-image.sh; ICOS_DEBIAN_BASE stays set
# for the determinism stage.
debian_image() {
  local start=$SECONDS
  while [[ ! -s "$lanes/base.status" ]]; do sleep 2; done
  [[ $(cat "$lanes/base.status") == ok ]] || { echo "test: the Debian base failed (see builder-b)" >&2; return 1; }
  echo "test: waited $((SECONDS - start)) s for the Debian base"
  ICOS_DEBIAN_BASE=$(tail -n 1 "$lanes/base.ref")
  export ICOS_DEBIAN_BASE
  ci/debian-image.sh --skip-two-builders
}

stage bazel-build bazel build "${ci_flags[@]}" //...
# In a copy of the snapshot (it edits a tool's source and a pin) with its own output base; the
# run's cache serves its unchanged builds.
tool_rerun() {
  cp -a "$lanes/source" "$lanes/tool-rerun"
  # Its output base inside the lanes directory, so the run's cleanup deletes it.
  echo "startup --output_base=$lanes/tool-rerun-output-base" >"$lanes/tool-rerun/user.bazelrc"
  local status=0
  (cd "$lanes/tool-rerun" && ci/tool-rerun.sh) || status=$?
  (cd "$lanes/tool-rerun" && bazel shutdown) >/dev/null 2>&1 || true
  return $status
}
! $full || lane tool-rerun tool_rerun
stage bazel-test bazel test "${ci_flags[@]}" //...
stage registry-e2e ci/registry-e2e.sh
stage release-e2e ci/release-e2e.sh
stage pin-rerun ci/pin-rerun.sh
stage cache-check ci/cache-check.sh
stage spec-escape ci/spec-escape.sh
stage remote-cache ci/remote-cache.sh
stage debian-image debian_image
join_lane clippy-test
! $full || join_lane tool-rerun
join_lane builder-b
stage determinism ci/determinism.sh --compare "$lanes/determinism"
finish
