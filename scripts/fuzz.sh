#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted input (AFL++ through cargo-afl, stable Rust).
# Targets are the binaries of rs/fuzz (harnesses in rs/crates/fuzz-harness, seeds in rs/fuzz/corpus).
#
#   scripts/fuzz.sh TARGET [SECONDS]   fuzz one target (default 60 s); resumes its earlier findings
#   scripts/fuzz.sh --all SECONDS      every target in turn, SECONDS each
#   scripts/fuzz.sh --smoke            every target for a few seconds from its seeds (scripts/test.sh)
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh --differential SECONDS
#                                      the randomized differential tests (proptest, no AFL) for
#                                      SECONDS in batches of $ICOS_DIFFERENTIAL_BATCH (default 40)
#                                      cases each, with the long mode's big shapes on
#                                      (ICOS_DIFFERENTIAL_LONG=1): writers (tar -> icos-rootfs ->
#                                      icos-ext4/icos-vfat vs e2fsck, the kernel, fsck.fat, mtools)
#                                      and the tar reader vs Python's tarfile. `cargo test` runs
#                                      the same tests with a bounded case count (PROPTEST_CASES).
#
# e.g. scripts/fuzz.sh tar 600
#
# Findings go to $ICOS_FUZZ_OUT (default rs/fuzz/out)/TARGET/default/{crashes,hangs}; replay one
# with `rs/fuzz/target/release/TARGET < FILE`. Each execution is limited to 1 s (a hang) and the
# process to 512 MiB of address space (-m). Exits non-zero when a crash or hang was found.
# The instrumented build has its own target directory ($ICOS_FUZZ_TARGET_DIR, default
# rs/fuzz/target): never mix it with the normal build's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

targets=(tar oci_layout docker_archive image_toml sha256sums minisign deb gpt ext4)
smoke_seconds=${ICOS_FUZZ_SMOKE_SECONDS:-5}

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

mode=one
case "${1:-}" in
  "" | -h | --help) usage ;;
  --list) printf '%s\n' "${targets[@]}"; exit 0 ;;
  --all) mode=all; seconds=${2:?--all needs SECONDS}; run=("${targets[@]}") ;;
  --smoke) mode=smoke; seconds=$smoke_seconds; run=("${targets[@]}") ;;
  --differential) mode=differential; seconds=${2:?--differential needs SECONDS} ;;
  -*) usage ;;
  *)
    [[ " ${targets[*]} " == *" $1 "* ]] || { echo "fuzz: unknown target '$1' (scripts/fuzz.sh --list)" >&2; exit 2; }
    seconds=${2:-60}; run=("$1") ;;
esac
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz: SECONDS must be a positive integer, not '$seconds'" >&2; exit 2; }

if [[ $mode == differential ]]; then
  # Each batch draws fresh random cases; a failure stops here, its shrunk case printed and its seed
  # saved in the test's .proptest-regressions file (replayed first by every later run).
  batch=${ICOS_DIFFERENTIAL_BATCH:-40}
  export ICOS_DIFFERENTIAL_LONG=1 PROPTEST_CASES=$batch
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/rs/target}
  tests=(-p icos-rootfs --test writers_ext4 --test writers_vfat)
  cargo test --locked --quiet --manifest-path rs/Cargo.toml "${tests[@]}" --no-run
  cargo test --locked --quiet --manifest-path rs/Cargo.toml -p icos-common --test tar_differential --no-run
  log=$(mktemp /tmp/icos-differential.XXXXXX.log)
  end=$((SECONDS + seconds))
  batches=0
  while ((SECONDS < end)); do
    for t in "${tests[*]}" "-p icos-common --test tar_differential"; do
      # shellcheck disable=SC2086 # the words of one cargo selection
      if ! cargo test --locked --quiet --manifest-path rs/Cargo.toml $t >"$log" 2>&1; then
        grep -v '^ *[0-9]*: \|^ *at ' "$log" | tail -40 >&2
        echo "fuzz: differential: a case failed after $batches batches (full log: $log)" >&2
        exit 1
      fi
    done
    batches=$((batches + 1))
    echo "fuzz: differential: batch $batches done (${batch} cases of each of 3 properties), $((end > SECONDS ? end - SECONDS : 0))s left"
  done
  rm -f "$log"
  echo "fuzz: differential: $((batches * batch)) cases of each property (writers_ext4, writers_vfat, tar_differential), no failure"
  exit 0
fi

if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: cargo-afl is not installed: run scripts/setup.sh (--deps-only leaves it out)" >&2
  exit 1
fi

export CARGO_TARGET_DIR=${ICOS_FUZZ_TARGET_DIR:-$root/rs/fuzz/target}
cargo afl build --release --locked --quiet --manifest-path rs/fuzz/Cargo.toml

if [[ $mode == smoke ]]; then
  out_root=$(mktemp -d /tmp/icos-fuzz-smoke.XXXXXX)
  trap 'rm -rf "$out_root"' EXIT
else
  out_root=${ICOS_FUZZ_OUT:-$root/rs/fuzz/out}
fi

# No UI on a non-terminal; a shared CI machine may have no free core to bind to and core dumps
# piped elsewhere: neither is a reason not to run.
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_FAST_CAL=1 AFL_AUTORESUME=1 AFL_QUIET=1

afl_stat() { sed -n "s/^$1 *: *//p" "$2"; }
found=0
total_execs=0
for t in "${run[@]}"; do
  out=$out_root/$t
  mkdir -p "$out"
  log=$out/afl.log
  if ! cargo afl fuzz -i rs/fuzz/corpus/"$t" -o "$out" -m 512 -t 1000 -V "$seconds" \
    -- "$CARGO_TARGET_DIR/release/$t" >"$log" 2>&1; then
    echo "fuzz: $t: afl-fuzz failed:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  stats=$out/default/fuzzer_stats
  execs=$(afl_stat execs_done "$stats")
  crashes=$(afl_stat saved_crashes "$stats")
  hangs=$(afl_stat saved_hangs "$stats")
  edges=$(afl_stat edges_found "$stats")
  total_execs=$((total_execs + execs))
  echo "fuzz: $t: ${seconds}s, $execs executions, $edges edges, $crashes crashes, $hangs hangs"
  if ((crashes + hangs)); then
    found=$((found + crashes + hangs))
    for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
      [[ -e $f ]] || continue
      echo "  $f"
      # A smoke run's directory goes away: show a small input, base64, to replay elsewhere.
      if [[ $mode == smoke && $(stat -c %s "$f") -le 8192 ]]; then
        base64 -w0 "$f"
        echo
      fi
    done
  fi
done
((${#run[@]} == 1)) || echo "fuzz: ${#run[@]} targets, $total_execs executions, $found crashes and hangs"
((found == 0))
