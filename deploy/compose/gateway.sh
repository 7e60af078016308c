#!/bin/sh
# compose.yaml: the gateway's settings from the `dev-secrets` volume, then
# `phi-gateway <command>`. `setup` migrates, seeds the demo data once and
# refreshes the analytics views; `serve` serves.
set -eu
s=/secrets
export PHI_ENVIRONMENT=development PHI_CONFIG=/dev/null DATABASE_TLS_MODE=disable
export MIGRATION_DATABASE_URL="postgres://postgres:$(cat $s/postgres.pw)@postgres:5432/phi"
export DATABASE_URL="postgres://phi_app:$(cat $s/phi_app.pw)@postgres:5432/phi"
export AUDIT_SEALER_DATABASE_URL="postgres://phi_sealer:$(cat $s/phi_sealer.pw)@postgres:5432/phi"
export PAYLOAD_SECRET="$(cat $s/payload-secret)"
export PHI_KEYRING=$s/dev-keyring.json PHI_AUDIT_SIGNING_KEY=$s/dev-audit-signing.json
export PHI_AUDIT_VERIFY_KEY=$s/dev-audit-verify.json
export PHI_CSRF_ORIGINS=${PHI_CSRF_ORIGINS:-http://localhost:3000}
case "$1" in
  setup)
    phi-gateway migrate
    # The demo data once (a second `up` keeps what is there).
    if [ ! -e $s/seeded ]; then
      # Its Payload users, made in this order on a fresh database
      # (examples/payload-app/src/seed.ts), are users:1 admin, users:2
      # practitioner, users:3 patient: the demo records are theirs.
      phi-gateway seed --demo --demo-patient 3 --demo-practitioner 2 && touch $s/seeded
    fi
    phi-gateway analytics refresh
    ;;
  serve) exec phi-gateway serve ;;
  *) exec phi-gateway "$@" ;;
esac
