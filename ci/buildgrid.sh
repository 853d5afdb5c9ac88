#!/usr/bin/env bash
# A local REAPI cache (BuildGrid: CAS, ActionCache and ByteStream, no execution service) on
# 127.0.0.1, for the tests that need a real remote cache. scripts/setup.sh installs BuildGrid into
# a virtualenv ($ICOS_BUILDGRID_VENV, default ~/.cache/icos/buildgrid-venv).
#
#   ci/buildgrid.sh start DIR   start a server storing under DIR on a free port; prints its URL
#                               (grpc://127.0.0.1:PORT) and keeps the pid in DIR/bgd.pid
#   ci/buildgrid.sh stop DIR    stop the server started with DIR
set -euo pipefail
venv=${ICOS_BUILDGRID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/icos/buildgrid-venv}

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
(($# == 2)) || usage
cmd=$1
dir=$2

case $cmd in
  start)
    [[ -x "$venv/bin/bgd" ]] || { echo "buildgrid: $venv/bin/bgd missing: run scripts/setup.sh --deps-only" >&2; exit 1; }
    mkdir -p "$dir/cas"
    dir=$(cd "$dir" && pwd)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/config.yml" <<CONFIG
server:
  - !channel
    address: "127.0.0.1:$port"
    insecure-mode: true
instances:
  - name: ''
    storages:
      - !disk-storage &cas
        path: $dir/cas
    caches:
      - !lru-action-cache &actions
        storage: *cas
        max-cached-refs: 100000
        allow-updates: true
    services:
      - !action-cache
        cache: *actions
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
CONFIG
    setsid "$venv/bin/bgd" server start "$dir/config.yml" >"$dir/bgd.log" 2>&1 </dev/null &
    echo $! >"$dir/bgd.pid"
    for _ in $(seq 150); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "grpc://127.0.0.1:$port"
        exit 0
      fi
      kill -0 "$(cat "$dir/bgd.pid")" 2>/dev/null || break
      sleep 0.2
    done
    echo "buildgrid: the server did not start listening on 127.0.0.1:$port; its log:" >&2
    tail -n 20 "$dir/bgd.log" >&2
    exit 1
    ;;
  stop)
    [[ -f "$dir/bgd.pid" ]] || exit 0
    pid=$(cat "$dir/bgd.pid")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/bgd.pid"
    ;;
  *) usage ;;
esac
