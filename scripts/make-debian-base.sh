#!/usr/bin/env bash
# Makes the Debian image's base the way a user would, as a real `docker save` archive:
#   1. mmdebstrap: a Debian bookworm root with systemd as init (minbase + systemd-sysv, udev, dbus)
#      from Debian's mirror;
#   2. `docker import` of that tree;
#   3. one `docker build` on top (ic-os/debian/base/Dockerfile): a user, a systemd service that
#      prints a marker on the console, a package added with dpkg (libcap2-bin, its .deb fetched
#      here with `apt-get download`) and one removed, a file with a file capability;
#   4. `docker save` of the result.
#
#   scripts/make-debian-base.sh OUT.tar [--keep-images]
#
# The base itself is not reproducible (the mirror moves, Docker stamps times): the image is pinned by
# what this prints, the image ID (`docker-archive:OUT.tar@sha256:…`, the config digest), which the
# Bazel repository rule @icos_debian_base checks and records (ic-os/debian/BUILD.bazel says how).
# It prints each step's wall time: CI's budget is 90 minutes.
# Needs root (mmdebstrap --mode=root, setcap), mmdebstrap, Debian's mirror, a Docker daemon.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=""
keep=false
while (($#)); do
  case $1 in
    --keep-images) keep=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-debian-base: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [[ -z "$out" ]] || { echo "make-debian-base: one OUT.tar only" >&2; exit 2; }; out=$1; shift ;;
  esac
done
[[ -n "$out" ]] || { echo "usage: scripts/make-debian-base.sh OUT.tar (see --help)" >&2; exit 2; }
for tool in mmdebstrap docker apt-get; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-debian-base: $tool missing (scripts/setup.sh installs mmdebstrap; Docker must be running)" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "make-debian-base: no Docker daemon answers (docker info failed)" >&2; exit 1; }

log() { echo "make-debian-base: $*" >&2; }
work=$(mktemp -d /tmp/icos-debian-base.XXXXXX)
tag=icos-debian-base-$$
cleanup() {
  rm -rf "$work"
  $keep || docker rmi -f "$tag:build" "$tag:rootfs" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# minbase (Essential + apt) with systemd as init and what a systemd system talks to. Small but
# real: dpkg's database, setuid binaries (mount, su, passwd), udev rules, dbus policy.
packages=systemd-sysv,udev,dbus
t=$SECONDS
log "mmdebstrap bookworm (minbase + $packages)"
mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
  --aptopt='Acquire::Languages "none"' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  bookworm "$work/rootfs.tar" http://deb.debian.org/debian
mmdebstrap_s=$((SECONDS - t))
log "mmdebstrap: $mmdebstrap_s s, $(du -m "$work/rootfs.tar" | cut -f1) MiB, $(tar -tf "$work/rootfs.tar" | wc -l) entries"

t=$SECONDS
docker import "$work/rootfs.tar" "$tag:rootfs" >/dev/null
import_s=$((SECONDS - t))

# The build context: the Dockerfile and its files, plus libcap2-bin's .deb (the container has no
# network; apt's resolution happens here, with the host's sources, which are bookworm too).
ctx=$work/context
cp -r "$here/ic-os/debian/base" "$ctx"
(cd "$ctx" && apt-get download -qq -o APT::Sandbox::User=root libcap2-bin >/dev/null && mv libcap2-bin_*.deb libcap2-bin.deb)
t=$SECONDS
# The legacy builder (no BuildKit) as the issue's user ran it; its output is shown only on failure.
DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$tag:rootfs" -t "$tag:build" "$ctx" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; echo "make-debian-base: docker build failed" >&2; exit 1; }
build_s=$((SECONDS - t))

t=$SECONDS
tmp_out=$(dirname "$out")/.$(basename "$out").tmp
docker save -o "$tmp_out" "$tag:build"
# Readable by others: the two-builder check builds as a second user.
chmod 0644 "$tmp_out"
mv "$tmp_out" "$out"
save_s=$((SECONDS - t))
id=$(docker image inspect --format '{{.Id}}' "$tag:build")
log "docker import $import_s s, docker build $build_s s, docker save $save_s s; $(du -m "$out" | cut -f1) MiB"
log "times: mmdebstrap=${mmdebstrap_s}s import=${import_s}s build=${build_s}s save=${save_s}s"
echo "docker-archive:$out@$id"
