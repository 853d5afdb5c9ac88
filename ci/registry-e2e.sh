#!/usr/bin/env bash
# End to end through a real OCI registry: serves the default image's pinned base from Debian's
# docker-registry on 127.0.0.1:5577, lets Bazel pull it by digest (icos_oci_pull), and checks that
#  1. the rootfs built from the pulled base is byte-identical to the one built from the committed
#     layout (same digest, same bytes, whatever the transport);
#  2. a second fetch needs no network: with the registry stopped, the repository re-fetches from
#     the blob store.
# The pull runs the icos-fetch the build actions use (ICOS_FETCH), so CI compiles the tools once.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
port=5577
work=$(mktemp -d /tmp/icos-registry-e2e.XXXXXX)
registry_pid=""
cleanup() {
  [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  echo "registry-e2e: port $port is taken; stop what listens there" >&2
  exit 1
fi
cat >"$work/config.yml" <<CONFIG
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
CONFIG
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.2
done
skopeo copy --quiet --dest-tls-verify=false oci:ic-os/base/layout:icos-base "docker://127.0.0.1:$port/icos/base:1"

bazel build "${ci_flags[@]}" //toolchains/rust:tools
export ICOS_FETCH=$(realpath bazel-bin/toolchains/rust/tools/icos-fetch)
export ICOS_BLOB_STORE=$work/store
bazel build "${ci_flags[@]}" //ci/e2e:registry_rootfs //ic-os:image_rootfs
if ! cmp bazel-bin/ci/e2e/registry_rootfs.tar bazel-bin/ic-os/image_rootfs.tar; then
  echo "registry-e2e: FAILED: the rootfs from the registry differs from the one from the layout" >&2
  exit 1
fi
echo "registry-e2e: the base pulled by digest gives the same rootfs bytes as the committed layout"

kill "$registry_pid"
wait "$registry_pid" 2>/dev/null || true
registry_pid=""
bazel sync --only=icos_e2e_registry_base
bazel build "${ci_flags[@]}" //ci/e2e:registry_rootfs
cmp bazel-bin/ci/e2e/registry_rootfs.tar bazel-bin/ic-os/image_rootfs.tar
echo "registry-e2e: with the registry stopped, the pinned base re-fetched from the blob store"
