#!/bin/sh
# compose.yaml, first step: development secrets, made once into the
# `dev-secrets` volume and kept there (a second `up` reuses them): the
# PostgreSQL passwords, Payload's secret, a development keyring and an
# audit signing key pair. Development only: the keyring's keys are in the
# clear in the file (production refuses that; see keys/README.md).
set -eu
cd /secrets
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
for f in postgres.pw phi_app.pw phi_sealer.pw phi_analytics.pw phi_auditor.pw payload.pw payload-secret; do
  [ -s "$f" ] || { secret >"$f"; echo "dev-secrets: made $f"; }
done
[ -s dev-keyring.json ] || phi-gateway keys generate --development --out dev-keyring.json
[ -s dev-audit-signing.json ] ||
  phi-gateway keys signing generate --out dev-audit-signing.json --public-out dev-audit-verify.json
# Readable by the gateway (uid 10001) and by PostgreSQL's and Node's
# images (they read the passwords they need); key files the gateway's only.
chown 10001:10001 . dev-keyring.json dev-audit-signing.json dev-audit-verify.json
chmod 0600 dev-keyring.json dev-audit-signing.json
chmod 0644 ./*.pw payload-secret dev-audit-verify.json
