#!/usr/bin/env bash
# Refreshes toolchains/debian/packages.bzl: for every pinned package (the image's DEBIAN_PACKAGES and
# the build toolchain's TOOLCHAIN_PACKAGES alike), asks apt for the newest
# version the configured mirrors serve (or the version given as NAME=VERSION) and rewrites its
# version, pool path and sha256. Review the diff, rebuild, and commit it deliberately.
#
#   scripts/update-pins.sh                      newest version of every pinned package
#   scripts/update-pins.sh systemd-boot-efi=252.39-1~deb12u2
#
# The kernel's package name carries its ABI (linux-image-6.1.0-50-amd64); to move to a new ABI,
# edit the package name in packages.bzl first.
set -euo pipefail
cd "$(dirname "$0")/.."
pins=toolchains/debian/packages.bzl
declare -A wanted=()
for arg in "$@"; do wanted[${arg%%=*}]=${arg#*=}; done

apt-get update -qq >/dev/null 2>&1 || echo "update-pins: apt-get update failed; using the cached package lists" >&2
for package in $(sed -n 's/^ *"package": "\(.*\)",/\1/p' "$pins"); do
  spec=$package
  [[ -n "${wanted[$package]:-}" ]] && spec="$package=${wanted[$package]}"
  line=$(apt-get download --print-uris "$spec" 2>/dev/null | tail -n 1)
  if [[ -z "$line" ]]; then
    echo "update-pins: apt knows no $spec; leaving its pin alone" >&2
    continue
  fi
  url=$(cut -d"'" -f2 <<<"$line")
  sha=$(sed -n 's/.*SHA256:\([0-9a-f]*\).*/\1/p' <<<"$line")
  path=$(python3 -c 'import sys, urllib.parse; u = urllib.parse.unquote(sys.argv[1]); print(u[u.index("/pool/") + 1:])' "$url")
  version=$(apt-cache show "$spec" | sed -n 's/^Version: //p' | head -n 1)
  python3 - "$pins" "$package" "$version" "$path" "$sha" <<'PY'
import re, sys
pins, package, version, path, sha = sys.argv[1:]
text = open(pins).read()
block = re.search(r'(\{\s*"package": "%s",.*?\})' % re.escape(package), text, re.S).group(1)
new = re.sub(r'"version": "[^"]*"', f'"version": "{version}"', block)
new = re.sub(r'"path": "[^"]*"', f'"path": "{path}"', new)
new = re.sub(r'"sha256": "[^"]*"', f'"sha256": "{sha}"', new)
open(pins, "w").write(text.replace(block, new))
PY
  echo "update-pins: $package $version sha256:$sha"
done
git --no-pager diff --stat -- "$pins" || true
