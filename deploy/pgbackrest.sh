#!/usr/bin/env bash
# pgBackRest (Debian's package) for a cluster of deploy/pg.sh: WAL archiving,
# backups, and point-in-time restores into a new cluster. The restore drill
# in the test suite (tests/api/backup.rs) runs it; deploy/README.md's
# runbook uses the same commands against a production repository.
#
#   deploy/pgbackrest.sh setup   DIR          archive WAL of the cluster in DIR
#                                             into DIR/pgbackrest/repo (restarts it)
#   deploy/pgbackrest.sh backup  DIR [full|diff|incr]
#   deploy/pgbackrest.sh restore DIR NEW_DIR (--name POINT | --time TIMESTAMP)
#                                             restores into NEW_DIR (a pg.sh
#                                             folder), recovers to the target,
#                                             promotes and starts it
#   deploy/pgbackrest.sh info    DIR
#
# The stanza is `phi`. The keyring is never in the repository: pgBackRest
# copies the data directory and WAL only; keys live apart (keys/README.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}
dir=${2:?usage: deploy/pgbackrest.sh setup|backup|restore|info DIR ...}
dir=$(cd "$dir" && pwd)

log() { printf 'pgbackrest.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_owner() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

binary() {
  if ! command -v pgbackrest >/dev/null; then
    is_root || die "pgbackrest is not installed; install Debian's 'pgbackrest' package (needs root)"
    log "installing Debian's pgbackrest package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >&2 ||
      { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >&2; }
  fi
  command -v pgbackrest
}

env_of() { (eval "$("$here/pg.sh" env "$1")"; eval "printf '%s' \"\$$2\""); }

conf=$dir/pgbackrest/pgbackrest.conf
# pgBackRest connects as the superuser over the cluster's socket; pg.sh's
# clusters take passwords there too.
br() {
  as_owner env PGPASSWORD="$(cat "$dir/superuser.pw")" "$(binary)" --config="$conf" --stanza=phi "$@"
}

setup() {
  local port sock
  port=$(env_of "$dir" PHI_PG_PORT)
  sock=$(env_of "$dir" PHI_PG_SOCKET_DIR)
  mkdir -p "$dir/pgbackrest/repo" "$dir/pgbackrest/log" "$dir/pgbackrest/lock" "$dir/pgbackrest/spool"
  cat >"$conf" <<CONF
[global]
repo1-path=$dir/pgbackrest/repo
repo1-retention-full=2
log-path=$dir/pgbackrest/log
lock-path=$dir/pgbackrest/lock
spool-path=$dir/pgbackrest/spool
log-level-console=warn
log-level-file=info
start-fast=y
compress-type=lz4

[phi]
pg1-path=$dir/data
pg1-port=$port
pg1-socket-path=$sock
pg1-user=postgres
CONF
  if is_root; then chown -R postgres:postgres "$dir/pgbackrest"; fi
  binary >/dev/null
  local admin
  admin=$(env_of "$dir" PHI_PG_ADMIN_URL)
  psql "$admin" -qX -c "ALTER SYSTEM SET archive_mode = on" \
    -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$conf --stanza=phi archive-push %p'" \
    -c "ALTER SYSTEM SET wal_level = replica"
  "$here/pg.sh" stop "$dir"
  "$here/pg.sh" start "$dir"
  [ "$(env_of "$dir" PHI_PG_PORT)" = "$port" ] || die "the cluster came back on another port"
  br stanza-create
  br check
  log "archiving $dir's WAL into $dir/pgbackrest/repo (stanza phi)"
}

backup() { br --type="${1:-full}" backup; log "backup done"; br info >&2; }

restore() {
  local new=${1:?NEW_DIR}; shift
  local target=()
  case "${1:-}" in
    --name) target=(--type=name "--target=${2:?POINT}") ;;
    --time) target=(--type=time "--target=${2:?TIMESTAMP}") ;;
    *) die "restore needs --name POINT or --time TIMESTAMP" ;;
  esac
  mkdir -p "$new"
  new=$(cd "$new" && pwd)
  [ ! -e "$new/data" ] || die "$new/data exists; restore into a new folder"
  # A pg.sh folder: the role passwords of the source (the restored roles
  # have them), the marker that it is initialised, and the data restored.
  cp -p "$dir"/*.pw "$new/"
  touch "$new/initialized"
  mkdir -p "$new/data"; chmod 700 "$new/data"
  if is_root; then chown postgres:postgres "$new" "$new/data"; fi
  # The restored cluster does not archive into the source's repository.
  br --pg1-path="$new/data" "${target[@]}" --target-action=promote --archive-mode=off restore
  # Started here, not by pg.sh (which sets role passwords: not while the
  # cluster recovers), on a free port and pg.sh's socket folder; pg.sh then
  # takes it over.
  local bindir port sock
  bindir=$(env_of "$dir" PHI_PG_BINDIR)
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
  if [ ${#new} -le 80 ]; then sock=$new; else
    sock=/tmp/phi-pg-sock-$(printf '%s' "$new" | sha256sum | cut -c1-12)
  fi
  mkdir -p "$sock"; chmod 700 "$sock"
  if is_root; then chown postgres:postgres "$sock"; fi
  echo "$port" >"$new/port"
  as_owner "$bindir/pg_ctl" -D "$new/data" -l "$new/server.log" -w -t 60 \
    -o "-p $port -k $sock" start >/dev/null
  # Recovery ends with a promotion; wait for it.
  local in_recovery=t
  for _ in $(seq 1 150); do
    in_recovery=$(PGPASSWORD=$(cat "$new/superuser.pw") psql -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -tAXc 'SELECT pg_is_in_recovery()' 2>/dev/null || echo t)
    [ "$in_recovery" = f ] && break
    sleep 0.2
  done
  [ "$in_recovery" = f ] || { tail -20 "$new/server.log" >&2; die "the restored cluster did not finish recovery"; }
  "$here/pg.sh" start "$new"
  log "restored into $new and promoted"
}

case $cmd in
  setup) setup ;;
  backup) backup "${3:-full}" ;;
  restore) shift 2; restore "$@" ;;
  info) br info ;;
  *) die "usage: deploy/pgbackrest.sh setup|backup|restore|info DIR ..." ;;
esac
