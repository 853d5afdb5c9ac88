#!/usr/bin/env bash
# Benchmark (not a test), issue 16: a real Debian base (`docker save` of scripts/make-debian-base.sh)
# to a released disk image, three ways side by side in one run:
#   ours   icos-rootfs → icos-ext4 → icos-disk → icos-pack → icos-sums
#   hand   GNU tar: each layer extracted in order with whiteouts applied, then normalized
#          (tar --sort=name --mtime --clamp-mtime --numeric-owner, xattrs and ACLs kept);
#          tar -x + mke2fs -d; sfdisk + dd conv=notrunc,sparse; tar -S | zstd -3; sha256sum
#   floor  cat of the archive + openssl dgst -sha256 (SHA-NI when the CPU has it) + zstd -3 of
#          the disk
# Reports wall time and peak RSS per step (/usr/bin/time -f '%e %M') and the ratios of the issue's
# targets. The three routes run ROUNDS times (default 3), interleaved, each round in fresh
# directories; a step's time is its median over the rounds, its RSS the largest (a virtual
# machine's first touch of memory makes single runs vary by 2x). Targets: whole pipeline ≤ 0.5× hand and ≤ 1.5× floor, icos-rootfs ≤ 1.0× GNU tar normalization
# (reported against the bare `tar -c` normalization and against layers + normalization).
#
#   scripts/bench-debian.sh                          # makes the base first (mmdebstrap, Docker)
#   scripts/bench-debian.sh docker-archive:/tmp/debian-base.tar@sha256:…   # a base made before
#   ICOS_TOOLS=DIR scripts/bench-debian.sh …         # the icos binaries (default: bazel-bin's,
#                                                    # from bazel build //toolchains/rust:tools)
#   KEEP=1 scripts/bench-debian.sh …                 # keep the work directory
#   ROUNDS=5 scripts/bench-debian.sh …               # more rounds
#
# Needs root (the hand route restores owners, xattrs and ACLs). The page cache is not dropped;
# on a shared machine compare ratios from the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCH=1764028800
SEED=bench
tools=${ICOS_TOOLS:-$PWD/bazel-bin/toolchains/rust/tools}

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install $2" >&2; exit 1; }; }
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
need mke2fs e2fsprogs; need sfdisk fdisk; need zstd zstd; need openssl openssl; need python3 python3
for t in icos-rootfs icos-ext4 icos-disk icos-pack icos-sums; do
  [[ -x "$tools/$t" ]] || { echo "missing $tools/$t: bazel build //toolchains/rust:tools (or set ICOS_TOOLS)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-debian.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

if [[ $# -ge 1 ]]; then
  ref=$1
else
  echo "== making the base (scripts/make-debian-base.sh)" >&2
  ref=$(scripts/make-debian-base.sh "$work/base.tar" | tail -n 1)
fi
[[ "$ref" == docker-archive:*@sha256:* ]] || { echo "bench-debian: $ref is not docker-archive:PATH@sha256:…" >&2; exit 2; }
archive=${ref#docker-archive:}
archive=${archive%@*}
echo "== input: $ref, $(du -h --apparent-size "$archive" | cut -f1)" >&2

ROUNDS=${ROUNDS:-3}
declare -A TS M
measure() { # measure KEY CMD...: runs CMD, records wall seconds and the largest peak RSS (KiB)
  local key=$1 t m; shift
  /usr/bin/time -f '%e %M' -o "$work/time.$key" "$@" >/dev/null
  read -r t m <"$work/time.$key"
  TS[$key]+=" $t"
  ((m > ${M[$key]:-0})) && M[$key]=$m
  return 0
}

ours_route() {
mkdir -p "$work/ours"
cd "$work/ours"
measure o_rootfs "$tools/icos-rootfs" --base "$ref" --source-date-epoch "$EPOCH" --out rootfs.tar --manifest rootfs.manifest.json
entries=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["entries"]))' rootfs.manifest.json)
measure o_fs "$tools/icos-ext4" --rootfs rootfs.tar --out root.ext4 --seed "$SEED" --source-date-epoch "$EPOCH" --size auto
root_size=$(stat -c %s root.ext4)
cat >layout.toml <<EOF
[[partition]]
name = "root"
type = "linux-root-x86-64"
size = "auto"
image = "root.ext4"
EOF
measure o_disk "$tools/icos-disk" --layout layout.toml --seed "$SEED" --out disk.img --report-out disk.json
measure o_pack "$tools/icos-pack" --out disk-img.tar.zst --source-date-epoch "$EPOCH" disk.img
measure o_sums "$tools/icos-sums" --out SHA256SUMS disk-img.tar.zst
disk_size=$(stat -c %s disk.img)
}

hand_route() {
mkdir -p "$work/hand/layers" "$work/hand/tree" "$work/hand/tree2"
cd "$work/hand"
# Docker's layers in order, each extracted over the last; a whiteout .wh.NAME deletes NAME, an
# opaque marker .wh..wh..opq empties its directory of what lower layers put there.
hand_flatten() {
  set -euo pipefail
  local layer
  for layer in $(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))[0]["Layers"]))' <(tar -xOf "$archive" manifest.json)); do
    tar -xOf "$archive" "$layer" >layers/l.tar
    tar -tf layers/l.tar | { grep -E '(^|/)\.wh\.\.wh\.\.opq$' || true; } | while read -r m; do
      find "tree/$(dirname "$m")" -mindepth 1 -delete 2>/dev/null || true
    done
    tar -xf layers/l.tar -C tree --xattrs --xattrs-include='*' --acls --same-owner --numeric-owner
    find tree -name '.wh.*' -print0 | while IFS= read -r -d '' w; do
      [[ "$(basename "$w")" == .wh..wh..opq ]] || rm -rf "$(dirname "$w")/$(basename "$w" | sed 's/^\.wh\.//')"
      rm -f "$w"
    done
  done
  rm -f layers/l.tar
}
# Bare GNU tar normalization of the flattened tree: sorted, clamped mtimes, numeric owners.
hand_normalize() {
  tar --sort=name --mtime=@"$EPOCH" --clamp-mtime --numeric-owner --xattrs --xattrs-include='*' --acls \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf rootfs.tar -C tree .
}
export -f hand_flatten hand_normalize; export archive EPOCH
measure h_layers bash -c hand_flatten
measure h_norm bash -c hand_normalize
measure h_x tar -xf rootfs.tar -C tree2 --xattrs --xattrs-include='*' --acls --same-owner --numeric-owner
export E2FSPROGS_FAKE_TIME=$EPOCH
measure h_fs mke2fs -q -F -t ext4 -U "$(python3 -c 'import uuid; print(uuid.UUID(int=1))')" \
  -E root_owner=0:0,lazy_itable_init=0 -d tree2 root.ext4 "$((root_size / 1024))k"
unset E2FSPROGS_FAKE_TIME
hand_disk() {
  truncate -s "$disk_size" disk.img
  printf 'label: gpt\nlabel-id: 00000000-0000-4000-8000-000000000001\nfirst-lba: 34\nstart=2048, size=%d, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=00000000-0000-4000-8000-000000000002, name="root"\n' \
    "$(((root_size + 1048575) / 1048576 * 2048))" | sfdisk -q --no-reread --no-tell-kernel disk.img
  dd if=root.ext4 of=disk.img bs=1M seek=1 conv=notrunc,sparse status=none
}
export -f hand_disk; export disk_size root_size
measure h_disk bash -c hand_disk
measure h_pack bash -c 'tar --sparse --mtime=@'"$EPOCH"' --owner=0 --group=0 --numeric-owner -cf - disk.img | zstd -q -3 -o disk-img.tar.zst'
measure h_sums bash -c 'sha256sum disk-img.tar.zst > SHA256SUMS'
}

floor_route() {
mkdir -p "$work/floor"
cd "$work/floor"
measure f_cat bash -c "cat '$archive' > copy.tar"
measure f_sha openssl dgst -sha256 copy.tar
measure f_zstd zstd -q -3 -f "$work/ours/disk.img" -o disk.img.zst
}

for ((round = 1; round <= ROUNDS; round++)); do
  echo "== round $round of $ROUNDS: ours, hand route, floor" >&2
  chmod -R u+w "$work/ours" "$work/hand" "$work/floor" 2>/dev/null || true
  rm -rf "$work/ours" "$work/hand" "$work/floor"
  ours_route
  hand_route
  floor_route
done
cd "$work"
declare -A T
for key in "${!TS[@]}"; do
  T[$key]=$(python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' ${TS[$key]})
done

sum() { python3 -c "import sys; print(f'{sum(map(float, sys.argv[1:])):.2f}')" "$@"; }
max() { python3 -c "import sys; print(max(map(int, sys.argv[1:])))" "$@"; }
ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}' if b > 0 else 'n/a')" "$1" "$2"; }

ours_t=$(sum "${T[o_rootfs]}" "${T[o_fs]}" "${T[o_disk]}" "${T[o_pack]}" "${T[o_sums]}")
hand_t=$(sum "${T[h_layers]}" "${T[h_norm]}" "${T[h_x]}" "${T[h_fs]}" "${T[h_disk]}" "${T[h_pack]}" "${T[h_sums]}")
floor_t=$(sum "${T[f_cat]}" "${T[f_sha]}" "${T[f_zstd]}")
ours_m=$(max "${M[o_rootfs]}" "${M[o_fs]}" "${M[o_disk]}" "${M[o_pack]}" "${M[o_sums]}")
hand_m=$(max "${M[h_layers]}" "${M[h_norm]}" "${M[h_x]}" "${M[h_fs]}" "${M[h_disk]}" "${M[h_pack]}" "${M[h_sums]}")
floor_m=$(max "${M[f_cat]}" "${M[f_sha]}" "${M[f_zstd]}")

row() { # the ratio column only where both routes have a step
  local r=-
  [[ "$2" == 0 ]] || r=$(ratio "$2" "$5")
  printf '| %-12s | %8s s | %6s MiB | %-26s | %8s s | %6s MiB | %5s |\n' "$1" "$2" "$(($3 / 1024))" "$4" "$5" "$(($6 / 1024))" "$r"
}
echo
echo "base $(du -h --apparent-size "$archive" | cut -f1), $entries entries; median of $ROUNDS rounds; root.ext4 $((root_size >> 20)) MiB, disk $((disk_size >> 20)) MiB; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "| step         |      ours |       RSS | hand route                 |      hand |       RSS | ratio |"
echo "|---|---|---|---|---|---|---|"
row "icos-rootfs" "${T[o_rootfs]}" "${M[o_rootfs]}" "layers -x + whiteouts" "${T[h_layers]}" "${M[h_layers]}"
row "" 0 0 "GNU tar normalize (tar -c)" "${T[h_norm]}" "${M[h_norm]}"
row "(none)" 0 0 "tar -x" "${T[h_x]}" "${M[h_x]}"
row "icos-ext4" "${T[o_fs]}" "${M[o_fs]}" "mke2fs -d" "${T[h_fs]}" "${M[h_fs]}"
row "icos-disk" "${T[o_disk]}" "${M[o_disk]}" "sfdisk + dd sparse" "${T[h_disk]}" "${M[h_disk]}"
row "icos-pack" "${T[o_pack]}" "${M[o_pack]}" "tar -S | zstd -3" "${T[h_pack]}" "${M[h_pack]}"
row "icos-sums" "${T[o_sums]}" "${M[o_sums]}" "sha256sum" "${T[h_sums]}" "${M[h_sums]}"
row "total" "$ours_t" "$ours_m" "total" "$hand_t" "$hand_m"
echo
echo "floor: cat ${T[f_cat]} s + openssl dgst -sha256 ${T[f_sha]} s + zstd -3 of the disk ${T[f_zstd]} s = ${floor_t} s, peak RSS $((floor_m / 1024)) MiB"
echo "targets: whole pipeline ours/hand $(ratio "$ours_t" "$hand_t") (≤ 0.5), ours/floor $(ratio "$ours_t" "$floor_t") (≤ 1.5); icos-rootfs/bare GNU tar normalize $(ratio "${T[o_rootfs]}" "${T[h_norm]}") (≤ 1.0), icos-rootfs/(layers + normalize) $(ratio "${T[o_rootfs]}" "$(sum "${T[h_layers]}" "${T[h_norm]}")")"
echo "archives: ours $(stat -c %s "$work/ours/disk-img.tar.zst") bytes, hand $(stat -c %s "$work/hand/disk-img.tar.zst") bytes"
