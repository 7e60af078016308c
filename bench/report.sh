#!/usr/bin/env bash
# A patient's access report (GET /api/audit/my-access-report) through HTTP,
# as the patient, in a log of BENCH_LOG_ENTRIES entries (10 million) of which
# BENCH_PATIENT_ENTRIES (10,000) concern that patient, spread over three
# years.
#
#   bench/run.sh report        (or bench/report.sh with a cluster already up)
#   BENCH_SECS=10 BENCH_LOG_ENTRIES=10000000 BENCH_PATIENT_ENTRIES=10000
#
# The entries are written straight into the log by SQL (as the service
# writes them: READs by practitioners with a purpose and the patient as
# subject); the gateway runs without a sealer, so nothing chains them during
# the run. wrk drives one client at a time (the report is a patient looking
# at their own page); p50 and p99 are wrk's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${BENCH_SECS:-10}
total=${BENCH_LOG_ENTRIES:-10000000}
mine=${BENCH_PATIENT_ENTRIES:-10000}
work=$root/.local/bench-report
rm -rf "$work"; mkdir -p "$work"
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
bin=${PHI_BENCH_BIN:-$root/target/release/phi-gateway}
[ -x "$bin" ] || cargo build --locked --release --bin phi-gateway

db=bench_report
host_port=${PHI_PG_ADMIN_URL#*@}; host_port=${host_port%%/*}
psql "$PHI_PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
admin=${PHI_PG_ADMIN_URL%/*}/$db
export MIGRATION_DATABASE_URL=$admin DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@$host_port/$db
export PHI_ENVIRONMENT=development PHI_KEYRING=$work/keyring.json PAYLOAD_SECRET=bench-secret
export PHI_CONFIG=/dev/null DATABASE_TLS_MODE=disable PHI_ANALYTICS_REFRESH_SECS=0
"$bin" migrate
"$bin" keys generate --out "$PHI_KEYRING" >/dev/null

echo "writing $total audit entries, $mine of them about the patient..." >&2
every=$((total / mine))
started=$(date +%s)
psql "$admin" -qX -v ON_ERROR_STOP=1 <<SQL
SET synchronous_commit = off;
INSERT INTO audit.log (at, actor_user, actor_collection, actor_roles, action, entity_type, entity_id,
                       request_id, client_addr, outcome, fields, purpose, subject)
SELECT now() - interval '1 second' * ((g * 9973) % (86400 * 365 * 3)),
       'users:doc' || (g % 500), 'users', 'patient,practitioner', 'READ', 'symptom_submissions',
       md5(g::text), md5((g * 7)::text), '10.0.0.' || (g % 200), 'success',
       '{id,owner,status,symptoms,notes}', 'treatment',
       CASE WHEN g % $every = 0 THEN 'users:bench' ELSE 'users:p' || (g % 1000000) END
FROM generate_series(1::bigint, $total) AS g;
VACUUM ANALYZE audit.log;
SQL
echo "written in $(( $(date +%s) - started )) s" >&2
psql "$admin" -tAXc "SELECT 'log entries: ' || count(*) || ', the patient''s: ' || count(*) FILTER (WHERE subject = 'users:bench') FROM audit.log" >&2
psql "$admin" -tAXc "SELECT 'audit.log on disk: ' || pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit.log'::regclass" >&2

port=${BENCH_PORT:-18081}
export PHI_PORT=$port
"$bin" serve >"$work/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
token=$("$bin" dev-token --user bench)

run() { # label path
  local out
  out=$(wrk -t1 -c1 -d"${secs}s" --latency -H "Authorization: JWT $token" "http://127.0.0.1:$port$2")
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; exit 1; fi
  printf '%-44s %s\n' "$1" "$(echo "$out" | awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {printf "%7.0f req/s  p50 %8s  p99 %8s", rps, p50, p99}')"
}
curl -fs -H "Authorization: JWT $token" "http://127.0.0.1:$port/api/audit/my-access-report?limit=1" >/dev/null
run "first page (100 of $mine, six years)" "/api/audit/my-access-report"
after=$(curl -fs -H "Authorization: JWT $token" "http://127.0.0.1:$port/api/audit/my-access-report?limit=1000&after=0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["docs"][-1]["position"])')
run "a later page (after position $after)" "/api/audit/my-access-report?after=$after"
run "one month" "/api/audit/my-access-report?from=$(date -u -d '-30 days' +%F)"
run "CSV, 1000 entries" "/api/audit/my-access-report?format=csv&limit=1000"
psql "$admin" -tAXc "SET app.user_id = 'users:bench'; EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) SELECT * FROM audit.access_report(now() - interval '6 years', now(), false, 0, 101)" | tail -3 >&2
