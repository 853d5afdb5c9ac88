#!/usr/bin/env bash
# CI's Debian image job (issue 16): a real Debian systemd image from a real `docker save` base.
#  1. scripts/make-debian-base.sh: mmdebstrap bookworm + docker import + one docker build + docker
#     save (needs root, Debian's mirror and a Docker daemon);
#  2. bazel build //ic-os/debian:image with ICOS_DEBIAN_BASE = the pin the script printed; the build
#     manifest must record that pin;
#  3. bazel test //ic-os/debian:boot_test: systemd reaches multi-user.target under QEMU + OVMF on
#     the verified read-only root, the docker layer's unit prints its marker;
#  4. a signed release of the image (scripts/release.sh --image //ic-os/debian:image) verified with
#     stock minisign and sha256sum; its SBOM: pyspdxtools validates it; its Debian packages are exactly those
#     dpkg-query lists from the image's own status database (name, version, architecture, purl);
#     libcap2-bin, which the docker build layer installed, is annotated as added by that layer and
#     e2fsprogs, which it purged, as removed;
#  5. scripts/two-builders.sh --target //ic-os/debian:image: a second builder from nothing agrees.
# Prints each step's wall time (CI's limit is 90 minutes).
#
#   ci/debian-image.sh [--base REFERENCE] [--skip-two-builders]
#     --base REFERENCE     reuse a base made earlier (the line make-debian-base.sh printed);
#                          default: $ICOS_DEBIAN_BASE when set, else a new base
#     --skip-two-builders  leave step 5 to ci/determinism.sh, which adds the Debian image to its
#                          builder B when ICOS_DEBIAN_BASE is set (the tools then compile once)
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh

base=${ICOS_DEBIAN_BASE:-}
two_builders=true
while (($#)); do
  case $1 in
    --base) base=$2; shift 2 ;;
    --skip-two-builders) two_builders=false; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "debian-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/icos-debian-image.XXXXXX)
# Builder B (another user) reads the archive.
chmod 0755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
times=()
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  times+=("$name=$((SECONDS - start))s")
  echo "debian-image: $name took $((SECONDS - start)) s"
}
fail() { echo "debian-image: FAILED: $*" >&2; exit 1; }

if [[ -z "$base" ]]; then
  make_base() { scripts/make-debian-base.sh "$work/base.tar" | tee "$work/base.ref"; }
  timed make-base make_base
  base=$(tail -n 1 "$work/base.ref")
fi
export ICOS_DEBIAN_BASE=$base
echo "debian-image: ICOS_DEBIAN_BASE=$ICOS_DEBIAN_BASE"

timed bazel-build bazel build "${ci_flags[@]}" //ic-os/debian:image //toolchains/rust:tools
release=bazel-bin/ic-os/debian
pinned=${base##*@}
python3 - "$release/build-manifest.json" "$pinned" <<'EOF' || fail "the build manifest does not record the pinned base"
import json, sys
inputs = {i["name"]: i for i in json.load(open(sys.argv[1]))["inputs"]}
uri, config = inputs["base"]["uri"], inputs["base:config"]["digest"]
assert uri.startswith("docker-archive:") and uri.endswith("@" + sys.argv[2]), uri
assert config == sys.argv[2], config
print("debian-image: the build manifest records the pinned base", uri)
EOF

timed boot-test bazel test "${ci_flags[@]}" --test_output=errors //ic-os/debian:boot_test
sed 's/\x1b\[[0-9;]*m//g; s/\r//g' bazel-testlogs/ic-os/debian/boot_test/test.log | grep -E '^PASS|ICOS-|Reached target .*Multi-User'

# The SBOM, checked against stock tools: pyspdxtools for SPDX 2.3, dpkg-query for the packages.
spdx_venv=${ICOS_SPDX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/icos/spdx-venv}
[[ -x "$spdx_venv/bin/pyspdxtools" ]] || fail "pyspdxtools missing in $spdx_venv: run scripts/setup.sh"
sbom_check() {
  local tools=bazel-bin/toolchains/rust/tools signed=$work/release
  "$tools/icos-sign" keygen --secret-key "$work/release.key" --public-key "$work/release.pub" --unencrypted >/dev/null
  scripts/release.sh "$signed" --image //ic-os/debian:image --secret-key "$work/release.key" >"$work/release.log" 2>&1 ||
    { cat "$work/release.log" >&2; fail "scripts/release.sh could not release the Debian image"; }
  (cd "$signed" && for f in SHA256SUMS build-manifest.json update-manifest.json provenance.intoto.json sbom.spdx.json; do
    minisign -Vqm "$f" -p "$work/release.pub" || exit 1
  done && sha256sum -c --strict --quiet SHA256SUMS) || fail "stock minisign and sha256sum do not verify the Debian release"
  echo "debian-image: the signed release verifies with stock minisign and sha256sum"
  cp "$signed/sbom.spdx.json" "$work/sbom.spdx.json"
  "$spdx_venv/bin/pyspdxtools" -i "$work/sbom.spdx.json" || fail "pyspdxtools rejects the SBOM"
  mkdir -p "$work/dpkg"
  tar -xOf "$release/image_rootfs.tar" ./var/lib/dpkg/status >"$work/dpkg/status"
  dpkg-query --admindir="$work/dpkg" -W -f='${db:Status-Abbrev}|${Package}|${Version}|${Architecture}\n' |
    awk -F'|' '$1 ~ /^ii/ { print $2 "|" $3 "|" $4 }' | sort >"$work/dpkg.txt"
  python3 -c 'import json, sys; [print(l) for l in json.load(open(sys.argv[1]))["inputs"] if l["name"].startswith("base:layer:")]' \
    "$release/build-manifest.json" >"$work/layers.txt"
  python3 - "$work/sbom.spdx.json" "$work/dpkg.txt" "$work/layers.txt" <<'EOF'
import json, sys, urllib.parse
doc = json.load(open(sys.argv[1]))
want = set(open(sys.argv[2]).read().split())
got = set()
for p in doc["packages"]:
    if p["SPDXID"] == "SPDXRef-Package-rootfs":
        continue
    purls = [r["referenceLocator"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"]
    assert len(purls) == 1, (p["name"], purls)
    arch = urllib.parse.unquote(purls[0].split("?arch=")[1])
    expected = "pkg:deb/debian/%s@%s?arch=%s" % tuple(urllib.parse.quote(x, safe="") for x in (p["name"], p["versionInfo"], arch))
    assert purls[0] == expected, (purls[0], expected)
    got.add("%s|%s|%s" % (p["name"], p["versionInfo"], arch))
missing, extra = sorted(want - got), sorted(got - want)
if missing or extra:
    sys.exit("debian-image: SBOM packages differ from dpkg-query: missing %s, extra %s" % (missing[:10], extra[:10]))
# The docker build layer (the last one) installed libcap2-bin and purged e2fsprogs.
layer = "base layer %d (" % (len([1 for _ in open(sys.argv[3])]) - 1)
notes = {p["name"]: [a["comment"] for a in p.get("annotations", [])] for p in doc["packages"]}
added = sorted(n for n, c in notes.items() if any(x.startswith("added by ") for x in c))
assert added == ["libcap2-bin"], added
assert notes["libcap2-bin"][0].startswith("added by " + layer), notes["libcap2-bin"]
removed = [c for c in notes["icos-debian"] if c.startswith("removed by ")]
assert len(removed) == 1 and removed[0].startswith("removed by " + layer) and "pkg:deb/debian/e2fsprogs@" in removed[0], removed
print("debian-image: SBOM annotations: libcap2-bin added and e2fsprogs removed by the docker build layer")
print("debian-image: the SBOM lists exactly the %d installed dpkg packages (name, version, arch, purl); pyspdxtools: valid" % len(got))
EOF
}
timed sbom sbom_check

if $two_builders; then
  timed two-builders scripts/two-builders.sh --target //ic-os/debian:image
fi
echo "debian-image: ok; times: ${times[*]}"
