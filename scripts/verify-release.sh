#!/usr/bin/env bash
# Usage: scripts/verify-release.sh RELEASE_DIR CHECKOUT_DIR [PUBKEY]
#
# Rebuilds the image offline in CHECKOUT_DIR (`bazel build //ic-os:image`) and checks that every
# artifact is bit-for-bit the one in RELEASE_DIR. With PUBKEY, the release's signatures are checked
# first (`icos-sign verify`). Prints "reproduced" and exits 0 only when every hash matches; exits 1
# when artifacts differ (and runs `icos-diff` on the two directories if it is installed), 2 on misuse.
# Environment: BAZEL (default bazel), ICOS_SIGN (default: icos-sign on PATH).
set -euo pipefail

die() { echo "verify-release: $*" >&2; exit 2; }
[[ $# -eq 2 || $# -eq 3 ]] || die "usage: $0 RELEASE_DIR CHECKOUT_DIR [PUBKEY]"
release=$(cd "$1" && pwd) || die "no release directory $1"
checkout=$(cd "$2" && pwd) || die "no checkout directory $2"
pubkey=${3:-}
[[ -f $release/SHA256SUMS ]] || die "$release has no SHA256SUMS"

if [[ -n $pubkey ]]; then
  icos_sign=${ICOS_SIGN:-$(command -v icos-sign || true)}
  [[ -n $icos_sign ]] || die "icos-sign not found: put it on PATH or set ICOS_SIGN"
  "$icos_sign" verify --public-key "$pubkey" "$release"
else
  echo "verify-release: no public key given: signatures NOT checked, hashes only" >&2
  (cd "$release" && sha256sum --check --strict --quiet SHA256SUMS) || die "release files do not match their SHA256SUMS"
fi

(cd "$checkout" && "${BAZEL:-bazel}" build //ic-os:image)
rebuilt=$checkout/bazel-bin/ic-os
[[ -f $rebuilt/SHA256SUMS ]] || die "the build made no $rebuilt/SHA256SUMS"
(cd "$rebuilt" && sha256sum --check --strict --quiet SHA256SUMS) || die "rebuilt files do not match $rebuilt/SHA256SUMS"

if cmp -s "$release/SHA256SUMS" "$rebuilt/SHA256SUMS"; then
  echo reproduced
  exit 0
fi

echo "NOT reproduced: these artifacts differ (release vs rebuilt sha256):"
awk 'NR == FNR { rel[$2] = $1; next } { reb[$2] = $1 }
     END {
       for (n in rel) if (rel[n] != reb[n]) printf "  %s  %s  %s\n", n, rel[n], (n in reb) ? reb[n] : "(not rebuilt)"
       for (n in reb) if (!(n in rel)) printf "  %s  %s  %s\n", n, "(not released)", reb[n]
     }' "$release/SHA256SUMS" "$rebuilt/SHA256SUMS" | sort
if command -v icos-diff >/dev/null; then
  icos-diff "$release" "$rebuilt" || true
else
  echo "(icos-diff is not on PATH: install it to see which partition, file or attribute differs)"
fi
exit 1
