#!/bin/sh
# compose.yaml, second step (in PostgreSQL's image, as its superuser): the
# login roles with the passwords from `dev-secrets` (deployment owns them;
# the migrations then fix their attributes), the gateway's database, and
# Payload's own database with its own role. Safe to run again.
set -eu
export PGHOST=postgres PGUSER=postgres PGPASSWORD="$(cat /secrets/postgres.pw)"
for role in phi_app phi_sealer phi_analytics phi_auditor payload; do
  pw=$(cat "/secrets/$role.pw")
  psql -qX -v ON_ERROR_STOP=1 -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN; END IF;
END \$\$;
ALTER ROLE $role PASSWORD '$pw';
SQL
done
for db in phi payload; do
  [ "$(psql -tAX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] ||
    psql -qX -d postgres -c "CREATE DATABASE $db"
done
psql -qX -d postgres -c "ALTER DATABASE payload OWNER TO payload"
