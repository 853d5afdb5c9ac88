#!/usr/bin/env bash
# Benchmark (not a test): icos-rootfs against GNU tar doing the same normalization, on a synthetic
# base of about 1 GiB in 50,000 files in 3 layers (an OCI layout, uncompressed layers so that the
# comparison measures tar handling, not gzip). Reports wall time and peak RSS side by side.
#
#   scripts/bench-rootfs.sh            # generate, build release, measure (a few minutes, 2 cores)
#   KEEP=1 scripts/bench-rootfs.sh     # keep the work directory for inspection
#
# Targets: time ratio icos-rootfs / GNU tar <= 1.0, icos-rootfs peak RSS < 256 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCH=1700000000
FILES=${FILES:-50000}
TOTAL_MIB=${TOTAL_MIB:-1024}

if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time (/usr/bin/time)" >&2
  apt-get install -y time >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-rootfs.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

echo "== building icos-rootfs (release)" >&2
(cd rs && cargo build --release --quiet -p icos-tools --bin icos-rootfs)
bin=$PWD/rs/target/release/icos-rootfs

echo "== generating a ${TOTAL_MIB} MiB, ${FILES}-file base in 3 layers (deterministic)" >&2
python3 - "$work/layout" "$FILES" "$TOTAL_MIB" >"$work/ref" <<'PY'
import hashlib, io, json, os, random, sys, tarfile

out, files, total_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20240601)
pool = rng.randbytes(64 << 20)            # file contents are slices of one pseudo-random pool
target = total_mib << 20
# sizes: mostly small files, a few large ones, scaled to the total
raw = [rng.choice([rng.randint(100, 8192)] * 9 + [rng.randint(64 << 10, 4 << 20)]) for _ in range(files)]
scale = target / sum(raw)
sizes = [max(1, int(s * scale)) for s in raw]
splits = [int(files * 0.6), int(files * 0.9), files]  # 60% / 30% / 10% of the files per layer
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)

def blob(data_or_path, is_path=False):
    h = hashlib.sha256()
    if is_path:
        with open(data_or_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        os.rename(data_or_path, f"{out}/blobs/sha256/{digest}")
        return digest, os.path.getsize(f"{out}/blobs/sha256/{digest}")
    h.update(data_or_path)
    digest = h.hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data_or_path)
    return digest, len(data_or_path)

layers, start = [], 0
for n, end in enumerate(splits):
    tmp = f"{out}/layer{n}.tmp"
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        dirs = set()
        for i in range(start, end):
            d = f"usr/share/d{i // 50 % 1000:04d}"
            if d not in dirs:
                dirs.add(d)
                ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1650000000
                tar.addfile(ti)
            size = sizes[i]
            off = (i * 7919) % (len(pool) - size) if size < len(pool) else 0
            ti = tarfile.TarInfo(f"{d}/file{i:06d}.bin"); ti.size = size; ti.mode = 0o644; ti.mtime = 1650000000 + i
            tar.addfile(ti, io.BytesIO(pool[off:off + size]))
    digest, size = blob(tmp, is_path=True)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest}", "size": size})
    start = end

config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
cd, cs = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{cd}", "size": cs},
                       "layers": layers}).encode()
md, ms = blob(manifest)
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                  "digest": f"sha256:{md}", "size": ms}]}, f)
with open(f"{out}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(f"{out}/layers", "w") as f:
    f.write("\n".join(f"{out}/blobs/sha256/{l['digest'][7:]}" for l in layers) + "\n")
print(f"oci:{out}@sha256:{md}")
PY
ref=$(cat "$work/ref")
du -sh "$work/layout" >&2

measure() { # label, command...: prints "seconds peak_kib"
  local label=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$work/time.$label" "$@" >/dev/null
  cat "$work/time.$label"
}

icos() {
  rm -rf "$work/icos" && mkdir "$work/icos"
  measure icos "$bin" --base "$ref" --source-date-epoch "$EPOCH" \
    --out "$work/icos/rootfs.tar" --manifest "$work/icos/rootfs.manifest.json"
}

# $1 = "sync" to fsync the output like icos-rootfs does (AtomicFile::commit), for equal durability.
gnutar() {
  rm -rf "$work/gnu" && mkdir -p "$work/gnu/tree"
  measure gnu sh -c '
    set -e
    while read -r layer; do tar -xf "$layer" -C "$1/tree"; done < "$2"
    tar --sort=name --mtime=@"$3" --clamp-mtime --owner=0 --group=0 --numeric-owner \
        -cf "$1/rootfs.tar" -C "$1/tree" .
    if [ "$4" = sync ]; then sync "$1/rootfs.tar"; fi
  ' sh "$work/gnu" "$work/layout/layers" "$EPOCH" "${1:-}"
}

# The machine is shared: take the best of ROUNDS alternating runs (time) and the highest RSS.
ROUNDS=${ROUNDS:-3}
echo "== measuring ($ROUNDS rounds, alternating; best time, highest RSS)" >&2
it=999999; gt=999999; st=999999; im=0; gm=0
for _ in $(seq "$ROUNDS"); do
  read -r t m < <(icos);        it=$(python3 -c "print(min($it, $t))"); im=$(( m > im ? m : im ))
  read -r t m < <(gnutar);      gt=$(python3 -c "print(min($gt, $t))"); gm=$(( m > gm ? m : gm ))
  read -r t m < <(gnutar sync); st=$(python3 -c "print(min($st, $t))")
done

entries=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['entries']))" "$work/icos/rootfs.manifest.json")
size=$(stat -c %s "$work/icos/rootfs.tar")
printf '\n%-28s %10s %14s\n' "" "wall (s)" "peak RSS (MiB)"
printf '%-28s %10s %14s\n' "icos-rootfs" "$it" "$(( im / 1024 ))"
printf '%-28s %10s %14s\n' "GNU tar extract + --sort" "$gt" "$(( gm / 1024 ))"
printf '%-28s %10s %14s\n' "  same, + fsync of output" "$st" "$(( gm / 1024 ))"
python3 -c "
r = $it / $gt
print(f'\nratio icos-rootfs / GNU tar: {r:.2f} (target <= 1.0: {\"met\" if r <= 1.0 else \"NOT met\"})')
print(f'ratio icos-rootfs / GNU tar + fsync (same durability): {$it / $st:.2f}')
print(f'icos-rootfs peak RSS: {$im / 1024:.0f} MiB (target < 256 MiB: {\"met\" if $im < 256 * 1024 else \"NOT met\"})')
print(f'output: $entries entries, {$size / 2**20:.0f} MiB')
"
