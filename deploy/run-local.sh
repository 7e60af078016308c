#!/usr/bin/env bash
# Runs the gateway locally with demo data on 127.0.0.1:8080: starts the
# private PostgreSQL cluster (.local/pg), creates the `phi_dev` database,
# migrates it, and serves until Ctrl-C. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

deploy/pg.sh start
eval "$(deploy/pg.sh env)"
PGPASSWORD_URL=$PHI_PG_ADMIN_URL
db=phi_dev
if [ "$(psql "$PGPASSWORD_URL" -tAXc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  psql "$PGPASSWORD_URL" -qXc "CREATE DATABASE $db"
fi

export PHI_CONFIG=$root/deploy/phi-gateway.toml
export MIGRATION_DATABASE_URL=${PHI_PG_ADMIN_URL%/*}/$db
export DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@127.0.0.1:$PHI_PG_PORT/$db
export PHI_LOG_FORMAT=${PHI_LOG_FORMAT:-pretty}

cargo build --locked --bin phi-gateway
bin=$root/target/debug/phi-gateway
"$bin" migrate
echo "phi-gateway: serving on http://127.0.0.1:8080 (try: curl 127.0.0.1:8080/health/database)" >&2
exec "$bin" serve
