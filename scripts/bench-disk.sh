#!/usr/bin/env bash
# Benchmark (not a test): the tool route from a rootfs tar to a released disk image
#   icos-ext4 → icos-disk → icos-pack → icos-sums
# against the hand-written route with Debian's tools
#   tar -x + mke2fs -d → sfdisk + dd conv=notrunc,sparse → tar -S | zstd -T0 → sha256sum
# and against the floor (cat of the tar to a file + sha256sum), side by side in one run.
# Both routes compress at zstd level 3 (icos-pack's level). Reports wall time and peak RSS per step (/usr/bin/time -f '%e %M') and the ratios.
#
#   scripts/bench-disk.sh                 # generate ~1 GiB / 50,000 files, build release, measure
#   scripts/bench-disk.sh rootfs.tar      # measure on an existing rootfs tar
#   KEEP=1 scripts/bench-disk.sh          # keep the work directory for inspection
#   FILES=5000 TOTAL_MIB=100 scripts/bench-disk.sh   # a quick run
#
# The page cache is not dropped: every route reads the same warm tar. Run on an idle machine for
# figures worth comparing; on a shared one, compare ratios from the same run only.
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCH=1700000000
SEED=bench
FILES=${FILES:-50000}
TOTAL_MIB=${TOTAL_MIB:-1024}

need() { command -v "$1" >/dev/null || { echo "missing $1: apt-get install $2" >&2; exit 1; }; }
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }
need mke2fs e2fsprogs; need sfdisk fdisk; need zstd zstd; need python3 python3

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-disk.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

echo "== building the tools (release)" >&2
(cd rs && cargo build --release --quiet -p icos-tools \
  --bin icos-ext4 --bin icos-disk --bin icos-pack --bin icos-sums)
bin=$PWD/rs/target/release

if [[ $# -ge 1 ]]; then
  tar_in=$(realpath "$1")
else
  tar_in=$work/rootfs.tar
  echo "== generating a ${TOTAL_MIB} MiB, ${FILES}-file rootfs tar (deterministic)" >&2
  python3 - "$tar_in" "$FILES" "$TOTAL_MIB" "$EPOCH" <<'PY'
import io, random, sys, tarfile

out, files, total_mib, epoch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(20240601)
# contents: slices of a pool that is half random, half text-like (compressible)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
text = b" ".join(rng.choice(words) for _ in range(6 << 20))[: 32 << 20]
pool = rng.randbytes(32 << 20) + text
raw = [rng.choice([rng.randint(100, 8192)] * 9 + [rng.randint(64 << 10, 4 << 20)]) for _ in range(files)]
scale = (total_mib << 20) / sum(raw)
sizes = [max(1, int(s * scale)) for s in raw]
per_dir = 100
names = []
for i in range(files):
    names.append(f"usr/share/d{i // per_dir:04d}/f{i % per_dir:03d}")
dirs = sorted({"usr", "usr/share"} | {n.rsplit("/", 1)[0] for n in names})
entries = sorted([(d, None) for d in dirs] + list(zip(names, sizes)), key=lambda e: e[0].encode())

def info(name, size):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = epoch, 0, 0, "", ""
    if size is None:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.size, ti.mode = size, 0o644
    return ti

with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
    t.addfile(info(".", None))
    for name, size in entries:
        if size is None:
            t.addfile(info("./" + name, None))
        else:
            off = rng.randrange(0, len(pool) - size) if size < len(pool) else 0
            t.addfile(info("./" + name, size), io.BytesIO((pool * (1 + size // len(pool)))[off:off + size]))
PY
fi
echo "== input: $(du -h --apparent-size "$tar_in" | cut -f1) $(tar -tf "$tar_in" | wc -l) entries" >&2

declare -A T M
measure() { # measure KEY CMD...: runs CMD, records wall seconds and peak RSS (KiB)
  local key=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time.$key" "$@" >/dev/null
  read -r T[$key] M[$key] <"$work/time.$key"
}

echo "== tool route" >&2
mkdir -p "$work/tool"
cd "$work/tool"
measure t_fs "$bin/icos-ext4" --rootfs "$tar_in" --out root.ext4 --seed "$SEED" --source-date-epoch "$EPOCH" --size auto
root_size=$(stat -c %s root.ext4)
cat >layout.toml <<EOF
[[partition]]
name = "root"
type = "linux-root-x86-64"
size = "auto"
image = "root.ext4"
EOF
measure t_disk "$bin/icos-disk" --layout layout.toml --seed "$SEED" --out disk.img --report-out disk.json
measure t_pack "$bin/icos-pack" --out disk-img.tar.zst --source-date-epoch "$EPOCH" disk.img
measure t_sums "$bin/icos-sums" --out SHA256SUMS disk-img.tar.zst
disk_size=$(stat -c %s disk.img)

echo "== hand route" >&2
mkdir -p "$work/hand/tree"
cd "$work/hand"
measure h_x tar -xf "$tar_in" -C tree
export E2FSPROGS_FAKE_TIME=$EPOCH
measure h_fs mke2fs -q -F -t ext4 -U "$(python3 -c 'import uuid; print(uuid.UUID(int=1))')" \
  -E root_owner=0:0,lazy_itable_init=0 -d tree root.ext4 "$((root_size / 1024))k"
unset E2FSPROGS_FAKE_TIME
hand_disk() {
  truncate -s "$disk_size" disk.img
  printf 'label: gpt\nlabel-id: 00000000-0000-4000-8000-000000000001\nfirst-lba: 34\nstart=2048, size=%d, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=00000000-0000-4000-8000-000000000002, name="root"\n' \
    "$(((root_size + 1048575) / 1048576 * 2048))" | sfdisk -q --no-reread --no-tell-kernel disk.img
  dd if=root.ext4 of=disk.img bs=1M seek=1 conv=notrunc,sparse status=none
}
export -f hand_disk; export disk_size root_size
measure h_disk bash -c hand_disk
measure h_pack bash -c 'tar --sparse --mtime=@'"$EPOCH"' --owner=0 --group=0 --numeric-owner -cf - disk.img | zstd -q -T0 -3 -o disk-img.tar.zst'
measure h_sums bash -c 'sha256sum disk-img.tar.zst > SHA256SUMS'

echo "== floor" >&2
mkdir -p "$work/floor"
cd "$work/floor"
measure f_cat bash -c "cat '$tar_in' > copy.tar"
measure f_sum sha256sum copy.tar

sum() { python3 -c "import sys; print(f'{sum(map(float, sys.argv[1:])):.2f}')" "$@"; }
max() { python3 -c "import sys; print(max(map(int, sys.argv[1:])))" "$@"; }
ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}' if b > 0 else 'n/a')" "$1" "$2"; }

tool_t=$(sum "${T[t_fs]}" "${T[t_disk]}" "${T[t_pack]}" "${T[t_sums]}")
hand_t=$(sum "${T[h_x]}" "${T[h_fs]}" "${T[h_disk]}" "${T[h_pack]}" "${T[h_sums]}")
floor_t=$(sum "${T[f_cat]}" "${T[f_sum]}")
tool_m=$(max "${M[t_fs]}" "${M[t_disk]}" "${M[t_pack]}" "${M[t_sums]}")
hand_m=$(max "${M[h_x]}" "${M[h_fs]}" "${M[h_disk]}" "${M[h_pack]}" "${M[h_sums]}")
floor_m=$(max "${M[f_cat]}" "${M[f_sum]}")

row() { printf '%-22s %9s s %9s MiB   %-28s %9s s %9s MiB\n' "$1" "$2" "$(($3 / 1024))" "$4" "$5" "$(($6 / 1024))"; }
echo
echo "input $(du -h --apparent-size "$tar_in" | cut -f1), root.ext4 $((root_size >> 20)) MiB, disk $((disk_size >> 20)) MiB, $(nproc) cores"
printf '%-22s %11s %13s   %-28s %11s %13s\n' "tool route" "wall" "peak RSS" "hand route" "wall" "peak RSS"
row "(none)" 0 0 "tar -x" "${T[h_x]}" "${M[h_x]}"
row "icos-ext4" "${T[t_fs]}" "${M[t_fs]}" "mke2fs -d" "${T[h_fs]}" "${M[h_fs]}"
row "icos-disk" "${T[t_disk]}" "${M[t_disk]}" "sfdisk + dd sparse" "${T[h_disk]}" "${M[h_disk]}"
row "icos-pack" "${T[t_pack]}" "${M[t_pack]}" "tar -S | zstd -T0 -3" "${T[h_pack]}" "${M[h_pack]}"
row "icos-sums" "${T[t_sums]}" "${M[t_sums]}" "sha256sum" "${T[h_sums]}" "${M[h_sums]}"
row "total" "$tool_t" "$tool_m" "total" "$hand_t" "$hand_m"
echo
echo "floor (cat + sha256sum of the tar): ${floor_t} s, peak RSS $((floor_m / 1024)) MiB"
echo "ratios: tool/hand time $(ratio "$tool_t" "$hand_t"), tool/floor time $(ratio "$tool_t" "$floor_t"), hand/floor time $(ratio "$hand_t" "$floor_t")"
echo "        tool/hand peak RSS $(ratio "$tool_m" "$hand_m")"
echo "archives: tool $(stat -c %s "$work/tool/disk-img.tar.zst") bytes, hand $(stat -c %s "$work/hand/disk-img.tar.zst") bytes"
