#!/usr/bin/env bash
# The gateway through HTTP against the same SQL through pgbench, in one run:
# create, read by id, a counted TCM list and a counted `near` page, at 1, 4
# and 16 clients, with requests/s, p50 and p99, and the ratio HTTP/pgbench.
#
#   bench/run.sh http          (or bench/http.sh with a cluster already up)
#   BENCH_SECS=5 BENCH_ROUNDS=2 BENCH_HERBS=200000 BENCH_PRACTITIONERS=1000000
#   BENCH_CLIENTS="1 4 16" BENCH_WHAT="create read tcm near"
#   BENCH_DELAY_MS=1  every round trip to PostgreSQL 1 ms longer, for both
#                     sides (bench/delay-proxy.py: this kernel has no netem)
# (each side runs BENCH_ROUNDS times BENCH_SECS seconds per line)
#
# Each line also says how many statements phi_app sent per request (HTTP,
# as pg_stat_statements counts them) and per transaction (pgbench, its
# script's), and the CPU each process spent per request.
#
# pgbench is the naive client: a CMS that talks SQL to the same tables
# itself, as phi_app with its identity set in a transaction (bench/http/*.sql:
# BEGIN, the identity, the store's statement, the audit entry, COMMIT; 4
# statements a create, 5 a read, as the gateway sent them before issue 26),
# prepared. The gateway now sends a create or a read as one statement. wrk (Debian's package, installed
# here when missing) drives HTTP from the same machine. Needs the cluster's
# environment (PHI_PG_*), as bench/run.sh sets it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${BENCH_SECS:-5}
rounds=${BENCH_ROUNDS:-2}
clients=${BENCH_CLIENTS:-1 4 16}
whats=${BENCH_WHAT:-create read tcm near}
herbs=${BENCH_HERBS:-200000}
practitioners=${BENCH_PRACTITIONERS:-1000000}
work=$root/.local/bench-http
rm -rf "$work"; mkdir -p "$work"

if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
bin=${PHI_BENCH_BIN:-$root/target/release/phi-gateway}
[ -x "$bin" ] || cargo build --locked --release --bin phi-gateway

db=bench_http
host_port=${PHI_PG_ADMIN_URL#*@}; host_port=${host_port%%/*}
psql "$PHI_PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
admin=${PHI_PG_ADMIN_URL%/*}/$db
app=postgres://phi_app:$PHI_PG_APP_PASSWORD@$host_port/$db
export MIGRATION_DATABASE_URL=$admin DATABASE_URL=$app PHI_ENVIRONMENT=development
export AUDIT_SEALER_DATABASE_URL=postgres://phi_sealer:$PHI_PG_SEALER_PASSWORD@$host_port/$db
export PHI_KEYRING=$work/keyring.json PHI_AUDIT_SIGNING_KEY=$work/signing.json
export PAYLOAD_SECRET=bench-secret PHI_CONFIG=/dev/null DATABASE_TLS_MODE=disable
export DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-20} PHI_ANALYTICS_REFRESH_SECS=0
# One load generator on one address: the anonymous gate's per-client rate
# would refuse it, and its share of the pool would refuse 16 clients of it.
# The gate is measured apart (tests/api/limits.rs); here it admits all.
export PHI_ANONYMOUS_PER_MINUTE=0 PHI_ANONYMOUS_CONCURRENCY=${PHI_ANONYMOUS_CONCURRENCY:-64}
"$bin" migrate
"$bin" keys generate --out "$PHI_KEYRING" >/dev/null
"$bin" keys signing generate --out "$PHI_AUDIT_SIGNING_KEY" --public-out "$work/verify.json" >/dev/null
echo "seeding $herbs herbs and $practitioners practitioners..." >&2
"$bin" seed --herbs "$herbs" --practitioners "$practitioners" 2>/dev/null
psql "$admin" -qXc "VACUUM ANALYZE" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

# With a delay: the gateway and pgbench reach PostgreSQL through the proxy.
pg_host=${host_port%:*} pg_port=${host_port#*:}
if [ "${BENCH_DELAY_MS:-0}" != 0 ]; then
  pg_port=${BENCH_PROXY_PORT:-18432}
  python3 bench/delay-proxy.py "$pg_port" "$host_port" "$BENCH_DELAY_MS" &
  proxy=$!
  sleep 0.5
  export DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@$pg_host:$pg_port/$db
fi

port=${BENCH_PORT:-18080}
export PHI_PORT=$port
RUST_LOG=${RUST_LOG:-info} "$bin" serve >"$work/gateway.log" 2>&1 &
gw=$!
trap 'kill $gw ${proxy:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
sleep 1
idle=$(awk '/VmRSS/ {print $2}' /proc/$gw/status)
export BENCH_TOKEN; BENCH_TOKEN=$("$bin" dev-token --user bench)

# A thousand submissions of the bench user, for reads by id (HTTP and pgbench
# read the same rows).
for _ in $(seq 1000); do
  curl -sf -o /dev/null -X POST "127.0.0.1:$port/api/symptom-submissions" \
    -H "Authorization: JWT $BENCH_TOKEN" -H 'Content-Type: application/json' \
    -d '{"symptoms":[{"name":"Cough","severity":2,"onset":"2026-01-01"}]}'
done
psql "$admin" -qXc "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM symptom_submissions; \
  CREATE UNIQUE INDEX ON bench_ids (n); GRANT SELECT ON bench_ids TO phi_app"
psql "$admin" -tAXc "SELECT id FROM bench_ids ORDER BY n" >"$work/ids"

# pgbench scripts: the statements the gateway sends, with what it binds as
# parameters bound by pgbench too (-D values, sent as parameters of the
# prepared statements, not literals folded into the plan). The sealed
# values stay constants: the gateway binds them as binary bytea, which the
# server copies as is. An anonymous caller's identity is empty, which -D
# cannot say: those scripts have it inline.
script() { # name anonymous
  if [ "$2" = anonymous ]; then
    sed -e "s/:user_id/''/; s/:roles/''/; s/:collection/''/; s/:purpose/''/" bench/http/begin.sql
  else
    cat bench/http/begin.sql
  fi >"$work/begin-$1.sql"
  awk -v b="$work/begin-$1.sql" '/^-- @begin$/ { while ((getline l < b) > 0) print l; next } { print }' \
    "bench/http/$1.sql" >"$work/$1.sql"
}
script create user
script read user
script tcm anonymous
script near anonymous
# What the gateway binds for the bench user (the request id and the read's
# audit entry vary per request there; their sizes are these).
pgbench_vars=(-D user_id=users:bench -D roles=patient -D collection=users -D status=submitted
  -D request_id=01a2305c-51de-70d4-b979-dda6ae39d446 -D client_addr=127.0.0.1
  -D 'actions={READ}' -D 'tables={symptom_submissions}' -D 'ids={01a2305c-51de-70d4-b979-dda6ae39d446}'
  -D 'outcomes={success}' -D 'nulls={NULL}' -D 'subjects={users:bench}' -D purpose=patient-request
  -D 'fields={"id,owner,status,practitionerId,symptoms,notes,contactEmail,dateOfBirth,ageBand,region,symptomCategories,createdAt,updatedAt"}')

# The children's line of bash's `times` ("0m1.234s 0m0.567s") -> clock ticks.
cpu_of_times() {
  awk -v hz="$(getconf CLK_TCK)" '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%.0f\n", t * hz }'
}

percentiles() { # pgbench per-transaction logs -> "p50 p99" in ms
  cat "$@" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {
    if (NR == 0) { print "- -"; exit }
    printf "%.2f %.2f\n", a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000 }'
}

# CPU time (clock ticks) of a process and its children, reaped or live:
# the postmaster's tree is every backend, the gateway's is itself.
ticks() { # pid
  local total=0 t
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0)
  total=$t
  for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    t=$(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
postmaster=$(head -1 "$PHI_PG_DIR/data/postmaster.pid")

# phi_app's statements in the bench database since `stmts_reset`.
stmts_reset() {
  psql "$admin" -qtAXc "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)" >/dev/null
}
stmts() {
  psql "$admin" -qtAXc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND userid = 'phi_app'::regrole"
}
hz=$(getconf CLK_TCK)
# "gateway postgres loadgen" CPU microseconds per request over a run:
# $1 requests, then the three tick deltas.
per_request() {
  awk -v n="$1" -v g="$2" -v p="$3" -v l="$4" -v hz="$hz" 'BEGIN {
    if (n <= 0) { print "- - -"; exit }
    printf "%.0f %.0f %.0f\n", g * 1e6 / hz / n, p * 1e6 / hz / n, l * 1e6 / hz / n }'
}

# The statement timeout the gateway sets: 5 s for anonymous callers.
timeout_of() { case $1 in tcm | near) echo 5000 ;; *) echo 30000 ;; esac; }

# One pgbench run; its per-transaction logs stay for the percentiles.
# -> "tps transactions postgres_ticks pgbench_ticks statements"
run_pgbench() { # script clients round
  local threads=$(( $2 < 2 ? 1 : 2 ))
  local out pg0 pg1 l
  pg0=$(ticks "$postmaster")
  out=$(cd "$work" && PGPASSWORD=$PHI_PG_APP_PASSWORD pgbench -n -M prepared -c "$2" -j "$threads" -T "$secs" \
    -l --log-prefix="pgbench_log_$3" -f "$1.sql" "${pgbench_vars[@]}" -D "timeout=$(timeout_of "$1")" \
    -h "$pg_host" -p "$pg_port" -U phi_app "$db" 2>&1; times)
  # pgbench's backends end after it does: count their CPU once the
  # postmaster has reaped them, not in the next run.
  for _ in $(seq 50); do
    [ "$(psql "$admin" -tAXc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'")" = 0 ] && break
    sleep 0.1
  done
  sleep 0.2
  pg1=$(ticks "$postmaster")
  local tps n
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  n=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF; exit}')
  if [ -z "$tps" ] || echo "$out" | grep -q "error\|aborted"; then
    echo "pgbench $1 with $2 clients failed:" >&2; echo "$out" >&2; exit 1
  fi
  l=$(echo "$out" | tail -1 | cpu_of_times)
  # Its statements per transaction are its script's (pg_stat_statements
  # does not see the BEGIN and COMMIT pgbench prepares).
  echo "$tps $n $((pg1 - pg0)) $l $(( $(grep -c ';$' "$work/$1.sql") * n ))"
}

# wrk's latency ("850.00us", "1.23ms", "1.02s") in ms.
ms() { awk -v v="$1" 'BEGIN { x = v + 0; if (v ~ /us$/) x /= 1000; else if (v ~ /ms$/) x += 0; else if (v ~ /s$/) x *= 1000; printf "%.2f", x }'; }

# One wrk run. -> "rps p50_ms p99_ms requests gateway_ticks postgres_ticks wrk_ticks statements"
run_wrk() { # script path ids clients
  local threads=$(( $4 < 2 ? 1 : 2 ))
  local out g0 g1 pg0 pg1 l
  stmts_reset
  g0=$(ticks "$gw"); pg0=$(ticks "$postmaster")
  out=$(BENCH_PATH=$2 BENCH_IDS_FILE=$3 wrk -t "$threads" -c "$4" -d "${secs}s" --timeout 30s --latency \
    -s "bench/http/$1.lua" "http://127.0.0.1:$port" 2>&1; times)
  g1=$(ticks "$gw"); pg1=$(ticks "$postmaster")
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "wrk $1 $2 with $4 clients had failures:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p50 p99 n
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  n=$(echo "$out" | awk '/requests in/ {print $1; exit}')
  l=$(echo "$out" | tail -1 | cpu_of_times)
  echo "$rps $p50 $p99 $n $((g1 - g0)) $((pg1 - pg0)) $l $(stmts)"
}

http_run() { # what clients
  case $1 in
    create) run_wrk create / "" "$2" ;;
    read) run_wrk get /api/symptom-submissions/ "$work/ids" "$2" ;;
    tcm) BENCH_TOKEN="" run_wrk get '/api/herbs?taste=bitter&meridian=liver' "" "$2" ;;
    near) BENCH_TOKEN="" run_wrk get '/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=25' "" "$2" ;;
  esac
}

# Rounds alternate which side goes first (HTTP, pgbench, pgbench, HTTP, ..),
# so that what drifts on a shared machine over a minute falls on both
# sides alike. Rates are the mean of the rounds; pgbench's percentiles are
# over every transaction of its rounds, wrk's the mean of its rounds'.
printf '%-8s %7s | %10s %9s %9s | %10s %9s %9s | %5s | %-13s | %s\n' what clients "HTTP rps" p50ms p99ms "pgbench" p50ms p99ms ratio \
  "statements" "CPU us/request: HTTP gateway+postgres+wrk, pgbench postgres+pgbench"
for c in $clients; do
  for what in $whats; do
    rm -f "$work"/pgbench_log_*
    : >"$work/w"; : >"$work/p"
    for r in $(seq "$rounds"); do
      if [ $((r % 2)) = 1 ]; then
        http_run "$what" "$c" >>"$work/w"; run_pgbench "$what" "$c" "$r" >>"$work/p"
      else
        run_pgbench "$what" "$c" "$r" >>"$work/p"; http_run "$what" "$c" >>"$work/w"
      fi
    done
    read -r wr w50 w99 wg wp wl ws < <(awk -v hz="$hz" '{ r += $1; a += $2; b += $3; n += $4; g += $5; p += $6; l += $7; s += $8 }
      END { printf "%.0f %.2f %.2f %.0f %.0f %.0f %.2f\n", r / NR, a / NR, b / NR, g * 1e6 / hz / n, p * 1e6 / hz / n, l * 1e6 / hz / n, s / n }' "$work/w")
    read -r pt pp pl ps < <(awk -v hz="$hz" '{ t += $1; n += $2; p += $3; l += $4; s += $5 }
      END { printf "%.0f %.0f %.0f %.2f\n", t / NR, p * 1e6 / hz / n, l * 1e6 / hz / n, s / n }' "$work/p")
    read -r p50 p99 < <(percentiles "$work"/pgbench_log_*)
    ratio=$(awk -v a="$wr" -v b="$pt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-8s %7s | %10s %9s %9s | %10s %9s %9s | %5s | %5s, %5s | %s+%s+%s, %s+%s\n' "$what" "$c" "$wr" "$w50" "$w99" "$pt" "$p50" "$p99" "$ratio" \
      "$ws" "$ps" "$wg" "$wp" "$wl" "$pp" "$pl"
  done
done
# 64 clients reading, for the memory figure.
BENCH_PATH=/api/symptom-submissions/ BENCH_IDS_FILE=$work/ids wrk -t 2 -c 64 -d 10s \
  -s bench/http/get.lua "http://127.0.0.1:$port" >/dev/null 2>&1
hwm=$(awk '/VmHWM/ {print $2}' /proc/$gw/status)
echo "gateway RSS idle $((idle / 1024)) MiB; peak through all of the above and 64 clients $((hwm / 1024)) MiB"
