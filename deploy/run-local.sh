#!/usr/bin/env bash
# Runs the gateway locally with demo data on 127.0.0.1:8080: starts the
# private PostgreSQL cluster (.local/pg), creates and migrates the `phi_dev`
# database, creates a development keyring (keys/dev-keyring.json), an audit
# signing key (keys/dev-audit-signing.json, public half
# keys/dev-audit-verify.json) and a development PAYLOAD_SECRET
# (.local/dev-payload-secret) when missing, loads the demo data once, and
# serves until Ctrl-C, sealing the audit chain as phi_sealer. Safe to run
# again.
#
#   deploy/run-local.sh env   prints the settings (export lines) an operator
#                             command needs against that database, e.g.
#                             eval "$(deploy/run-local.sh env)"; target/debug/phi-gateway audit verify
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

deploy/pg.sh start
eval "$(deploy/pg.sh env)"
db=phi_dev
if [ "$(psql "$PHI_PG_ADMIN_URL" -tAXc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  psql "$PHI_PG_ADMIN_URL" -qXc "CREATE DATABASE $db"
fi

export PHI_CONFIG=$root/deploy/phi-gateway.toml
export PHI_ENVIRONMENT=development
export MIGRATION_DATABASE_URL=${PHI_PG_ADMIN_URL%/*}/$db
export DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@127.0.0.1:$PHI_PG_PORT/$db
export PHI_KEYRING=$root/keys/dev-keyring.json
export AUDIT_SEALER_DATABASE_URL=postgres://phi_sealer:$PHI_PG_SEALER_PASSWORD@127.0.0.1:$PHI_PG_PORT/$db
export PHI_AUDIT_SIGNING_KEY=$root/keys/dev-audit-signing.json
export PHI_AUDIT_VERIFY_KEY=$root/keys/dev-audit-verify.json
export PHI_LOG_FORMAT=${PHI_LOG_FORMAT:-pretty}
# The operations listener: /metrics and the detailed health answers.
export PHI_METRICS_ADDR=${PHI_METRICS_ADDR:-127.0.0.1:9464}
if [ ! -s .local/dev-payload-secret ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=' >.local/dev-payload-secret)
fi
PAYLOAD_SECRET=$(cat .local/dev-payload-secret)
export PAYLOAD_SECRET

if [ "${1:-}" = env ]; then
  for v in PHI_CONFIG PHI_ENVIRONMENT MIGRATION_DATABASE_URL DATABASE_URL AUDIT_SEALER_DATABASE_URL \
    PHI_KEYRING PHI_AUDIT_SIGNING_KEY PHI_AUDIT_VERIFY_KEY PAYLOAD_SECRET; do
    printf "export %s=%q\n" "$v" "${!v}"
  done
  exit 0
fi

cargo build --locked --bin phi-gateway
bin=$root/target/debug/phi-gateway
"$bin" migrate
[ -f "$PHI_KEYRING" ] || "$bin" keys generate --development --out "$PHI_KEYRING"
[ -f "$PHI_AUDIT_SIGNING_KEY" ] ||
  "$bin" keys signing generate --out "$PHI_AUDIT_SIGNING_KEY" --public-out "$PHI_AUDIT_VERIFY_KEY"
"$bin" seed --demo
# The analytics views publish the closed weeks (the demo's own week once it ends).
"$bin" analytics refresh >/dev/null

cat >&2 <<MSG
phi-gateway: serving on http://127.0.0.1:8080
  curl 127.0.0.1:8080/health/database
  curl 127.0.0.1:9464/metrics          # the operations listener (PHI_METRICS_ADDR)
  curl '127.0.0.1:8080/api/herbs?taste=bitter&temperature=cold'
  curl '127.0.0.1:8080/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=25'
  TOKEN=\$(PHI_ENVIRONMENT=development PAYLOAD_SECRET=\$(cat .local/dev-payload-secret) target/debug/phi-gateway dev-token --user demo-patient-1)
  curl -H "Authorization: JWT \$TOKEN" 127.0.0.1:8080/api/symptom-submissions
  eval "\$(deploy/run-local.sh env)"     # the settings an operator command needs (audit verify, keys ...)
MSG
exec "$bin" serve
