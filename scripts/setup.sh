#!/usr/bin/env bash
# README's first command: installs what is missing on a fresh Debian 12 machine, then builds the
# default image with Bazel.
#
#   scripts/setup.sh              install, fetch crates, bazel build //ic-os:image
#   scripts/setup.sh --deps-only  install and fetch only, without cargo-afl, which only
#                                 scripts/fuzz.sh needs (used by scripts/test.sh and CI)
#
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=false
[[ "${1:-}" == "--deps-only" ]] && deps_only=true

# Debian packages: bazel-bootstrap builds; the rest are the standard checkers and helpers the tests
# run against our outputs (the build itself runs only tools built from rs/, with the pinned toolchain
# of toolchains/debian/packages.bzl, never the host's compiler).
packages=(
  bazel-bootstrap       # Bazel 4.2.3, the only Bazel offline
  # Runtime libraries the pinned cargo and LLVM load (they never change what is compiled)
  libgit2-1.5 libcurl4 libssh2-1 libsqlite3-0 libxml2 libedit2
  build-essential       # cc for `cargo test` during development (scripts/test.sh), not for the build
  python3
  e2fsprogs             # e2fsck, debugfs, dumpe2fs: checking ext4 images
  dosfstools mtools     # fsck.fat, mdir/mtype: checking the ESP
  gdisk fdisk           # sgdisk -v, sfdisk --dump: checking the GPT
  tar zstd              # GNU tar and zstd: checking packaged images
  skopeo umoci          # checking OCI layouts, pushing test images
  docker-registry       # a real OCI registry on loopback for pull tests
  minisign              # third-party verification of signatures
  time                  # /usr/bin/time for the benchmarks
  disorderfs fuse3      # shuffled directory order for the two-builder check
  diffoscope-minimal    # optional deep diff of differing files
  cpio                  # checking initramfs archives
  iproute2              # `ip link` for the network-less build in scripts/sealed.sh
  qemu-system-x86 ovmf  # booting the image in the boot test (TCG, UEFI)
  cryptsetup-bin        # veritysetup: checking dm-verity hash trees
  python3-pefile        # an independent PE reader for the unified kernel image
  python3-venv          # the virtualenvs of BuildGrid (the remote-cache test's REAPI server) and spdx-tools
  mmdebstrap            # the Debian image's base (scripts/make-debian-base.sh, ci/debian-image.sh)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: cargo not found. Install Rust (rustup; 1.95 is what the tests run with: cargo test, clippy, fmt) and run again. The image build itself uses the pinned Debian toolchain." >&2
    exit 1
  fi
fi

# Crates are pinned by rs/Cargo.lock (and rs/fuzz/Cargo.lock); after this the build needs no network.
cargo fetch --locked --manifest-path rs/Cargo.toml --quiet
cargo fetch --locked --manifest-path rs/fuzz/Cargo.toml --quiet

# cargo-afl for scripts/fuzz.sh: the version must match the `afl` crate pinned in rs/fuzz/Cargo.toml.
# Installing it also builds AFL++ from the crate's bundled source (make and cc, ~2 min); the AFL++
# runtime is per rustc version, so a new toolchain rebuilds it.
# CI does not fuzz: --deps-only leaves it out (about a minute on a fresh machine).
if ! $deps_only; then
  afl_version=0.18.2
  if [[ "$(cargo afl --version 2>/dev/null)" != "cargo-afl $afl_version "* ]]; then
    echo "setup: installing cargo-afl $afl_version"
    cargo install --locked --quiet --version "$afl_version" cargo-afl
  fi
  afl_fuzz="${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs/rustc-$(rustc -vV | sed -n 's/^release: //p')-*/afl.rs-$afl_version/afl/bin/afl-fuzz"
  if ! compgen -G "$afl_fuzz" >/dev/null; then
    echo "setup: building AFL++ for this rustc"
    cargo afl config --build >/dev/null
  fi
fi

# BuildGrid, a real REAPI cache for ci/remote-cache.sh and the CI run's shared cache: every Python
# package pinned by version and sha256 (ci/buildgrid/requirements.txt), in a virtualenv outside the
# checkout. Rebuilt only when the requirements change.
venv=${ICOS_BUILDGRID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/icos/buildgrid-venv}
requirements=ci/buildgrid/requirements.txt
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null || [[ ! -x "$venv/bin/bgd" ]]; then
  echo "setup: installing BuildGrid into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

# spdx-tools (pyspdxtools), the SPDX 2.3 validator of ci/debian-image.sh, pinned the same way
# (ci/spdx/requirements.txt).
spdx_venv=${ICOS_SPDX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/icos/spdx-venv}
spdx_requirements=ci/spdx/requirements.txt
if ! cmp -s "$spdx_requirements" "$spdx_venv/requirements.txt" 2>/dev/null || [[ ! -x "$spdx_venv/bin/pyspdxtools" ]]; then
  echo "setup: installing spdx-tools into $spdx_venv"
  rm -rf "$spdx_venv"
  /usr/bin/python3 -m venv "$spdx_venv"
  "$spdx_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$spdx_requirements"
  cp "$spdx_requirements" "$spdx_venv/requirements.txt"
fi

if ! $deps_only; then
  bazel build //ic-os:image
  echo "setup: built the default image:"
  (cd bazel-bin/ic-os && ls -l disk-img.tar.zst update-img.tar.zst build-manifest.json rootfs.manifest.json SHA256SUMS && cat SHA256SUMS)
fi
