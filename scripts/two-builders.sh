#!/usr/bin/env bash
# Builds the default image twice, as independently as one machine allows, and compares SHA256SUMS.
# Exit 0 only when every artifact matches; otherwise icos-diff names what differs, exit 1.
#
#   scripts/two-builders.sh [--work DIR] [--keep] [--inject-nondeterminism] [--target LABEL]...
#                           [--release-dir DIR] [--user-remote-cache URL] [--sealed]
#                           [--builder-b-only | --reuse-b] [--source DIR]
#
# Example: scripts/two-builders.sh --sealed --target //ic-os:image
#
#   --work DIR                 where both checkouts and output bases live (default: a new temp dir).
#                              Reusing a kept DIR makes a second run incremental.
#   --keep                     keep DIR and both Bazel servers (for a follow-up run or a look around)
#   --cleanup-only             stop the Bazel servers of a kept DIR and delete it
#   --inject-nondeterminism    builder B writes the current time into one injected file
#                              (ic-os/files/motd): the check must then fail and name that file.
#                              Used by the tests to prove the check can fail.
#   --target LABEL             an image to build (default //ic-os:image); repeat it to check several
#                              images with one builder B (the tools compile once). Each image's
#                              release files are read from bazel-bin/PKG (name `image`) or
#                              bazel-bin/PKG/NAME, as icos_image places them, or, with one target,
#                              from --release-dir DIR (relative to bazel-bin).
#                              ICOS_DEBIAN_BASE, when set, reaches both builders (//ic-os/debian:image
#                              needs it; the archive must be readable by builder B's user).
#   --user-remote-cache URL    give builder B a user configuration ($HOME/.bazelrc) that points at a
#                              remote cache, as a developer's machine might have. B must ignore it.
#   --sealed                   builder B builds as a remote executor would see the host
#                              (scripts/sealed.sh, needs root): no network, and every host compiler,
#                              linker, C header and Rust toolchain hidden. B first downloads the
#                              pinned inputs into its own repository cache (network up, toolchain
#                              hidden, in a throwaway output base), then builds in a fresh output
#                              base from that cache alone. One cold build proves both the build's
#                              hermeticity and its determinism.
#   --builder-b-only           build with builder B only and keep DIR (implies --keep): a later run
#                              with the same --work and --reuse-b builds A and compares. Lets B's
#                              cold build run beside other work (scripts/test.sh).
#   --reuse-b                  compare with the builder B that --builder-b-only kept in --work, as
#                              it is (no second build; implies --keep)
#   --source DIR               builder B's sources: every file of DIR, a snapshot of this checkout
#                              taken before other jobs edit it (default: this checkout's
#                              git-tracked and untracked, not-ignored files)
#
# Builder A is this checkout with its usual Bazel output base (so a warm cache makes it cheap);
# builder B starts from nothing. What differs between them:
#   checkout path   this checkout               vs $WORK/b/some/deeper/checkout-b (a snapshot of it)
#   output base     this checkout's             vs $WORK/b/output-base (no shared cache)
#   user            the caller                  vs icos-builder-b (created when run as root)
#   umask           0022                        vs 0077
#   TZ              UTC                         vs Pacific/Chatham (UTC+12:45/13:45)
#   LANG, LC_ALL    C.UTF-8                     vs LANG=fr_FR.UTF-8, LC_ALL unset
#   jobs            --jobs=1                    vs --jobs=2
#   dir order       as on disk                  vs shuffled by disorderfs (when FUSE is available)
#   cargo home      the caller's                vs builder B's own, fetched separately
#   repo cache      the caller's                vs builder B's own: B downloads the pinned toolchain itself
#   action caches   the caller's (and its remote vs none: B never accepts a cached result nor uploads one,
#                   cache, if configured)          whatever its rc files say (--disk_cache=,
#                                                  --noremote_accept_cached, --noremote_upload_local_results)
#   host            as is                       vs with --sealed: no network, no host toolchain
#
# A's own Bazel flags may be given in BUILDER_A_FLAGS (e.g. the CI run's remote cache).
set -euo pipefail

here=${BUILD_WORKSPACE_DIRECTORY:-$(cd "$(dirname "$0")/.." && pwd)}
work=""
keep=false
cleanup_only=false
inject=false
user_remote_cache=""
sealed=false
b_only=false
reuse_b=false
source_dir=""
targets=()
release_dir=""
while (($#)); do
  case $1 in
    --work) work=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --cleanup-only) cleanup_only=true; shift ;;
    --inject-nondeterminism) inject=true; shift ;;
    --target) targets+=("$2"); shift 2 ;;
    --release-dir) release_dir=$2; shift 2 ;;
    --user-remote-cache) user_remote_cache=$2; shift 2 ;;
    --sealed) sealed=true; shift ;;
    --builder-b-only) b_only=true; keep=true; shift ;;
    --reuse-b) reuse_b=true; keep=true; shift ;;
    --source) source_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "two-builders: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "two-builders: $*" >&2; }

((${#targets[@]})) || targets=(//ic-os:image)
if [[ -n "$release_dir" ]] && ((${#targets[@]} > 1)); then
  echo "two-builders: --release-dir goes with one --target only" >&2
  exit 2
fi
# Where icos_image puts each target's release files, relative to bazel-bin.
release_dirs=()
for target in "${targets[@]}"; do
  if [[ -n "$release_dir" ]]; then
    release_dirs+=("$release_dir")
    continue
  fi
  pkg=${target#//}
  pkg=${pkg%%:*}
  name=${target##*:}
  [[ "$target" == *:* ]] || name=${pkg##*/}
  if [[ "$name" == image ]]; then release_dirs+=("$pkg"); else release_dirs+=("$pkg/$name"); fi
done
target="${targets[*]}"

[[ -n "$work" ]] || work=$(mktemp -d /tmp/icos-two-builders.XXXXXX)
mkdir -p "$work"
work=$(cd "$work" && pwd)
chmod 0755 "$work"
a_src=$here
b_real=$work/b/src
b_src=$work/b/some/deeper/checkout-b
b_base=$work/b/output-base

b_user=""
if [[ $(id -u) -eq 0 ]]; then
  b_user=icos-builder-b
  id "$b_user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$b_user"
  b_home=$(getent passwd "$b_user" | cut -d: -f6)
else
  $sealed && { echo "two-builders: --sealed needs root (mount and network namespaces)" >&2; exit 2; }
  log "not root: builder B runs as the same user ($(id -un)); user is not varied"
  b_home=$work/b/home
fi

# With --keep, builder B's Bazel server and its disorderfs view stay up for the next run.
cleanup() {
  $keep && return 0
  b_jail=()
  [[ -d "$b_src" ]] && as_b bazel --output_base="$b_base" shutdown >/dev/null 2>&1 || true
  if mountpoint -q "$b_src" 2>/dev/null; then fusermount -u "$b_src" 2>/dev/null || umount "$b_src" || true; fi
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}

as_a() {
  (cd "$a_src" && umask 0022 && env TZ=UTC LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@")
}

# With --sealed, B's commands run inside scripts/sealed.sh (b_jail).
b_jail=()
as_b() {
  local env_args=(HOME="$b_home" USER="${b_user:-$(id -un)}" TZ=Pacific/Chatham LANG=fr_FR.UTF-8
    PATH=/usr/local/bin:/usr/bin:/bin)
  [[ -z "${ICOS_DEBIAN_BASE:-}" ]] || env_args+=(ICOS_DEBIAN_BASE="$ICOS_DEBIAN_BASE")
  if [[ -n "$b_user" ]]; then
    (cd "$b_src" && "${b_jail[@]}" runuser -u "$b_user" -- env -i "${env_args[@]}" bash -c 'umask 0077 && exec "$@"' bash "$@")
  else
    (cd "$b_src" && env -i "${env_args[@]}" bash -c 'umask 0077 && exec "$@"' bash "$@")
  fi
}

if $cleanup_only; then
  keep=false
  cleanup
  exit 0
fi
trap cleanup EXIT

if $reuse_b; then
  # The B that --builder-b-only built in this WORK, from its sources then: compared as it is,
  # without a second Bazel server in the jail to find nothing to do.
  { $inject || $b_only; } && { echo "two-builders: --reuse-b goes with neither --inject-nondeterminism nor --builder-b-only" >&2; exit 2; }
  [[ -L "$b_real/bazel-bin" ]] || { echo "two-builders: --reuse-b: no builder B kept in $work (run --builder-b-only first)" >&2; exit 2; }
  log "builder B: reusing the build kept in $work"
else
  # Builder B's sources: what git tracks plus untracked, not-ignored files of this checkout. The
  # directory is refreshed in place, so a kept disorderfs view of it stays valid.
  mkdir -p "$b_real"
  find "$b_real" -mindepth 1 -delete
  if [[ -n "$source_dir" ]]; then
    tar -C "$source_dir" -cf - . | tar -xf - -C "$b_real"
  else
    (cd "$here" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$b_real"
  fi
fi
if $inject; then
  log "injecting nondeterminism: builder B's ic-os/files/motd carries the current time"
  date '+built at %s.%N' >>"$b_real/ic-os/files/motd"
fi

mkdir -p "$b_src" "$b_base" "$b_home"
if [[ -n "$user_remote_cache" ]]; then
  log "builder B's user configuration points at the remote cache $user_remote_cache"
  printf 'build --remote_cache=%s\nbuild --remote_upload_local_results\n' "$user_remote_cache" >"$b_home/.bazelrc"
else
  rm -f "$b_home/.bazelrc"
fi
if [[ -n "$b_user" ]]; then
  chown "$b_user" "$work/b" "$b_base" "$b_home"
  chown -R "$b_user" "$b_real"
fi
if mountpoint -q "$b_src"; then
  log "builder B reads its checkout through the kept disorderfs view"
elif [[ -L "$b_src" ]]; then
  log "builder B reads its checkout directly (kept from the first run)"
elif command -v disorderfs >/dev/null 2>&1 && [[ -e /dev/fuse ]]; then
  disorderfs --quiet --shuffle-dirents=yes --multi-user=yes "$b_real" "$b_src" >/dev/null
  log "builder B reads its checkout through disorderfs (shuffled directory order)"
else
  log "disorderfs or /dev/fuse unavailable: builder B's directory order is not varied"
  rmdir "$b_src"
  ln -s "$b_real" "$b_src"
fi

if ! $b_only; then
  start=$SECONDS
  log "builder A: $a_src as $(id -un), umask 0022, TZ=UTC, --jobs=1"
  read -r -a a_flags <<<"${BUILDER_A_FLAGS:-}"
  as_a bazel build --config=ci "${a_flags[@]}" --jobs=1 "${targets[@]}" //toolchains/rust:tools
  log "builder A done in $((SECONDS - start)) s"
fi
start=$SECONDS
# B's bazel; in the jail the server is shut down before the jail ends (a later client outside it
# could not reach a server inside). $1: the output base.
b_bazel() {
  local base=$1
  shift
  if $sealed; then
    as_b bash -c 'bazel --output_base="$0" "$@"; status=$?; bazel --output_base="$0" shutdown; exit $status' "$base" "$@"
  else
    as_b bazel --output_base="$base" "$@"
  fi
}
if ! $reuse_b; then
  # A kept output base (a second run) has its repositories already: no downloads, no fetch phase.
  if $sealed && [[ -z "$(ls -A "$b_base")" ]]; then
    fetch_base=$work/b/fetch-output-base
    log "builder B: downloading the pinned inputs into its own repository cache (network up, host toolchain hidden)"
    b_jail=("$a_src/scripts/sealed.sh" --keep-network)
    b_bazel "$fetch_base" build --config=ci --nobuild "${targets[@]}"
    chmod -R u+w "$fetch_base" && rm -rf "$fetch_base"
    log "builder B: downloads done in $((SECONDS - start)) s"
  fi
  b_flags=()
  if $sealed; then
    log "builder B builds sealed: no network (so no remote cache either), no host toolchain"
    b_jail=("$a_src/scripts/sealed.sh")
    b_flags=(--remote_cache=)
  fi
  log "builder B: $b_src as ${b_user:-$(id -un)}, umask 0077, TZ=Pacific/Chatham, fr_FR.UTF-8, --jobs=2"
  # B builds everything itself: no cache is trusted, whatever the rc files configure.
  b_bazel "$b_base" build --config=ci --jobs=2 --disk_cache= --noremote_accept_cached \
    --noremote_upload_local_results "${b_flags[@]}" --execution_log_json_file="$work/b/exec.json" "${targets[@]}"
  cached=$(python3 "$a_src/ci/exec_log.py" cached "$work/b/exec.json" | wc -l)
  ((cached == 0)) || { log "builder B took $cached results from a cache: the check is void"; exit 2; }
  log "builder B done in $((SECONDS - start)) s: $(python3 "$a_src/ci/exec_log.py" executed "$work/b/exec.json" | wc -l) actions executed, none from a cache"
fi
if $b_only; then
  log "builder B only: $work kept; run again with --work $work --reuse-b to build A and compare"
  exit 0
fi

# Copy the release files out of each output tree (bazel-bin is a symlink into the output base).
collect() {
  local src=$1/bazel-bin/$2 dest=$3
  rm -rf "$dest"
  mkdir -p "$dest"
  while read -r _ name; do
    cp -L "$src/$name" "$dest/$name"
  done <"$src/SHA256SUMS"
  cp -L "$src/SHA256SUMS" "$dest/SHA256SUMS"
}
status=0
diff_tool=$a_src/bazel-bin/toolchains/rust/tools/icos-diff
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  # One directory per target: the first keeps the historical place ($WORK/a/release), the others
  # sit beside it (release-1, …).
  sub=""
  ((i == 0)) || sub=-$i
  collect "$a_src" "${release_dirs[$i]}" "$work/a/release$sub"
  collect "$b_src" "${release_dirs[$i]}" "$work/b/release$sub"
  echo "builder A SHA256SUMS of $t:"
  sed 's/^/  /' "$work/a/release$sub/SHA256SUMS"
  if cmp -s "$work/a/release$sub/SHA256SUMS" "$work/b/release$sub/SHA256SUMS" &&
    (cd "$work/b/release$sub" && sha256sum --quiet -c SHA256SUMS); then
    echo "two-builders: identical: every artifact of $t matches across both builders"
    continue
  fi
  status=1
  echo "two-builders: DIFFERENT: the builds of $t do not match"
  echo "builder B SHA256SUMS of $t:"
  sed 's/^/  /' "$work/b/release$sub/SHA256SUMS"
  if [[ -x "$diff_tool" ]]; then
    "$diff_tool" "$work/a/release$sub" "$work/b/release$sub" || true
  else
    log "icos-diff not built; compare $work/a/release$sub and $work/b/release$sub by hand"
  fi
done
exit $status
