#!/usr/bin/env bash
# Runs a command the way a remote executor would see the host: the network cut (a new network
# namespace with only loopback, which the Bazel client needs to reach its server) and every host
# compiler, assembler, linker, C header, crt file and Rust toolchain hidden, each replaced by a
# program that fails loudly ("… ran a host tool it must not use"). Only the shell plumbing stays.
#
#   scripts/sealed.sh [--keep-network] COMMAND [ARG]...
#
#   --keep-network   hide the toolchain but leave the network up (to download pinned inputs)
#
# Example: scripts/sealed.sh bazel --output_base=/tmp/ob build //ic-os:image
#
# Needs root (mount and network namespaces). A Bazel server started inside lives in the namespace:
# shut it down before the command ends, or a later client outside cannot reach it. The command's
# exit status is returned.
set -euo pipefail

net=(--net)
if [[ "${1:-}" == --keep-network ]]; then
  net=()
  shift
fi
case "${1:-}" in
  "" | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
[[ $(id -u) -eq 0 ]] || { echo "sealed: needs root for mount and network namespaces (unshare)" >&2; exit 2; }

jail=$(mktemp -d /tmp/icos-sealed.XXXXXX)
chmod 0755 "$jail"
trap 'rm -rf "$jail"' EXIT
cat >"$jail/hidden-tool" <<'EOF'
#!/bin/sh
echo "sealed: the build ran a host tool it must not use: $0 $*" >&2
exit 97
EOF
chmod 0755 "$jail/hidden-tool"
printf '/* hidden by scripts/sealed.sh: the build must not read the host C library */\n#error host file\n' >"$jail/hidden-file"
chmod 0644 "$jail/hidden-file"

# Every host program or file a C or Rust build could reach for, whether or not this host has it.
for name in cc c89 c99 gcc gcc-12 x86_64-linux-gnu-gcc-12 c++ g++ g++-12 cpp cpp-12 clang \
  ld ld.bfd ld.gold ld.lld x86_64-linux-gnu-ld x86_64-linux-gnu-ld.bfd x86_64-linux-gnu-ld.gold \
  as x86_64-linux-gnu-as ar x86_64-linux-gnu-ar ranlib rustc cargo; do
  for dir in /usr/bin /usr/local/bin /bin; do
    if [[ -e "$dir/$name" ]]; then realpath "$dir/$name"; fi
  done
done | sort -u >"$jail/hidden-tools"
for f in /usr/lib/x86_64-linux-gnu/{crt1.o,Scrt1.o,crti.o,crtn.o,libc.so,libc_nonshared.a,libm.so}; do
  if [[ -e "$f" ]]; then realpath "$f"; fi
done >"$jail/hidden-files"
{
  echo /usr/include
  echo /usr/lib/gcc
  # Every user's rustup and cargo binaries (builder B runs as another user).
  for home in /root /home/*; do
    for d in "$home/.cargo/bin" "$home/.rustup"; do if [[ -d "$d" ]]; then echo "$d"; fi; done
  done
} >"$jail/hidden-dirs"
echo "sealed: hiding $(wc -l <"$jail/hidden-tools") host tools, $(wc -l <"$jail/hidden-files") C library files," \
  "$(tr '\n' ' ' <"$jail/hidden-dirs"); network $( ((${#net[@]})) && echo cut || echo up)" >&2

status=0
unshare --mount "${net[@]}" --fork env JAIL="$jail" NETWORK="${net[*]:-}" bash -s -- "$@" <<'EOF' || status=$?
set -euo pipefail
mount --make-rprivate /
[[ -z "$NETWORK" ]] || ip link set lo up
while read -r t; do mount --bind "$JAIL/hidden-tool" "$t"; done <"$JAIL/hidden-tools"
while read -r f; do mount --bind "$JAIL/hidden-file" "$f"; done <"$JAIL/hidden-files"
while read -r d; do mount -t tmpfs -o ro,size=1m hidden "$d"; done <"$JAIL/hidden-dirs"
if [[ -n "$NETWORK" ]] && timeout 10 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80' 2>/dev/null; then
  echo "sealed: the network is still reachable inside the namespace" >&2
  exit 1
fi
if command -v cc >/dev/null && [[ "$(cc 2>&1)" != *"must not use"* ]]; then
  echo "sealed: the host's cc still runs inside the namespace" >&2
  exit 1
fi
exec "$@"
EOF
exit $status
