#!/usr/bin/env bash
# A real remote cache (REAPI: BuildGrid on 127.0.0.1), shared by two builders, as a team would:
#  1. builder A builds //ic-os:image with --config=remote: whatever the cache does not hold yet, A
#     executes and uploads (standalone, in an output base of its own; in a CI run, in the
#     checkout's, whose earlier builds filled the cache);
#  2. builder B, in another output base and another checkout path, builds //ic-os:image: every
#     action (the tools build, the boot pieces, every image step) is a remote cache hit, and the
#     SHA256SUMS are identical to A's;
#  3. B changes one injected file (ic-os/files/motd): only the steps after the rootfs run, and
#     they are uploaded: A, given the same change, then executes nothing.
# Uses the CI run's BuildGrid when scripts/test.sh started one (ICOS_CI_REMOTE_CACHE; the earlier
# builds of the run have filled it), else starts its own (then A compiles the tools, cold).
# Prints what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/lib.sh
checkout=$PWD
work=$(mktemp -d /tmp/icos-remote-cache.XXXXXX)
own_server=false
cleanup() {
  for ob in "$work/a-ob" "$work/b-ob"; do
    [[ -d "$ob" ]] && (cd "$checkout" && bazel --output_base="$ob" shutdown) >/dev/null 2>&1 || true
  done
  $own_server && ci/buildgrid.sh stop "$work/buildgrid"
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "remote-cache: FAILED: $*" >&2; exit 1; }

cache=${ICOS_CI_REMOTE_CACHE:-}
if [[ -z "$cache" ]]; then
  cache=$(ci/buildgrid.sh start "$work/buildgrid")
  own_server=true
fi
echo "remote-cache: cache $cache ($($own_server && echo "started for this test" || echo "the CI run's"))"
remote=(--config=ci --config=remote "--remote_cache=$cache")

# Builder B's checkout: what git tracks plus untracked, not-ignored files, under another path.
b_src=$work/b/another/checkout/path/icos
mkdir -p "$b_src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$b_src"

# Builder A's output base: in a CI run, the checkout's own (the run's earlier builds filled the
# cache; a fresh output base would only unpack the toolchain again), else one of its own, which
# executes and uploads everything.
a_ob=$work/a-ob
$own_server || a_ob=""

# $1 name, $2 checkout, $3 output base (empty: the checkout's), $4 log stem; builds //ic-os:image
# and keeps its SHA256SUMS.
build() {
  local name=$1 src=$2 ob=$3 stem=$4 start=$SECONDS
  local startup=()
  [[ -z "$ob" ]] || startup=(--output_base="$ob")
  (cd "$src" && bazel "${startup[@]}" build "${remote[@]}" --execution_log_json_file="$work/$stem.exec.json" \
    //ic-os:image) >"$work/$stem.log" 2>&1 || { tail -n 30 "$work/$stem.log" >&2; fail "builder $name failed"; }
  cp -L "$src/bazel-bin/ic-os/SHA256SUMS" "$work/$stem.sums"
  echo "remote-cache: builder $name ($stem): $((SECONDS - start)) s, $(processes_line "$work/$stem.log")"
}

build A "$checkout" "$a_ob" a
build B "$b_src" "$work/b-ob" b
ran=$(executed_mnemonics "$work/b.exec.json")
[[ -z "$ran" ]] || fail "builder B executed actions instead of taking them from the cache: $ran"
! grep -qE '[0-9]+ (linux-sandbox|processwrapper-sandbox|local)' <(processes_line "$work/b.log") ||
  fail "builder B ran actions locally: $(processes_line "$work/b.log")"
cached=$(python3 ci/exec_log.py cached "$work/b.exec.json" | sort)
for needed in CargoBuild IcosDebLayer IcosInitramfs IcosRootfs IcosExt4 IcosVfat IcosDisk IcosPack IcosManifest IcosSums; do
  grep -qx "$needed" <<<"$cached" || fail "builder B got no cache hit for $needed"
done
hits=$(uniq -c <<<"$cached" | awk '{printf "%s×%s ", $1, $2}')
echo "remote-cache: builder B, other checkout path and output base: every action a remote cache hit: $hits"
cmp "$work/a.sums" "$work/b.sums" || fail "builders A and B produced different SHA256SUMS"
echo "remote-cache: identical SHA256SUMS"

echo "changed by ci/remote-cache.sh" >>"$b_src/ic-os/files/motd"
build B "$b_src" "$work/b-ob" b-motd
ran=$(executed_mnemonics "$work/b-motd.exec.json")
echo "remote-cache: after changing ic-os/files/motd, builder B executed: $ran"
[[ "$ran" == *IcosRootfs* ]] || fail "the rootfs did not re-run after its injected file changed"
for never in CargoBuild IcosDebLayer IcosInitramfs; do
  [[ " $ran" != *" $never "* ]] || fail "$never re-ran after a change to the root filesystem only"
done

cp "$checkout/ic-os/files/motd" "$work/motd.orig"
cp "$b_src/ic-os/files/motd" "$checkout/ic-os/files/motd"
trap 'cp "$work/motd.orig" "$checkout/ic-os/files/motd"; cleanup' EXIT
build A "$checkout" "$a_ob" a-motd
cp "$work/motd.orig" "$checkout/ic-os/files/motd"
ran=$(executed_mnemonics "$work/a-motd.exec.json")
[[ -z "$ran" ]] || fail "builder A re-executed what builder B should have uploaded: $ran"
cmp "$work/a-motd.sums" "$work/b-motd.sums" || fail "A and B disagree on the changed image"
echo "remote-cache: builder B uploaded its new results: builder A, given the same change, executed nothing"
