#!/usr/bin/env bash
# Usage: scripts/verify-release.sh RELEASE_DIR CHECKOUT_DIR PUBKEY
#
# Verifies a signed release and rebuilds it from source:
#  1. `icos-sign verify`: exactly the release's regular files (no link followed, nothing that
#     blocks), every signature and hash, a provenance and an SBOM that describe this release;
#  2. `bazel build --config=ci //ic-os:image //toolchains/rust:tools` in CHECKOUT_DIR, then the
#     provenance and the SBOM regenerated from that rebuild with its own tools (the commit is the
#     checkout's HEAD; the repository URI, builder id and SBOM name, which no build produces,
#     are read from the release's signed provenance and SBOM);
#  3. every file of the release but the signatures compared byte for byte with the rebuilt one:
#     SHA256SUMS, every artifact it lists, the provenance and the SBOM.
# Prints "reproduced" and exits 0 only when every file matches; exits 1 when the release does
# not verify or a file differs (and runs icos-diff on the two), 2 on misuse.
# Environment: BAZEL (default bazel); ICOS_SIGN (default: icos-sign on PATH, else the one the
# checkout builds, after the build).
set -euo pipefail

die() { echo "verify-release: $*" >&2; exit 2; }
fail() { echo "verify-release: NOT reproduced: $*" >&2; exit 1; }
[[ $# -eq 3 ]] || die "usage: $0 RELEASE_DIR CHECKOUT_DIR PUBKEY (the release's minisign public key)"
release=$(cd "$1" && pwd) || die "no release directory $1"
checkout=$(cd "$2" && pwd) || die "no checkout directory $2"
pubkey=$3
[[ -f $pubkey ]] || die "no public key $pubkey"
command -v python3 >/dev/null || die "python3 is needed to read the release's provenance"

verify() {
  "$1" verify --public-key "$pubkey" "$release" || fail "the release does not verify (see above)"
}
icos_sign=${ICOS_SIGN:-$(command -v icos-sign || true)}
if [[ -n $icos_sign ]]; then
  verify "$icos_sign" # before the build: a bad release fails fast
fi

# A verifier rebuilds: it takes no result from any remote or disk cache, whatever the checkout's
# or the user's rc files configure (its own output base's local results are its own work).
(cd "$checkout" && "${BAZEL:-bazel}" build --config=ci --disk_cache= --noremote_accept_cached \
  --noremote_upload_local_results //ic-os:image //toolchains/rust:tools)
tools=$checkout/bazel-bin/toolchains/rust/tools
built=$checkout/bazel-bin/ic-os
if [[ -z $icos_sign ]]; then
  icos_sign=$tools/icos-sign
  verify "$icos_sign"
fi

# The rebuilt release: the files the release's (verified) SHA256SUMS lists, SHA256SUMS, and the
# provenance and SBOM made from them as scripts/release.sh makes them.
work=$(mktemp -d /tmp/icos-verify-release.XXXXXX)
trap 'rm -rf "$work"' EXIT
rebuilt=$work/rebuilt
mkdir "$rebuilt"
while read -r _ name; do
  [[ -f $built/$name ]] || fail "the rebuild made no $name"
  cp -L "$built/$name" "$rebuilt/$name"
done <"$release/SHA256SUMS"
cp -L "$built/SHA256SUMS" "$rebuilt/SHA256SUMS"

mapfile -t claims < <(python3 - "$release/provenance.intoto.json" "$release/sbom.spdx.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
print(p["predicate"]["buildDefinition"]["externalParameters"]["source"].get("repository", ""))
print(p["predicate"]["runDetails"]["builder"]["id"])
print(json.load(open(sys.argv[2]))["name"])
EOF
)
((${#claims[@]} == 3)) || fail "cannot read the repository, builder and SBOM name from the release"
repo_args=()
[[ -z ${claims[0]} ]] || repo_args=(--repo-uri "${claims[0]}")
commit=$(git -C "$checkout" rev-parse HEAD) || die "$checkout is not a git checkout"
if [[ -n "$(git -C "$checkout" status --porcelain)" ]]; then
  echo "verify-release: warning: $checkout has uncommitted changes; the rebuilt provenance names $commit anyway" >&2
fi
"$tools/icos-sign" provenance --build-manifest "$rebuilt/build-manifest.json" --sums "$rebuilt/SHA256SUMS" \
  --commit "$commit" "${repo_args[@]}" --builder-id "${claims[1]}" --out "$rebuilt/provenance.intoto.json"
"$tools/icos-sign" sbom --rootfs "$built/image_rootfs.tar" --rootfs-manifest "$rebuilt/rootfs.manifest.json" \
  --name "${claims[2]}" --out "$rebuilt/sbom.spdx.json"

# Every file but the signatures, byte for byte (icos-sign verify made sure there is nothing else).
released=$work/released
mkdir "$released"
differ=()
for f in "$release"/*; do
  name=${f##*/}
  [[ $name == *.minisig ]] && continue
  cp "$f" "$released/$name"
  cmp -s "$f" "$rebuilt/$name" || differ+=("$name")
done
for f in "$rebuilt"/*; do
  [[ -e $released/${f##*/} ]] || differ+=("${f##*/} (rebuilt only)")
done
if ((${#differ[@]} == 0)); then
  echo reproduced
  exit 0
fi
echo "NOT reproduced: these files differ from the rebuild: ${differ[*]}"
"$tools/icos-diff" "$released" "$rebuilt" || true
exit 1
