#!/usr/bin/env bash
# PgBouncer in transaction mode in front of a private cluster of
# deploy/pg.sh, configured from deploy/pgbouncer.ini.
#
#   deploy/pgbouncer.sh start [DIR]   DIR: the cluster's folder (default .local/pg)
#   deploy/pgbouncer.sh stop  [DIR]
#   deploy/pgbouncer.sh env   [DIR]   prints `export PHI_PGBOUNCER_PORT=..`
#
# Uses Debian's pgbouncer, installed first when missing and we are root. It
# runs as the cluster's owner (PgBouncer refuses root), in DIR/pgbouncer,
# with the login roles' passwords in a userlist of mode 0600 there.
# PHI_PGBOUNCER_POOL_SIZE sets the server connections per database and user
# (default 2). PHI_PGBOUNCER_TLS_DIR, a folder with ca.pem, server.pem and
# server.key, turns on the ini's TLS lines (to PostgreSQL: verify-full
# against ca.pem; from clients: required, with server.pem).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cmd=${1:-}
dir=${2:-${PHI_PG_DIR:-$root/.local/pg}}

log() { printf 'pgbouncer.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_owner() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The cluster's real folder (pg.sh may have relocated it).
eval "$("$here/pg.sh" env "$dir")"
bdir=$PHI_PG_DIR/pgbouncer

binary() {
  local b
  b=$(command -v pgbouncer || true)
  [ -n "$b" ] || { [ -x /usr/sbin/pgbouncer ] && b=/usr/sbin/pgbouncer; }
  if [ -z "$b" ]; then
    is_root || die "pgbouncer is not installed; install Debian's 'pgbouncer' package (needs root)"
    log "installing Debian's pgbouncer package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2 ||
      { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2; }
    b=/usr/sbin/pgbouncer
  fi
  printf '%s' "$b"
}

running() { [ -f "$bdir/pgbouncer.pid" ] && kill -0 "$(cat "$bdir/pgbouncer.pid")" 2>/dev/null; }

start() {
  local bin port
  bin=$(binary)
  mkdir -p "$bdir"
  if running; then log "already running on port $(cat "$bdir/port")"; return; fi
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" || break
  done
  echo "$port" >"$bdir/port"
  (umask 077
   printf '"phi_app" "%s"\n"phi_sealer" "%s"\n' "$PHI_PG_APP_PASSWORD" "$PHI_PG_SEALER_PASSWORD" >"$bdir/userlist.txt")
  local tls=${PHI_PGBOUNCER_TLS_DIR:-} on=''
  [ -z "$tls" ] || on='s|^;tls;||;'
  sed -e "$on s|@PG_PORT@|$PHI_PG_PORT|; s|@PORT@|$port|; s|@DIR@|$bdir|g; s|@POOL_SIZE@|${PHI_PGBOUNCER_POOL_SIZE:-2}|; s|@TLS@|$tls|g" \
    "$here/pgbouncer.ini" >"$bdir/pgbouncer.ini"
  if is_root; then chown -R postgres:postgres "$bdir"; fi
  as_owner "$bin" -d "$bdir/pgbouncer.ini" >/dev/null 2>&1 ||
    { tail -20 "$bdir/pgbouncer.log" >&2 || true; die "pgbouncer did not start"; }
  for _ in $(seq 100); do port_in_use "$port" && break; sleep 0.05; done
  port_in_use "$port" || die "pgbouncer is not listening on $port"
  log "running on 127.0.0.1:$port in front of $PHI_PG_PORT ($("$bin" --version | head -1))"
}

stop() {
  if running; then
    kill "$(cat "$bdir/pgbouncer.pid")"
    for _ in $(seq 100); do running || break; sleep 0.05; done
    log "stopped"
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) echo "export PHI_PGBOUNCER_PORT='$(cat "$bdir/port")'" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
