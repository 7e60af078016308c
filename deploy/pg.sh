#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for development and tests.
#
#   deploy/pg.sh start   [DIR]   initdb (if needed) and start; idempotent
#   deploy/pg.sh stop    [DIR]   stop if running; idempotent
#   deploy/pg.sh destroy [DIR]   stop and delete the folder
#   deploy/pg.sh env     [DIR]   print the cluster's environment (export lines)
#   deploy/pg.sh status  [DIR]   exit 0 when running
#
# DIR defaults to $PHI_PG_DIR or .local/pg in the repository (git-ignored).
# The cluster listens on 127.0.0.1 on a free port and on a Unix socket inside
# DIR. It never uses a server that is already running. It runs as the calling
# user, or as the `postgres` system user when called as root (initdb refuses
# root). When no PostgreSQL server (15 or later) is installed and we are root,
# Debian's `postgresql` package is installed first.
#
# Authentication is scram-sha-256 with passwords generated here and kept in
# DIR (mode 0600): a superuser for migrations and tests, and the login roles
# phi_app / phi_analytics / phi_auditor / phi_sealer, whose passwords
# deployment (this script) sets, never the migrations.
#
# PHI_PG_FAST=1 turns off fsync and synchronous commit: for test clusters only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cmd=${1:-}
dir=${2:-${PHI_PG_DIR:-$root/.local/pg}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as the cluster's owner.
as_owner() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_bindir() {
  local best="" v
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] || continue
    v=$(basename "$(dirname "$d")")
    [ "${v%%.*}" -ge 15 ] 2>/dev/null || continue
    if [ -z "$best" ] || [ "${v%%.*}" -gt "$(basename "$(dirname "$best")")" ]; then best=$d; fi
  done
  printf '%s' "$best"
}

ensure_server() {
  bindir=$(find_bindir)
  if [ -z "$bindir" ]; then
    is_root || die "no PostgreSQL server >= 15 installed; install Debian's 'postgresql' package (needs root)"
    log "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql postgresql-contrib >&2
    bindir=$(find_bindir)
    [ -n "$bindir" ] || die "postgresql installed but no server binary found"
  fi
  local ver
  ver=$(basename "$(dirname "$bindir")")
  [ -f "/usr/share/postgresql/$ver/extension/earthdistance.control" ] ||
    die "the earthdistance extension is missing (Debian ships it in postgresql-$ver)"
  command -v psql >/dev/null || die "psql is missing"
}

# The cluster folder must be reachable by its owner. When called as root and
# the checkout is somewhere the postgres user cannot reach, fall back to a
# folder under /tmp named after the requested one.
relocate_if_unreachable() {
  if is_root && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    local alt
    alt=/tmp/phi-gateway-pg-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
    log "$dir is not reachable by the postgres user; using $alt"
    ln -sfn "$alt" "$dir/link"
    mkdir -p "$alt"
    dir=$alt
    data=$dir/data
  fi
}

# Unix socket paths are limited to 107 bytes.
socket_dir() {
  if [ ${#dir} -le 80 ]; then printf '%s' "$dir"; else
    printf '/tmp/phi-pg-sock-%s' "$(printf '%s' "$dir" | sha256sum | cut -c1-12)"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p
  if [ -f "$dir/port" ]; then
    p=$(cat "$dir/port")
    if ! port_in_use "$p"; then printf '%s' "$p"; return; fi
  fi
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p"; then printf '%s' "$p"; return; fi
  done
  die "no free port found"
}

secret() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | cut -c1-24; }

is_running() {
  [ -f "$data/PG_VERSION" ] || return 1
  as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

write_env() {
  local port su app ana aud sea
  port=$(cat "$dir/port"); su=$(cat "$dir/superuser.pw")
  app=$(cat "$dir/phi_app.pw"); ana=$(cat "$dir/phi_analytics.pw"); aud=$(cat "$dir/phi_auditor.pw")
  sea=$(cat "$dir/phi_sealer.pw")
  umask 077
  cat >"$dir/env" <<EOF
export PHI_PG_DIR='$dir'
export PHI_PG_PORT='$port'
export PHI_PG_SOCKET_DIR='$(socket_dir)'
export PHI_PG_BINDIR='$bindir'
export PHI_PG_ADMIN_URL='postgres://postgres:$su@127.0.0.1:$port/postgres'
export PHI_PG_APP_PASSWORD='$app'
export PHI_PG_ANALYTICS_PASSWORD='$ana'
export PHI_PG_AUDITOR_PASSWORD='$aud'
export PHI_PG_SEALER_PASSWORD='$sea'
EOF
}

# Login roles exist before migrations so that deployment, not migrations,
# owns their passwords; the migrations then fix their attributes.
set_role_passwords() {
  local role pw
  for role in phi_app phi_analytics phi_auditor phi_sealer; do
    pw=$(cat "$dir/$role.pw")
    PGPASSWORD=$(cat "$dir/superuser.pw") psql -q -X -v ON_ERROR_STOP=1 \
      -h 127.0.0.1 -p "$(cat "$dir/port")" -U postgres -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN;
  END IF;
END \$\$;
ALTER ROLE $role PASSWORD '$pw';
SQL
  done
}

start() {
  ensure_server
  relocate_if_unreachable
  if is_root; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  # Clusters made before phi_sealer existed get its password now.
  if [ -f "$dir/initialized" ] && [ ! -f "$dir/phi_sealer.pw" ]; then
    (umask 077; secret >"$dir/phi_sealer.pw")
    if is_root; then chown postgres:postgres "$dir/phi_sealer.pw"; fi
  fi
  if is_running; then
    set_role_passwords
    write_env
    log "already running on port $(cat "$dir/port") ($dir)"
    return
  fi
  # A folder without the marker is a half-made cluster from a crashed run.
  if [ ! -f "$dir/initialized" ]; then
    rm -rf "$data" "$dir"/*.pw "$dir/port" "$dir/env"
    (umask 077; for f in superuser phi_app phi_analytics phi_auditor phi_sealer; do secret >"$dir/$f.pw"; done)
    if is_root; then chown postgres:postgres "$dir"/*.pw; fi
    log "initdb in $data"
    as_owner "$bindir/initdb" -D "$data" -U postgres --auth=scram-sha-256 \
      --pwfile="$dir/superuser.pw" --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "max_connections = 200"
      echo "shared_buffers = 256MB"
      # Solid-state storage: PostgreSQL's default of 4 prices random reads
      # for spinning disks, and with it the planner prefers reading all of
      # a table of 60,000 herbs to their GIN index (3x slower). See
      # deploy/README.md, "PostgreSQL settings".
      echo "random_page_cost = 1.1"
      # Logs under data/log, also as one JSON object per line (the plan
      # tests read auto_explain's output from there by database).
      echo "logging_collector = on"
      echo "log_destination = 'stderr,jsonlog'"
      echo "log_directory = 'log'"
      echo "log_line_prefix = '%m [%p] %q%u@%d '"
      # Statements per request (tests/api/statements.rs, bench/http.sh).
      echo "shared_preload_libraries = 'pg_stat_statements'"
      if [ "${PHI_PG_FAST:-0}" = 1 ]; then
        echo "fsync = off"; echo "synchronous_commit = off"; echo "full_page_writes = off"
      fi
    } >>"$data/postgresql.conf"
    touch "$dir/initialized"
  fi
  local sock tries=0
  sock=$(socket_dir)
  mkdir -p "$sock"; chmod 700 "$sock"
  if is_root; then chown postgres:postgres "$sock"; fi
  until
    pick_port >"$dir/port.new" && mv "$dir/port.new" "$dir/port"
    as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
      -o "-p $(cat "$dir/port") -k $sock" start >/dev/null 2>&1
  do
    tries=$((tries + 1))
    [ $tries -lt 5 ] || { tail -20 "$dir/server.log" >&2 || true; die "could not start PostgreSQL"; }
    rm -f "$dir/port"
  done
  if is_root; then chmod 600 "$dir"/*.pw; chown root:root "$dir"/*.pw 2>/dev/null || true; fi
  set_role_passwords
  write_env
  log "running on 127.0.0.1:$(cat "$dir/port") ($dir)"
}

stop() {
  bindir=$(find_bindir)
  [ -n "$bindir" ] || return 0
  [ -L "$dir/link" ] && { dir=$(readlink "$dir/link"); data=$dir/data; }
  if is_running; then as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; log "stopped ($dir)"; fi
}

destroy() {
  stop
  local d=$dir
  [ -L "$dir/link" ] && rm -rf "$(readlink "$dir/link")"
  rm -rf "$d"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  destroy) destroy ;;
  env) [ -L "$dir/link" ] && dir=$(readlink "$dir/link"); cat "$dir/env" ;;
  status) bindir=$(find_bindir); [ -n "$bindir" ] && is_running ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
