#!/usr/bin/env bash
# Benchmark (not a test): icos-verity against `veritysetup format` on the same data image, side by
# side in one run, with the same salt and UUID (so the outputs must be identical, which it checks),
# then `icos-verity verify` against `veritysetup verify`. Reports wall time, CPU time and peak RSS
# (/usr/bin/time -f).
#
#   scripts/bench-verity.sh                # 1 GiB of pseudo-random data
#   scripts/bench-verity.sh root.ext4      # an existing image (size a multiple of 4096)
#   SIZE_MIB=256 scripts/bench-verity.sh   # a quick run
#   KEEP=1 scripts/bench-verity.sh         # keep the work directory
#
# The page cache is not dropped: every run reads the same warm data. On a shared machine, compare
# figures from the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
SEED=bench
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
[[ -x /usr/sbin/veritysetup ]] || { echo "missing veritysetup: apt-get install cryptsetup-bin" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-verity.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

echo "== building icos-verity (release)" >&2
(cd rs && cargo build --release --quiet -p icos-tools --bin icos-verity)
bin=$PWD/rs/target/release/icos-verity

if [[ $# -ge 1 ]]; then
  data=$(realpath "$1")
else
  data=$work/data.img
  echo "== generating ${SIZE_MIB} MiB of random data" >&2
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$data" # both tools hash the same bytes
fi
cat "$data" > /dev/null # warm the page cache for both

measure() { # label, command…
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$work/out.$label" 2>&1
  read -r wall user sys rss < "$work/time"
  printf '%-26s wall %6.2f s   user %5.2f s   sys %5.2f s   peak RSS %7d KiB\n' \
    "$label" "$wall" "$user" "$sys" "$rss"
}

measure "icos-verity" "$bin" --data "$data" --out "$work/ours.verity" --seed "$SEED" \
  --label root --report-out "$work/ours.json"
root=$(sed -n 's/.*"root_hash": "\(.*\)".*/\1/p' "$work/ours.json")
salt=$(sed -n 's/.*"salt": "\(.*\)".*/\1/p' "$work/ours.json")
uuid=$(sed -n 's/.*"uuid": "\(.*\)".*/\1/p' "$work/ours.json")
measure "veritysetup format" /usr/sbin/veritysetup format --salt="$salt" --uuid="$uuid" \
  --hash=sha256 --data-block-size=4096 --hash-block-size=4096 "$data" "$work/theirs.verity"
measure "icos-verity verify" "$bin" verify --data "$data" --hash "$work/ours.verity" --root-hash "$root"
measure "veritysetup verify" /usr/sbin/veritysetup verify "$data" "$work/ours.verity" "$root"

theirs=$(sed -n 's/^Root hash:[[:space:]]*//p' "$work/out.veritysetup format")
if cmp -s "$work/ours.verity" "$work/theirs.verity" && [[ "$theirs" == "$root" ]]; then
  echo "outputs identical (root hash $root)"
else
  echo "OUTPUTS DIFFER: ours $root, veritysetup $theirs" >&2
  exit 1
fi
