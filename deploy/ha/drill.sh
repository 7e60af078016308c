#!/usr/bin/env bash
# Losing the primary, for real: a failover drill (RELIABILITY.md).
#
#   deploy/ha/drill.sh            run it; prints the figures, exits non-zero
#                                 if an acknowledged write is lost, the
#                                 audit chain does not verify, or the
#                                 gateway does not resume
#   DRILL_PGBOUNCER=1 deploy/ha/drill.sh
#                                 the same with Debian's PgBouncer in
#                                 transaction mode between the service's
#                                 connections and HAProxy (deploy/pgbouncer.ini,
#                                 DATABASE_POOLER=true; the sealer direct,
#                                 past PgBouncer)
#   DRILL_PGBOUNCER=1 DRILL_SEALER_PGBOUNCER=1 deploy/ha/drill.sh
#                                 the sealer through PgBouncer too
#
# Two PostgreSQL nodes under Patroni (Debian's patroni, with one etcd
# member: Debian's etcd-server) in synchronous mode, HAProxy routing to
# whichever node Patroni's REST API says is the primary (the usual way to
# give a client that knows one host a Patroni cluster; the gateway's driver,
# sqlx, takes one host), and the gateway pointed at HAProxy. Writers create
# submissions through the gateway; the primary's node is killed (Patroni
# and PostgreSQL, SIGKILL) under them. Then: every write the gateway
# answered 201 for must be on the new primary, every failure must have been
# a 503 with Retry-After, and the audit chain must verify against its
# anchor. Installs the three packages with apt-get when missing (root).
# Everything lives in .local/ha (removed first) and is stopped at the end.
#
# Not part of .ci/run: it needs the packages above and about a minute of
# its own; run it by hand or in a job of its own.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
d=$root/.local/ha
WRITE_SECS=${DRILL_WRITE_SECS:-40}
KILL_AT=${DRILL_KILL_AT:-8}

log() { printf 'drill: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 200); do
    # Below the kernel's ephemeral range (32768-60999), which outgoing
    # connections take from while the drill sets up.
    p=$((20000 + RANDOM % 12000))
    port_in_use "$p" || { grep -qx "$p" "$d/ports" 2>/dev/null || { echo "$p" >>"$d/ports"; echo "$p"; return; }; }
  done
  die "no free port"
}

need=()
command -v patroni >/dev/null || need+=(patroni)
command -v etcd >/dev/null || need+=(etcd-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ -n "${DRILL_PGBOUNCER:-}" ]; then
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
fi
if [ ${#need[@]} -gt 0 ]; then
  is_root || die "missing: ${need[*]}; install Debian's packages (needs root)"
  log "installing Debian's ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 ||
    { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2; }
fi
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

cleanup() {
  set +e
  for f in "$d"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  pkill -9 -f "$d/node" 2>/dev/null
  sleep 0.5
}
trap cleanup EXIT
[ -d "$d" ] && { cleanup; rm -rf "$d"; }
mkdir -p "$d"
is_root && chown postgres:postgres "$d"

log "building the gateway"
(cd "$root" && cargo build --quiet --bin phi-gateway)
gw=$root/target/debug/phi-gateway

EC=$(free_port); EP=$(free_port); HP=$(free_port); GP=$(free_port)
P1=$(free_port); P2=$(free_port); R1=$(free_port); R2=$(free_port)
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
SUPW=$(pw); REPW=$(pw); APPW=$(pw); SEAPW=$(pw)

etcd --name ha --data-dir "$d/etcd" \
  --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
  --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
  --initial-cluster "ha=http://127.0.0.1:$EP" >"$d/etcd.log" 2>&1 &
echo $! >"$d/etcd.pid"

node_config() { # name pgport restport
  cat <<EOF
scope: phi
name: $1
log: {level: WARNING}
restapi:
  listen: 127.0.0.1:$3
  connect_address: 127.0.0.1:$3
etcd3:
  hosts: 127.0.0.1:$EC
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 64MB
  initdb:
    - encoding: UTF8
    - auth-host: scram-sha-256
    - auth-local: trust
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:$2
  connect_address: 127.0.0.1:$2
  data_dir: $d/$1
  bin_dir: $pgbin
  pgpass: $d/pgpass-$1
  authentication:
    superuser: {username: postgres, password: '$SUPW'}
    replication: {username: replicator, password: '$REPW'}
  parameters:
    unix_socket_directories: '$d'
    password_encryption: scram-sha-256
    random_page_cost: 1.1
EOF
}
start_node() { # name pgport restport
  node_config "$@" >"$d/$1.yml"
  is_root && chown postgres:postgres "$d/$1.yml"
  as_pg patroni "$d/$1.yml" >"$d/$1.log" 2>&1 &
}
rest() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/$2" || true; }
wait_for() { # what seconds command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  die "$what: not within ${secs}s"
}
for _ in $(seq 100); do port_in_use "$EC" && break; sleep 0.1; done
start_node node1 "$P1" "$R1"
wait_for "node1 is the primary" 60 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$R1/primary)\" = 200 ]"
start_node node2 "$P2" "$R2"
wait_for "node2 is the synchronous standby" 120 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$R2/sync)\" = 200 ]"

cat >"$d/haproxy.cfg" <<EOF
global
  maxconn 400
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
listen primary
  bind 127.0.0.1:$HP
  option httpchk OPTIONS /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
  server node1 127.0.0.1:$P1 maxconn 200 check port $R1
  server node2 127.0.0.1:$P2 maxconn 200 check port $R2
EOF
"$haproxy" -f "$d/haproxy.cfg" -D -p "$d/haproxy.pid"
su_url="postgres://postgres:$SUPW@127.0.0.1:$HP"
# HAProxy starts with every server up until its checks say otherwise
# (fall 2 at 500 ms): give them that long before trusting the route.
sleep 1.5
wait_for "HAProxy reaches the primary" 20 bash -c "[ \"\$(psql -qAt '$su_url/postgres' -c 'select pg_is_in_recovery()')\" = f ]"

psql -qAt -v ON_ERROR_STOP=1 "$su_url/postgres" <<EOF >/dev/null
CREATE ROLE phi_app LOGIN PASSWORD '$APPW';
CREATE ROLE phi_sealer LOGIN PASSWORD '$SEAPW';
CREATE DATABASE phi;
EOF
# The service's role reaches the primary through HAProxy, or through
# PgBouncer (transaction mode, the kit's own ini) in front of HAProxy.
AP=$HP
if [ -n "${DRILL_PGBOUNCER:-}" ]; then
  AP=$(free_port)
  mkdir -p "$d/pgbouncer"
  (umask 077; printf '"phi_app" "%s"\n"phi_sealer" "%s"\n' "$APPW" "$SEAPW" >"$d/pgbouncer/userlist.txt")
  sed -e "s|@PG_PORT@|$HP|; s|@PORT@|$AP|; s|@DIR@|$d/pgbouncer|g; s|@POOL_SIZE@|4|" \
    "$root/deploy/pgbouncer.ini" >"$d/pgbouncer/pgbouncer.ini"
  is_root && chown -R postgres:postgres "$d/pgbouncer"
  as_pg "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$d/pgbouncer/pgbouncer.ini" >/dev/null
  wait_for "PgBouncer listens" 10 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$AP) 2>/dev/null"
  cp "$d/pgbouncer/pgbouncer.pid" "$d/pgbouncer.pid"
  export DATABASE_POOLER=true
fi
export PHI_CONFIG=/dev/null PHI_ENVIRONMENT=development DATABASE_TLS_MODE=disable
export MIGRATION_DATABASE_URL="$su_url/phi"
export DATABASE_URL="postgres://phi_app:$APPW@127.0.0.1:$AP/phi"
# The sealer connects past PgBouncer (HAProxy), or through it too with
# DRILL_SEALER_PGBOUNCER=1 (its statements are prepared unnamed, so other
# server connections after the failover are nothing to it).
SP=$HP
[ -n "${DRILL_PGBOUNCER:-}" ] && [ -n "${DRILL_SEALER_PGBOUNCER:-}" ] && SP=$AP
export AUDIT_SEALER_DATABASE_URL="postgres://phi_sealer:$SEAPW@127.0.0.1:$SP/phi"
export DATABASE_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)
export DATABASE_BLIND_INDEX_KEY=$(head -c 32 /dev/urandom | base64)
export PAYLOAD_SECRET=$(pw)
export PHI_AUDIT_ANCHOR=$d/anchor.jsonl
export PHI_LOG_FORMAT=json RUST_LOG=warn RUST_BACKTRACE=0
"$gw" migrate
"$gw" keys signing generate --out "$d/signing.json" --public-out "$d/verify.json" >/dev/null
export PHI_AUDIT_SIGNING_KEY=$d/signing.json PHI_AUDIT_VERIFY_KEY=$d/verify.json
PHI_PORT=$GP DATABASE_ACQUIRE_TIMEOUT_SECS=2 PHI_ANALYTICS_REFRESH_SECS=0 \
  "$gw" serve >"$d/gateway.log" 2>&1 &
echo $! >"$d/gateway.pid"
wait_for "the gateway answers" 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$GP/health/database)\" = 200 ]"

leader=$(curl -s "http://127.0.0.1:$R1/patroni" | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])')
[ "$leader" = primary ] || [ "$leader" = master ] || die "node1 is not the primary ($leader)"
log "node1 primary on $P1, node2 synchronous standby on $P2, HAProxy $HP${DRILL_PGBOUNCER:+, PgBouncer $AP}, gateway $GP, sealer via $SP"

# Writers: four threads creating submissions for WRITE_SECS; the primary's
# node is killed KILL_AT seconds in.
TOKEN=$("$gw" dev-token --user drill)
export GP TOKEN WRITE_SECS
python3 - "$d/writes.jsonl" <<'PY' &
import json, os, sys, threading, time, urllib.request, urllib.error
out = open(sys.argv[1], "w")
lock = threading.Lock()
end = time.time() + int(os.environ["WRITE_SECS"])
url = f"http://127.0.0.1:{os.environ['GP']}/api/symptom-submissions"
body = json.dumps({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": "drill"}).encode()
def writer(n):
    i = 0
    while time.time() < end:
        i += 1
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": "JWT " + os.environ["TOKEN"]})
        t = time.time()
        rec = {"t": t, "writer": n}
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                rec["status"] = r.status
                rec["id"] = json.load(r)["doc"]["id"]
        except urllib.error.HTTPError as e:
            rec["status"] = e.code
            rec["retry_after"] = e.headers.get("Retry-After")
        except Exception as e:
            rec["status"] = 0
            rec["error"] = type(e).__name__
        rec["ms"] = round((time.time() - t) * 1000, 1)
        with lock:
            out.write(json.dumps(rec) + "\n"); out.flush()
        if rec["status"] != 201:
            time.sleep(0.1)
threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
for t in threads: t.start()
for t in threads: t.join()
PY
writers=$!
sleep "$KILL_AT"
killed_at=$(date +%s.%N)
# (By pattern: as root, $! above is runuser's pid, not Patroni's.)
pkill -9 -f "patroni $d/node1.yml" || true
pkill -9 -f "$pgbin/postgres -D $d/node1" || true
log "killed node1 (Patroni and PostgreSQL) at $(date -u +%T.%N | cut -c1-12)"
wait "$writers"

wait_for "node2 is the primary" 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$R2/primary)\" = 200 ]"
# Everything the gateway acknowledged, looked up on the new primary.
python3 -c '
import json, sys
for r in map(json.loads, open(sys.argv[1])):
    if r["status"] == 201:
        print(r["id"])' "$d/writes.jsonl" >"$d/acked.txt"
found=$({ echo "CREATE TEMP TABLE acked (id uuid); COPY acked FROM STDIN;"
          cat "$d/acked.txt"; echo '\.'
          echo "SELECT count(*) FROM acked JOIN symptom_submissions USING (id);"; } |
        psql -qAt -v ON_ERROR_STOP=1 "$su_url/phi")
# The gateway's own sealer seals every entry, those after the switch too
# (before the verifier, which seals what is left itself), within 20 s.
sealed_by_gateway=no
for _ in $(seq 1 200); do
  unsealed=$(psql -qAt "$su_url/phi" -c "SELECT count(*) FROM audit.log l WHERE NOT EXISTS
    (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq)")
  [ "$unsealed" = 0 ] && { sealed_by_gateway=yes; break; }
  sleep 0.1
done
kill "$(cat "$d/gateway.pid")" 2>/dev/null || true
sleep 1
verify_out=$("$gw" audit verify --anchor "$d/anchor.jsonl" 2>&1) && verified=yes || verified=no

rc=0
python3 - "$d/writes.jsonl" "$killed_at" "$found" "$verified" "$sealed_by_gateway" <<'PY' || rc=$?
import json, sys
recs = sorted(map(json.loads, open(sys.argv[1])), key=lambda r: r["t"])
killed, found, verified = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
acked = [r for r in recs if r["status"] == 201]
failed = [r for r in recs if r["status"] != 201]
after = [r for r in recs if r["t"] >= killed]
first_fail = next((r for r in after if r["status"] != 201), None)
last_fail = failed[-1] if failed else None
resumed = next((r for r in after if r["status"] == 201 and (last_fail is None or r["t"] > last_fail["t"])), None)
statuses = {}
for r in failed:
    k = f'{r["status"]}' + (" with Retry-After" if r.get("retry_after") else "")
    statuses[k] = statuses.get(k, 0) + 1
print(f"writes sent:                      {len(recs)} (4 writers, {len(after)} after the kill)")
print(f"acknowledged (201):               {len(acked)}")
print(f"acknowledged, on the new primary: {found}  (lost: {len(acked) - found})")
print(f"failed during the switch:         {len(failed)}  {statuses}")
if first_fail and last_fail:
    print(f"failures from kill + {first_fail['t'] - killed:.2f} s to kill + {last_fail['t'] - killed:.2f} s")
if resumed:
    print(f"every write succeeds again from:  kill + {resumed['t'] - killed:.2f} s")
print(f"every entry sealed by the gateway: {sys.argv[5]}")
print(f"audit chain verifies (anchored): {verified}")
ok = found == len(acked) and resumed is not None and verified == "yes" and sys.argv[5] == "yes" \
     and all(r["status"] == 503 and r.get("retry_after") for r in failed)
print("drill:", "passed" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
[ "$verified" = yes ] || printf '%s\n' "$verify_out" >&2
exit $rc
