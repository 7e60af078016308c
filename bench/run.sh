#!/usr/bin/env bash
# Runs the gateway benchmarks against a private PostgreSQL cluster of their
# own (.local/pg-bench, fsync on, as in production), then removes it.
#   bench/run.sh [audit|sealer|proximity|all]     (default all)
#   BENCH_PRACTITIONERS=1000000 sets the proximity data set size.
# The crypto micro-benchmarks need no database: cargo bench --bench crypto
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=$root/.local/pg-bench
deploy/pg.sh destroy "$dir" 2>/dev/null || true
deploy/pg.sh start "$dir"
trap 'deploy/pg.sh destroy "$dir"' EXIT
eval "$(deploy/pg.sh env "$dir")"
export PHI_PG_ADMIN_URL PHI_PG_APP_PASSWORD
cargo bench --locked --bench gateway -- "${1:-all}"
