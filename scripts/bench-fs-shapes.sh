#!/usr/bin/env bash
# Benchmark (not a test): icos-ext4, icos-vfat and icos-rootfs on the tree shapes that once cost
# them far more than their entries (issue 13), each checked with the stock checker afterwards
# (GNU tar for icos-rootfs's output).
#
#   ext4  tiny      FILES (default 1,000,000) one-byte files, 1,000 per directory
#   ext4  wide      one directory of 100,000 empty files
#   ext4  links     two directories of 64,998 and 64,999 subdirectories (EXT4_LINK_MAX)
#   vfat  deep      2,000 nested directories (refused: FAT paths hold 259 UTF-16 units)
#   vfat  deepest   129 nested directories, the deepest one-letter path FAT allows
#   vfat  forest    100 chains of 100 nested directories with a file at each level (19,900 entries)
#   vfat  flat      one directory of FLAT (default 2,000) files (fatfs scans the directory for each
#                   new name: quadratic in a directory's size, see ARCHITECTURE.md)
#   rootfs deep     a layer of 10,000 nested directories (once 172 s, 320 MiB)
#   rootfs opaque   a layer of 40,000 directories, each with a file, then an opaque marker in each
#                   (listed after the contents) and 40,000 more in one directory of 40,000 files
#   rootfs million  a layer of FILES (default 1,000,000) one-byte files, 1,000 per directory
#                   (issue 16: peak RSS under 400 MiB; once 830 MiB, 277 MiB since the manifest
#                   streams and entries shrank, 307 MiB with the layer mapped in place: 32 MiB
#                   windows of its pages stay resident)
#
#   scripts/bench-fs-shapes.sh                    # all shapes
#   SHAPES="vfat-deep vfat-forest" scripts/bench-fs-shapes.sh
#   OLD=/path/to/old/release scripts/bench-fs-shapes.sh   # also time older icos-ext4/icos-vfat
#   KEEP=1 scripts/bench-fs-shapes.sh             # keep the work directory
#
# Reports wall time and peak RSS (/usr/bin/time). Target: every shape under 2 s except `tiny`
# (4 GiB of blocks, one per file: bounded by the disk), `flat` (bounded by fatfs) and `million`
# (a 1 GiB layer in, a 1 GiB tar out).
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCH=1700000000
FILES=${FILES:-1000000}
FLAT=${FLAT:-2000}
SHAPES=${SHAPES:-"ext4-tiny ext4-wide ext4-links vfat-deep vfat-deepest vfat-forest vfat-flat rootfs-deep rootfs-opaque rootfs-million"}

[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
for t in e2fsck:e2fsprogs fsck.fat:dosfstools python3:python3; do
  command -v "${t%%:*}" >/dev/null || { echo "missing ${t%%:*}: apt-get install ${t##*:}" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-fs-shapes.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

echo "== building icos-ext4, icos-vfat and icos-rootfs (release)" >&2
(cd rs && cargo build --release --quiet -p icos-tools --bin icos-ext4 --bin icos-vfat --bin icos-rootfs)
bin=${CARGO_TARGET_DIR:-$PWD/rs/target}/release

# gen SHAPE OUT: writes the shape's rootfs tar (ustar, sorted, ./ names); prints its entry count.
gen() {
  python3 - "$1" "$2" "$FILES" "$FLAT" "$EPOCH" <<'PY'
import sys, tarfile

shape, out, files, flat, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def header(name, size=0):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uname, ti.gname = epoch, "", ""
    if name.endswith("/"):
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.size, ti.mode = size, 0o644
    return ti.tobuf(format=tarfile.PAX_FORMAT)  # ustar, with a PAX path where it is too long

def entries():
    yield "./", 0
    if shape in ("ext4-tiny", "rootfs-million"):
        for d in range(files // 1000):
            yield f"./d{d:04d}/", 0
            for f in range(1000):
                yield f"./d{d:04d}/f{f:03d}", 1
    elif shape == "ext4-wide":
        yield "./big/", 0
        for i in range(100_000):
            yield f"./big/f{i:06d}", 0
    elif shape == "ext4-links":
        for parent, n in (("at", 64_998), ("over", 64_999)):
            yield f"./{parent}/", 0
            for i in range(n):
                yield f"./{parent}/{i:05d}/", 0
    elif shape in ("vfat-deep", "vfat-deepest"):
        path = "."
        for _ in range(2000 if shape == "vfat-deep" else 129):
            path += "/d"
            yield path + "/", 0
    elif shape == "vfat-forest":
        # Sorted bytewise: at each level the file "f" comes before the directory "n".
        def chain(prefix, level):
            if level == 100:
                return
            yield f"{prefix}/f", 2
            yield f"{prefix}/n/", 0
            yield from chain(prefix + "/n", level + 1)
        for c in range(100):
            yield f"./c{c:03d}/", 0
            yield from chain(f"./c{c:03d}", 1)
    elif shape == "vfat-flat":
        for i in range(flat):
            yield f"./file-with-a-long-name-{i:06d}.txt", 2
    elif shape == "rootfs-deep":
        path = "."
        for _ in range(10_000):
            path += "/d"
            yield path + "/", 0
    elif shape == "rootfs-opaque":
        # A layer, not a rootfs tar: markers after the contents they would hide.
        for i in range(40_000):
            yield f"./d{i:05d}/", 0
            yield f"./d{i:05d}/f", 1
        for i in range(40_000):
            yield f"./d{i:05d}/.wh..wh..opq", 0
        yield "./same/", 0
        for i in range(40_000):
            yield f"./same/f{i:05d}", 1
        for i in range(40_000):
            yield "./same/.wh..wh..opq", 0

count = 0
with open(out, "wb") as t:
    for name, size in entries():
        t.write(header(name, size))
        if size:
            t.write(b"x" * size + b"\0" * (512 - size))
        count += 1
    t.write(b"\0" * 1024)
print(count)
PY
}

declare -A T M R
measure() { # measure KEY CMD...: records wall seconds, peak RSS (KiB) and exit status
  local key=$1; shift
  local rc=0
  /usr/bin/time -f '%e %M' -o "$work/time.$key" "$@" >"$work/out.$key" 2>&1 || rc=$?
  read -r T[$key] M[$key] < <(tail -1 "$work/time.$key")
  R[$key]=$rc
}

check() { # check SHAPE IMAGE: the stock checker's verdict
  case $1 in
    ext4-*) e2fsck -fn "$2" >/dev/null 2>&1 && echo "e2fsck -fn clean" || echo "e2fsck -fn FAILED" ;;
    vfat-*) fsck.fat -n "$2" >/dev/null 2>&1 && echo "fsck.fat -n clean" || echo "fsck.fat -n FAILED" ;;
    rootfs-*) tar -tf "$2" >/dev/null 2>&1 && echo "GNU tar reads it ($(tar -tf "$2" | wc -l) entries)" || echo "GNU tar FAILED" ;;
  esac
}

run_tool() { # run_tool BIN_DIR SHAPE TAR IMAGE
  case $2 in
    ext4-*) "$1/icos-ext4" --rootfs "$3" --out "$4" --seed bench --source-date-epoch "$EPOCH" ;;
    vfat-*) "$1/icos-vfat" --tree "$3" --out "$4" --seed bench --source-date-epoch "$EPOCH" --size 256MiB ;;
    rootfs-*)
      printf '[[layer]]\nsource = "%s"\n' "$(basename "$3")" >"$3.toml"
      "$1/icos-rootfs" --spec "$3.toml" --out "$4" --manifest "$4.json" --source-date-epoch "$EPOCH" ;;
  esac
}
export -f run_tool
export EPOCH RUST_BACKTRACE=0  # refusals print their message, not a backtrace

printf '%-14s %10s %10s %9s  %s\n' shape entries "wall (s)" "RSS MiB" result
for shape in $SHAPES; do
  tar=$work/$shape.tar
  entries=$(gen "$shape" "$tar")
  for side in new ${OLD:+old}; do
    dir=$bin; [[ $side == old ]] && dir=$OLD
    [[ -x $dir/icos-${shape%%-*} ]] || continue
    img=$work/$shape.$side.img
    measure "$shape.$side" bash -c 'run_tool "$@"' _ "$dir" "$shape" "$tar" "$img"
    if [[ ${R[$shape.$side]} == 0 ]]; then
      verdict=$(check "$shape" "$img")
    else
      verdict="refused: $(grep -v '^$' "$work/out.$shape.$side" | tail -1 | sed 's/^ *//' | cut -c1-60)…$(grep -o 'has a path of [0-9]* UTF-16 units' "$work/out.$shape.$side" || true)"
    fi
    printf '%-14s %10s %10s %9s  %s\n' "$shape${OLD:+ ($side)}" "$entries" "${T[$shape.$side]}" \
      "$(( ${M[$shape.$side]} / 1024 ))" "$verdict"
    rm -f "$img" "$img.json"
  done
  rm -f "$tar" "$tar.toml"
done
