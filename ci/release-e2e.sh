#!/usr/bin/env bash
# Release end to end: make a signed release of the default image, verify it with stock minisign
# and sha256sum and with icos-sign, rebuild it from this checkout (verify-release.sh says
# "reproduced"), and prove that hostile releases are refused, each with a clear message, by both
# `icos-sign verify` and verify-release.sh: a tampered artifact, a wrong key, a provenance or SBOM
# that is a symbolic link, a directory or a FIFO, a provenance or SBOM of another release signed
# by the same key, and a release without its provenance, SBOM and their signatures; and that a
# validly signed provenance or SBOM the rebuild does not make is not "reproduced".
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/icos-release-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
tools=$PWD/bazel-bin/toolchains/rust/tools
fail() { echo "release-e2e: FAILED: $*" >&2; exit 1; }

bazel build --config=ci //toolchains/rust:tools
printf 'correct horse battery staple\n' >"$work/password"
keygen_out=$("$tools/icos-sign" keygen --secret-key "$work/release.key" --public-key "$work/release.pub" --password-file "$work/password")
key_id=$(sed -n 's/^key ID \([0-9A-F]\{16\}\): .*/\1/p' <<<"$keygen_out")
[[ -n "$key_id" ]] || fail "icos-sign keygen did not print a key ID: $keygen_out"
"$tools/icos-sign" keygen --secret-key "$work/other.key" --public-key "$work/other.pub" --unencrypted

scripts/release.sh "$work/release" --secret-key "$work/release.key" --password-file "$work/password"

# README's stock recipe: every signature, then every hash.
(cd "$work/release" &&
  for f in SHA256SUMS build-manifest.json provenance.intoto.json sbom.spdx.json; do
    minisign -Vm "$f" -p "$work/release.pub" >/dev/null || exit 1
  done && sha256sum -c --strict SHA256SUMS) || fail "stock minisign + sha256sum reject the release"
# icos-sign verify's success lines, exactly: the directory, how many files SHA256SUMS lists, the
# key, and the signed metadata.
"$tools/icos-sign" verify --public-key "$work/release.pub" "$work/release" >"$work/verified"
printf 'verified %s: %d files listed in SHA256SUMS, signed by key ID %s\nalso signed: %s\n' \
  "$work/release" "$(wc -l <"$work/release/SHA256SUMS")" "$key_id" \
  "build-manifest.json, provenance.intoto.json, sbom.spdx.json, update-manifest.json" >"$work/verified.expected"
diff "$work/verified.expected" "$work/verified" >"$work/verified.diff" ||
  fail "icos-sign verify's success lines (> printed, < expected): $(cat "$work/verified.diff")"
ICOS_SIGN=$tools/icos-sign scripts/verify-release.sh "$work/release" "$PWD" "$work/release.pub" | tee "$work/verify.log"
grep -qx reproduced "$work/verify.log" || fail "verify-release.sh did not say reproduced"

# refuse WHAT DIR MESSAGE: both verifiers refuse DIR, saying MESSAGE, and nothing blocks.
refuse() {
  local what=$1 dir=$2 expect=$3
  if timeout 120 "$tools/icos-sign" verify --public-key "$work/release.pub" "$dir" >"$work/out" 2>&1; then
    fail "$what: accepted by icos-sign verify"
  fi
  grep -qF -- "$expect" "$work/out" || fail "$what: icos-sign verify does not say \"$expect\": $(cat "$work/out")"
  if ICOS_SIGN=$tools/icos-sign timeout 1200 scripts/verify-release.sh "$dir" "$PWD" "$work/release.pub" >"$work/out" 2>&1; then
    fail "$what: accepted by verify-release.sh"
  fi
  ! grep -qx reproduced "$work/out" || fail "$what: verify-release.sh said reproduced"
  grep -qF -- "$expect" "$work/out" || fail "$what: verify-release.sh does not say \"$expect\": $(cat "$work/out")"
  echo "release-e2e: refused $what: $(grep -F -- "$expect" "$work/out" | head -1 | sed 's/^ *- //')"
}
# A fresh copy of the release to damage.
case_dir() {
  rm -rf "$work/case" "$work/outside"
  cp -r "$work/release" "$work/case"
  mkdir "$work/outside"
}

if "$tools/icos-sign" verify --public-key "$work/other.pub" "$work/release" 2>"$work/err"; then
  fail "a wrong public key was accepted"
fi
grep -q "wrong key" "$work/err" || fail "a wrong key is not called one: $(cat "$work/err")"
case_dir
printf 'x' >>"$work/case/update-img.tar.zst"
refuse "a tampered artifact" "$work/case" "update-img.tar.zst: sha256 mismatch"

for name in provenance.intoto.json sbom.spdx.json; do
  case_dir
  mv "$work/case/$name" "$work/outside/$name"
  ln -s "$work/outside/$name" "$work/case/$name"
  refuse "$name as a symbolic link to the genuine file" "$work/case" "$name is a symbolic link, which is not followed"
  rm "$work/case/$name"
  mkdir "$work/case/$name"
  refuse "$name as a directory" "$work/case" "$name is a directory, not a regular file"
  rmdir "$work/case/$name"
  mkfifo "$work/case/$name"
  refuse "$name as a FIFO" "$work/case" "$name is a FIFO (named pipe), not a regular file"
done

# Another release signed by the same key: another update image (and so another build manifest,
# SHA256SUMS and provenance) and another root filesystem tar (and so another SBOM). It verifies
# on its own; its provenance or SBOM in this release must not.
other=$work/other
cp -r "$work/release" "$other"
rm "$other"/*.minisig "$other/provenance.intoto.json" "$other/sbom.spdx.json"
printf 'another build' >>"$other/update-img.tar.zst"
cp bazel-bin/ic-os/image_rootfs.tar "$work/other-rootfs.tar"
chmod u+w "$work/other-rootfs.tar"
head -c 512 /dev/zero >>"$work/other-rootfs.tar" # past the end-of-archive blocks: another tar
python3 - "$other" "$work/other-rootfs.tar" <<'EOF'
import hashlib, json, os, sys
d, tar = sys.argv[1], sys.argv[2]
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
rm = json.load(open(f"{d}/rootfs.manifest.json"))
rm["output"] = {"sha256": "sha256:" + sha(tar), "size": os.path.getsize(tar)}
json.dump(rm, open(f"{d}/rootfs.manifest.json", "w"), indent=2)
bm = json.load(open(f"{d}/build-manifest.json"))
bm["rootfs"]["manifest_sha256"] = "sha256:" + sha(f"{d}/rootfs.manifest.json")
bm["rootfs"]["tar_sha256"] = rm["output"]["sha256"]
for a in bm["artifacts"]:
    if a["name"] == "update-img.tar.zst":
        a["sha256"] = "sha256:" + sha(f"{d}/update-img.tar.zst")
        a["size"] = os.path.getsize(f"{d}/update-img.tar.zst")
json.dump(bm, open(f"{d}/build-manifest.json", "w"), indent=2)
EOF
"$tools/icos-sums" --out "$other/SHA256SUMS" "$other"/build-manifest.json "$other"/disk-img.tar.zst \
  "$other"/rootfs.manifest.json "$other"/update-img.tar.zst "$other"/update-manifest.json
"$tools/icos-sign" provenance --build-manifest "$other/build-manifest.json" --sums "$other/SHA256SUMS" \
  --commit "$(git rev-parse HEAD)" --repo-uri https://icos.invalid/icos.git --out "$other/provenance.intoto.json"
"$tools/icos-sign" sbom --rootfs "$work/other-rootfs.tar" --rootfs-manifest "$other/rootfs.manifest.json" \
  --name icos-default --out "$other/sbom.spdx.json"
"$tools/icos-sign" sign --secret-key "$work/release.key" --password-file "$work/password" \
  "$other/SHA256SUMS" "$other/build-manifest.json" "$other/provenance.intoto.json" "$other/sbom.spdx.json" >/dev/null
"$tools/icos-sign" verify --public-key "$work/release.pub" "$other" >/dev/null || fail "the other release does not verify"
for name in provenance.intoto.json sbom.spdx.json; do
  case_dir
  cp "$other/$name" "$other/$name.minisig" "$work/case/"
  refuse "the $name of another release signed by the same key" "$work/case" "$name does not belong to this release"
done

# Validly signed metadata of this very build that the rebuild does not reproduce: a provenance
# naming another commit, an SBOM that lies about a file's checksum. Both verify (their subjects
# and root filesystem are this release's); neither is "reproduced".
for name in provenance.intoto.json sbom.spdx.json; do
  case_dir
  if [[ $name == provenance.intoto.json ]]; then
    "$tools/icos-sign" provenance --build-manifest "$work/case/build-manifest.json" --sums "$work/case/SHA256SUMS" \
      --commit 1111111111111111111111111111111111111111 --repo-uri https://icos.invalid/icos.git --out "$work/case/$name"
  else
    python3 - "$work/case/$name" <<'EOF'
import json, sys
sbom = json.load(open(sys.argv[1]))
sbom["files"][0]["checksums"][0]["checksumValue"] = "0" * 40
json.dump(sbom, open(sys.argv[1], "w"), indent=2, sort_keys=True)
EOF
  fi
  "$tools/icos-sign" sign --secret-key "$work/release.key" --password-file "$work/password" "$work/case/$name" >/dev/null
  "$tools/icos-sign" verify --public-key "$work/release.pub" "$work/case" >/dev/null || fail "a re-signed $name does not verify"
  if ICOS_SIGN=$tools/icos-sign scripts/verify-release.sh "$work/case" "$PWD" "$work/release.pub" >"$work/out" 2>&1; then
    fail "verify-release.sh reproduced a release whose $name the rebuild does not make"
  fi
  grep -qx "NOT reproduced: these files differ from the rebuild: $name" "$work/out" ||
    fail "verify-release.sh does not name $name: $(cat "$work/out")"
  echo "release-e2e: not reproduced, as it must not be: $name made differently ($(grep -m1 "^$name: " "$work/out"))"
done

case_dir
rm "$work/case"/{provenance.intoto.json,sbom.spdx.json}{,.minisig}
refuse "a release without its provenance, SBOM and their signatures" "$work/case" \
  "provenance.intoto.json is missing: a release holds provenance.intoto.json and sbom.spdx.json"

echo "release-e2e: signed, verified with stock tools, reproduced, and every hostile release refused"
