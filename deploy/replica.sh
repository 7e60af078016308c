#!/usr/bin/env bash
# A streaming replica of a deploy/pg.sh cluster, made with pg_basebackup:
# hot standby, read-only, following the primary over a replication
# connection. For the replica tests (tests/api/replica.rs) and for trying
# DATABASE_READ_URL locally.
#
#   deploy/replica.sh start PRIMARY_DIR REPLICA_DIR   prints `export PHI_REPLICA_PORT=..`
#   deploy/replica.sh stop  REPLICA_DIR
#
# The replica's roles and passwords are the primary's (they replicate).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}

log() { printf 'replica.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_owner() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
env_of() { (eval "$("$here/pg.sh" env "$1")"; eval "printf '%s' \"\$$2\""); }

start() {
  local primary=${1:?PRIMARY_DIR} replica=${2:?REPLICA_DIR} bindir port sock pw
  primary=$(cd "$primary" && pwd)
  mkdir -p "$replica"; replica=$(cd "$replica" && pwd)
  [ ! -e "$replica/data" ] || die "$replica/data exists"
  bindir=$(env_of "$primary" PHI_PG_BINDIR)
  pw=$(cat "$primary/superuser.pw")
  if is_root; then chown postgres:postgres "$replica"; fi
  as_owner env PGPASSWORD="$pw" "$bindir/pg_basebackup" -h 127.0.0.1 -p "$(env_of "$primary" PHI_PG_PORT)" \
    -U postgres -D "$replica/data" -R -X stream -c fast >&2
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  if [ ${#replica} -le 80 ]; then sock=$replica; else
    sock=/tmp/phi-pg-sock-$(printf '%s' "$replica" | sha256sum | cut -c1-12)
  fi
  mkdir -p "$sock"; chmod 700 "$sock"
  if is_root; then chown postgres:postgres "$sock"; fi
  echo "$port" >"$replica/port"
  echo "$bindir" >"$replica/bindir"
  as_owner "$bindir/pg_ctl" -D "$replica/data" -l "$replica/server.log" -w -t 60 \
    -o "-p $port -k $sock -c hot_standby=on" start >/dev/null
  [ "$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAXc 'SELECT pg_is_in_recovery()')" = t ] ||
    die "the replica is not in recovery"
  log "replica of $primary running on 127.0.0.1:$port ($replica)"
  printf 'export PHI_REPLICA_PORT=%s\n' "$port"
}

stop() {
  local replica=${1:?REPLICA_DIR}
  [ -f "$replica/bindir" ] || return 0
  as_owner "$(cat "$replica/bindir")/pg_ctl" -D "$replica/data" -m fast -w stop >/dev/null 2>&1 || true
  log "stopped ($replica)"
}

case $cmd in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: deploy/replica.sh start PRIMARY_DIR REPLICA_DIR | stop REPLICA_DIR" ;;
esac
