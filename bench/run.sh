#!/usr/bin/env bash
# Runs the gateway benchmarks against a private PostgreSQL cluster of their
# own (.local/pg-bench, fsync on, as in production), then removes it.
#   bench/run.sh [audit|subject-index|reads|sealer|export|proximity|all] (default all)
#   bench/run.sh verify  a full and a one-day incremental verify on a 10M-entry log
#   bench/run.sh report  a patient's access report in a log of millions (bench/report.sh)
#   bench/run.sh import  importing 100,000 pgcrypto-encrypted submissions (bench/import.sh)
#   bench/run.sh http    the gateway through HTTP against pgbench (bench/http.sh)
#   bench/run.sh ab OLD NEW   two gateway binaries side by side (bench/ab.sh)
#   BENCH_PRACTITIONERS=1000000 sets the proximity data set size,
#   BENCH_AUDIT_ENTRIES=1000000 the export's.
# The crypto micro-benchmarks need no database: cargo bench --bench crypto
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=$root/.local/pg-bench
deploy/pg.sh destroy "$dir" 2>/dev/null || true
deploy/pg.sh start "$dir"
trap 'deploy/pg.sh destroy "$dir"' EXIT
eval "$(deploy/pg.sh env "$dir")"
export PHI_PG_ADMIN_URL PHI_PG_APP_PASSWORD PHI_PG_SEALER_PASSWORD
# The export benchmark times the real binary's verify-export.
cargo build --locked --release --bin phi-gateway
export PHI_BENCH_BIN=$root/target/release/phi-gateway
if [ "${1:-all}" = http ]; then
  bench/http.sh
elif [ "${1:-all}" = report ]; then
  bench/report.sh
elif [ "${1:-all}" = import ]; then
  bench/import.sh
elif [ "${1:-all}" = ab ]; then
  bench/ab.sh "$2" "$3"
else
  cargo bench --locked --bench gateway -- "${1:-all}"
fi
