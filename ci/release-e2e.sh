#!/usr/bin/env bash
# Release end to end: make a signed release of the default image, verify it with stock minisign
# and sha256sum and with icos-sign, rebuild it from this checkout (verify-release.sh says
# "reproduced"), and prove that tampering and a wrong key are refused.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/icos-release-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
tools=$PWD/bazel-bin/toolchains/rust/tools
fail() { echo "release-e2e: FAILED: $*" >&2; exit 1; }

bazel build --config=ci //toolchains/rust:tools
printf 'correct horse battery staple\n' >"$work/password"
"$tools/icos-sign" keygen --secret-key "$work/release.key" --public-key "$work/release.pub" --password-file "$work/password"
"$tools/icos-sign" keygen --secret-key "$work/other.key" --public-key "$work/other.pub" --unencrypted

scripts/release.sh "$work/release" --secret-key "$work/release.key" --password-file "$work/password"

(cd "$work/release" && minisign -Vm SHA256SUMS -p "$work/release.pub" && sha256sum --check --strict SHA256SUMS) ||
  fail "stock minisign + sha256sum reject the release"
for f in build-manifest.json provenance.intoto.json sbom.spdx.json; do
  minisign -Vm "$work/release/$f" -p "$work/release.pub" >/dev/null || fail "stock minisign rejects $f"
done
"$tools/icos-sign" verify --public-key "$work/release.pub" "$work/release"
ICOS_SIGN=$tools/icos-sign scripts/verify-release.sh "$work/release" "$PWD" "$work/release.pub" | tee "$work/verify.log"
grep -qx reproduced "$work/verify.log" || fail "verify-release.sh did not say reproduced"

if "$tools/icos-sign" verify --public-key "$work/other.pub" "$work/release" 2>"$work/err"; then
  fail "a wrong public key was accepted"
fi
cp -r "$work/release" "$work/tampered"
printf 'x' >>"$work/tampered/update-img.tar.zst"
if "$tools/icos-sign" verify --public-key "$work/release.pub" "$work/tampered" 2>"$work/err"; then
  fail "a tampered artifact was accepted"
fi
grep -q update-img.tar.zst "$work/err" || fail "the tampered artifact is not named: $(cat "$work/err")"
echo "release-e2e: signed, verified with stock tools, reproduced, and tampering refused"
