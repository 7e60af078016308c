#!/usr/bin/env bash
# Two builds of the gateway side by side on one database: short wrk runs
# alternate between them (A, B, B, A, ..), so that what drifts on a shared
# machine falls on both alike, and the medians of requests/s and of the
# gateway's CPU per request are printed for each. For a change's effect on
# the gateway's own cost, which one long run cannot separate from the
# machine's noise.
#
#   bench/run.sh ab OLD_BINARY NEW_BINARY     (a private cluster, fsync on)
#   BENCH_AB_WHAT=read|create BENCH_AB_CLIENTS=16 BENCH_AB_SECS=4 BENCH_AB_ROUNDS=6
#   BENCH_AB_ENV_B="DATABASE_POOLER=true"   settings for B alone (A: BENCH_AB_ENV_A),
#   e.g. one binary against itself with a setting changed
#   BENCH_AB_PERF=FILE   after the rounds, `perf record --call-graph dwarf` of B for one more
#   wrk run, written to FILE (read it with `perf report -i FILE --no-children`)
#   BENCH_AB_CALLGRIND=1   after the rounds, each build's user-space instructions
#   per request, counted by valgrind's callgrind over 2,000 requests (4 clients):
#   a figure the machine's neighbours do not move, for changes of a few percent.
#   wrk stops sending after 2,000 answers but returns after its 20 s, so the
#   count also holds the process's background work (sealer, pools) over 20 s,
#   alike for both builds
#   BENCH_AB_STRACE=1   after the rounds, B's system calls per request (strace -c
#   on all its threads for one more wrk run)
#
# Make the old binary with, for example:
#   git stash && cargo build --release --bin phi-gateway && cp target/release/phi-gateway /tmp/old && git stash pop
# Needs the cluster's environment (PHI_PG_*), as bench/run.sh sets it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ $# = 2 ] || { echo "usage: bench/run.sh ab OLD_BINARY NEW_BINARY" >&2; exit 2; }
what=${BENCH_AB_WHAT:-read}
clients=${BENCH_AB_CLIENTS:-16}
threads=$(( clients < 2 ? clients : 2 ))
secs=${BENCH_AB_SECS:-4}
rounds=${BENCH_AB_ROUNDS:-6}
command -v wrk >/dev/null || { echo "wrk is missing (bench/http.sh installs it)" >&2; exit 1; }
work=$root/.local/bench-ab
rm -rf "$work"; mkdir -p "$work"
cp "$1" "$work/a"; cp "$2" "$work/b"

db=bench_ab
host_port=${PHI_PG_ADMIN_URL#*@}; host_port=${host_port%%/*}
psql "$PHI_PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
admin=${PHI_PG_ADMIN_URL%/*}/$db
export MIGRATION_DATABASE_URL=$admin DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@$host_port/$db
export AUDIT_SEALER_DATABASE_URL=postgres://phi_sealer:$PHI_PG_SEALER_PASSWORD@$host_port/$db
export PHI_ENVIRONMENT=development PHI_KEYRING=$work/keyring.json PHI_AUDIT_SIGNING_KEY=$work/signing.json
export PAYLOAD_SECRET=bench-secret PHI_CONFIG=/dev/null DATABASE_TLS_MODE=disable
export DATABASE_MAX_CONNECTIONS=20 PHI_ANALYTICS_REFRESH_SECS=0 PHI_ANONYMOUS_PER_MINUTE=0
"$work/b" migrate
"$work/b" keys generate --out "$PHI_KEYRING" >/dev/null
"$work/b" keys signing generate --out "$PHI_AUDIT_SIGNING_KEY" --public-out "$work/verify.json" >/dev/null
export BENCH_TOKEN; BENCH_TOKEN=$("$work/b" dev-token --user bench)

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { # binary port settings
  # shellcheck disable=SC2086 # the settings are words VAR=value
  env PHI_PORT="$2" RUST_LOG=info $3 "$1" serve >"$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "127.0.0.1:$2/health" >/dev/null && return; sleep 0.1; done
  echo "$1 did not start" >&2; exit 1
}
start "$work/a" 18091 "${BENCH_AB_ENV_A:-}"; a=${pids[0]}
start "$work/b" 18092 "${BENCH_AB_ENV_B:-}"; b=${pids[1]}
for _ in $(seq 1000); do
  curl -sf -o /dev/null -X POST 127.0.0.1:18092/api/symptom-submissions \
    -H "Authorization: JWT $BENCH_TOKEN" -H 'Content-Type: application/json' \
    -d '{"symptoms":[{"name":"Cough","severity":2,"onset":"2026-01-01"}]}'
done
psql "$admin" -tAXc "SELECT id FROM symptom_submissions" >"$work/ids"
export BENCH_PATH=/api/symptom-submissions/ BENCH_IDS_FILE=$work/ids
lua=get; [ "$what" = create ] && lua=create

run() { # pid port -> "rps cpu_us_per_request"
  local u0 s0 u1 s1 out n
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$1/stat")
  out=$(wrk -t "$threads" -c "$clients" -d "${secs}s" -s "bench/http/$lua.lua" "http://127.0.0.1:$2")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$1/stat")
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then echo "$out" >&2; exit 1; fi
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  awk -v n="$n" -v t="$((u1 - u0 + s1 - s0))" -v hz="$(getconf CLK_TCK)" -v d="$secs" \
    'BEGIN { printf "%.0f %.0f\n", n / d, t * 1e6 / hz / n }'
}
for p in 18091 18092; do wrk -t "$threads" -c "$clients" -d 2s -s "bench/http/$lua.lua" "http://127.0.0.1:$p" >/dev/null; done
: >"$work/ra"; : >"$work/rb"
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then run "$a" 18091 >>"$work/ra"; run "$b" 18092 >>"$work/rb"
  else run "$b" 18092 >>"$work/rb"; run "$a" 18091 >>"$work/ra"; fi
  echo "round $i: A $(tail -1 "$work/ra"), B $(tail -1 "$work/rb") (requests/s, gateway CPU us/request)"
done
median() { sort -n -k"$2" "$1" | awk -v k="$2" '{ v[NR] = $k } END { print v[int((NR + 1) / 2)] }'; }
for s in a b; do
  echo "$what at $clients clients, $(echo "$s" | tr ab AB): median $(median "$work/r$s" 1) requests/s, $(median "$work/r$s" 2) us of gateway CPU per request"
done
if [ -n "${BENCH_AB_PERF:-}" ]; then
  perf record -q --call-graph dwarf,16384 -F 1000 -o "$BENCH_AB_PERF" -p "$b" -- sleep "$secs" 2>/dev/null &
  rec=$!
  sleep 0.2
  wrk -t "$threads" -c "$clients" -d "${secs}s" -s "bench/http/$lua.lua" http://127.0.0.1:18092 >/dev/null
  wait "$rec"
  echo "B's profile: $BENCH_AB_PERF"
fi
if [ -n "${BENCH_AB_STRACE:-}" ]; then
  command -v strace >/dev/null || { echo "strace is missing" >&2; exit 1; }
  strace -c -f -o "$work/strace" -p "$b" 2>/dev/null &
  rec=$!
  sleep 0.5
  n=$(wrk -t "$threads" -c "$clients" -d "${secs}s" -s "bench/http/$lua.lua" http://127.0.0.1:18092 | awk '/requests in/ {print $1}')
  kill -INT "$rec"; wait "$rec" || true
  echo "B's system calls per request ($n requests under strace):"
  awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "  %-16s %.2f\n", $NF, $4 / n }' "$work/strace" | sort -k2 -nr | head -12
fi
if [ -n "${BENCH_AB_CALLGRIND:-}" ]; then
  command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
  for s in a b; do
    port=18093; [ "$s" = b ] && port=18094
    (cd "$work" && env PHI_PORT=$port RUST_LOG=info PHI_WORKERS=1 valgrind -q --tool=callgrind \
      --instr-atstart=no --callgrind-out-file="$work/callgrind.$s" "$work/$s" serve >"$work/$s.cg.log" 2>&1) &
    pids+=($!)
    for _ in $(seq 600); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
    wrk -t 1 -c 4 -d 3s -s "bench/http/$lua.lua" "http://127.0.0.1:$port" >/dev/null
    vg=$(pgrep -f "callgrind-out-file=$work/callgrind.$s" | head -1)
    callgrind_control -i on "$vg" >/dev/null
    n=$(BENCH_MAX_REQUESTS=2000 wrk -t 1 -c 4 -d 20s -s "bench/http/$lua.lua" "http://127.0.0.1:$port" | awk '/requests in/ {print $1}')
    callgrind_control -i off "$vg" >/dev/null
    callgrind_control -d "$vg" >/dev/null
    ir=$(cat "$work"/callgrind."$s"* 2>/dev/null | awk '/^totals:/ {t += $2} END {print t}')
    kill "$vg" 2>/dev/null || true
    echo "$what, $(echo "$s" | tr ab AB): $((ir / n)) instructions per request in user space ($n requests under callgrind)"
  done
fi
