#!/usr/bin/env bash
# Makes a signed release directory of the default image:
#
#   scripts/release.sh OUT_DIR --secret-key KEY [--password-file FILE] [--commit SHA] [--repo-uri URI]
#
# OUT_DIR gets the artifacts listed in SHA256SUMS (disk-img.tar.zst, update-img.tar.zst,
# update-manifest.json, build-manifest.json, rootfs.manifest.json), SHA256SUMS,
# provenance.intoto.json (SLSA v1), sbom.spdx.json (SPDX 2.3) and a minisign signature for
# SHA256SUMS, the build manifest, the update manifest (what a node's icos-upgrade checks before it
# writes anything), the provenance and the SBOM. Anyone verifies it with stock tools (every
# signature, then every hash):
#   for f in SHA256SUMS build-manifest.json update-manifest.json provenance.intoto.json sbom.spdx.json; do
#     minisign -Vm "$f" -p release.pub || exit 1; done && sha256sum -c --strict SHA256SUMS
# with `icos-sign verify --public-key release.pub OUT_DIR`, which also refuses any other file and
# checks that the provenance and SBOM describe this release, or rebuilds it from source:
#   scripts/verify-release.sh OUT_DIR CHECKOUT release.pub
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
(($#)) || usage
out=$1
shift
key="" password_args=() commit="" repo_uri="https://icos.invalid/icos.git"
while (($#)); do
  case $1 in
    --secret-key) key=$2; shift 2 ;;
    --password-file) password_args=(--password-file "$2"); shift 2 ;;
    --commit) commit=$2; shift 2 ;;
    --repo-uri) repo_uri=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$key" ]] || { echo "release: --secret-key is required" >&2; exit 2; }
[[ -n "$commit" ]] || commit=$(git rev-parse HEAD)
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  echo "release: warning: the checkout has uncommitted changes; the provenance names $commit anyway" >&2
fi

bazel build --config=ci //ic-os:image //toolchains/rust:tools
tools=bazel-bin/toolchains/rust/tools
built=bazel-bin/ic-os
mkdir -p "$out"
while read -r _ name; do
  cp -L "$built/$name" "$out/$name"
done <"$built/SHA256SUMS"
cp -L "$built/SHA256SUMS" "$out/SHA256SUMS"
chmod 0644 "$out"/*

"$tools/icos-sign" provenance --build-manifest "$out/build-manifest.json" --sums "$out/SHA256SUMS" \
  --commit "$commit" --repo-uri "$repo_uri" --out "$out/provenance.intoto.json"
"$tools/icos-sign" sbom --rootfs "$built/image_rootfs.tar" --rootfs-manifest "$out/rootfs.manifest.json" \
  --name icos-default --out "$out/sbom.spdx.json"
"$tools/icos-sign" sign --secret-key "$key" "${password_args[@]}" \
  "$out/SHA256SUMS" "$out/build-manifest.json" "$out/update-manifest.json" \
  "$out/provenance.intoto.json" "$out/sbom.spdx.json"
echo "release: $out"
ls -l "$out"
