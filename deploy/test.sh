#!/usr/bin/env bash
# Runs the whole test suite against a throwaway PostgreSQL cluster of its own
# (.local/pg-test), which it creates first and destroys at the end, whatever
# happened before. Extra arguments go to `cargo test`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=$root/.local/pg-test

deploy/pg.sh destroy "$dir" 2>/dev/null || true
PHI_PG_FAST=1 deploy/pg.sh start "$dir"
trap 'deploy/pg.sh destroy "$dir"' EXIT
eval "$(deploy/pg.sh env "$dir")"
export PHI_PG_ADMIN_URL PHI_PG_APP_PASSWORD PHI_PG_ANALYTICS_PASSWORD PHI_PG_AUDITOR_PASSWORD PHI_PG_SEALER_PASSWORD PHI_PG_BINDIR

cargo test --locked "$@"
