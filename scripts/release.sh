#!/usr/bin/env bash
# Makes a signed release directory of an image (default //ic-os:image):
#
#   scripts/release.sh OUT_DIR --secret-key KEY [--password-file FILE] [--commit SHA] [--repo-uri URI]
#                      [--image LABEL]
#
# e.g. ICOS_DEBIAN_BASE=docker-archive:/tmp/base.tar@sha256:… \
#        scripts/release.sh /tmp/release-debian --image //ic-os/debian:image --secret-key release.key
#
# An image built from a `docker save` archive (base_transport "docker-archive") gets an SBOM whose
# packages name the base layer that added them, read from the archive its build manifest pins.
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
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
(($#)) || usage
out=$1
shift
key="" password_args=() commit="" repo_uri="https://icos.invalid/icos.git" image=//ic-os:image
while (($#)); do
  case $1 in
    --secret-key) key=$2; shift 2 ;;
    --password-file) password_args=(--password-file "$2"); shift 2 ;;
    --commit) commit=$2; shift 2 ;;
    --repo-uri) repo_uri=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ -n "$key" ]] || { echo "release: --secret-key is required" >&2; exit 2; }
[[ -n "$commit" ]] || commit=$(git rev-parse HEAD)
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  echo "release: warning: the checkout has uncommitted changes; the provenance names $commit anyway" >&2
fi

[[ "$image" == //*:* ]] || { echo "release: --image must be a full label (//PKG:NAME), not $image" >&2; exit 2; }
bazel build --config=ci "$image" //toolchains/rust:tools
tools=bazel-bin/toolchains/rust/tools
# Where icos_image puts its release files: bazel-bin/PKG for a target named `image`, else PKG/NAME.
pkg=${image#//}
pkg=${pkg%%:*}
name=${image##*:}
built=bazel-bin/$pkg
[[ "$name" == image ]] || built=$built/$name
[[ -f "$built/SHA256SUMS" ]] || { echo "release: $image has no release files in $built (is it an icos_image?)" >&2; exit 2; }
# The SBOM's name: icos-default, icos-debian (//ic-os/debian:image), icos-debian-NAME, …
sbom_name=default
[[ "$pkg" == ic-os ]] || sbom_name=${pkg#ic-os/}
[[ "$name" == image ]] || sbom_name=$sbom_name-$name
sbom_name=icos-$(tr -c 'A-Za-z0-9._\n-' '-' <<<"$sbom_name")
# The pinned base, when it is a `docker save` archive: its layers name what each one added.
sbom_base=()
base_uri=$(python3 -c 'import json, sys; print(next((i["uri"] for i in json.load(open(sys.argv[1]))["inputs"] if i["name"] == "base"), ""))' "$built/build-manifest.json")
if [[ "$base_uri" == docker-archive:* ]]; then
  # The manifest names the archive as the build saw it, in the execroot (external/REPO/…).
  archive=${base_uri#docker-archive:}
  archive=${archive%@*}
  [[ "$archive" == /* ]] || archive=$(bazel info output_base 2>/dev/null)/$archive
  sbom_base=(--base "docker-archive:$archive@${base_uri##*@}")
fi
mkdir -p "$out"
while read -r _ name; do
  cp -L "$built/$name" "$out/$name"
done <"$built/SHA256SUMS"
cp -L "$built/SHA256SUMS" "$out/SHA256SUMS"
chmod 0644 "$out"/*

"$tools/icos-sign" provenance --build-manifest "$out/build-manifest.json" --sums "$out/SHA256SUMS" \
  --commit "$commit" --repo-uri "$repo_uri" --out "$out/provenance.intoto.json"
"$tools/icos-sign" sbom --rootfs "$built/image_rootfs.tar" --rootfs-manifest "$out/rootfs.manifest.json" \
  --name "$sbom_name" "${sbom_base[@]}" --out "$out/sbom.spdx.json"
"$tools/icos-sign" sign --secret-key "$key" "${password_args[@]}" \
  "$out/SHA256SUMS" "$out/build-manifest.json" "$out/update-manifest.json" \
  "$out/provenance.intoto.json" "$out/sbom.spdx.json"
echo "release: $out"
ls -l "$out"
