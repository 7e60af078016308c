#!/usr/bin/env bash
# `phi-gateway import` of BENCH_IMPORT_ROWS (100,000) submissions from the
# tables of the CMS's guide, every PHI column pgp_sym_encrypt'ed in the
# source (tests/import/cms-guide.sql's schema, deploy/import/cms-guide.toml's
# mapping), into a fresh gateway database: rows per second, end to end
# (reading and decrypting in the source, validating, sealing, writing with
# the audit trigger and the import rows). For comparison, what the guide's
# pgcrypto fallback costs in the database: encrypting the same rows' four
# fields in place.
#
#   bench/run.sh import        (or bench/import.sh with a cluster already up)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rows=${BENCH_IMPORT_ROWS:-100000}
work=$root/.local/bench-import
rm -rf "$work"; mkdir -p "$work"
bin=${PHI_BENCH_BIN:-$root/target/release/phi-gateway}
[ -x "$bin" ] || cargo build --locked --release --bin phi-gateway

host_port=${PHI_PG_ADMIN_URL#*@}; host_port=${host_port%%/*}
for db in bench_import bench_import_src; do
  psql "$PHI_PG_ADMIN_URL" -qXc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
admin=${PHI_PG_ADMIN_URL%/*}/bench_import
src=${PHI_PG_ADMIN_URL%/*}/bench_import_src
export MIGRATION_DATABASE_URL=$admin DATABASE_URL=postgres://phi_app:$PHI_PG_APP_PASSWORD@$host_port/bench_import
export PHI_ENVIRONMENT=development PHI_KEYRING=$work/keyring.json PAYLOAD_SECRET=bench-secret
export PHI_CONFIG=/dev/null DATABASE_TLS_MODE=disable PHI_ANALYTICS_REFRESH_SECS=0
"$bin" migrate
"$bin" keys generate --out "$PHI_KEYRING" >/dev/null

# The guide's schema (without its sample rows), then $rows submissions in
# the clear, timed as the guide's fallback would encrypt them in place.
sed -n '/^CREATE EXTENSION/,/^INSERT INTO herbs/p' tests/import/cms-guide.sql | sed '$d' | psql "$src" -qX -v ON_ERROR_STOP=1
psql "$src" -qX -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE practitioners (id serial PRIMARY KEY, name text NOT NULL, slug text NOT NULL, email bytea, phone text,
  city text, latitude numeric(9, 6), longitude numeric(9, 6), status text NOT NULL DEFAULT 'published');
CREATE TABLE plain (id serial PRIMARY KEY, user_id text, symptoms text, notes text, contact_email text, date_of_birth text, region text);
INSERT INTO plain (user_id, symptoms, notes, contact_email, date_of_birth, region)
SELECT 'p' || (i % 5000),
       format('[{"name": "Headache %s", "severity": %s, "onset": "2026-01-%s"}]', i, i % 10, lpad((i % 28 + 1)::text, 2, '0')),
       'notes of submission ' || i, 'patient' || i || '@example.org', '1980-05-0' || (i % 9 + 1), 'FR'
FROM generate_series(1, $rows) i;
SQL
start=$(date +%s.%N)
psql "$src" -qX -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE symptom_submissions (id serial PRIMARY KEY, user_id text NOT NULL, symptoms bytea NOT NULL, notes bytea,
  contact_email bytea, date_of_birth bytea, region text, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO symptom_submissions (id, user_id, symptoms, notes, contact_email, date_of_birth, region)
SELECT id, user_id, pgp_sym_encrypt(symptoms, 'bench-old-key'), pgp_sym_encrypt(notes, 'bench-old-key'),
       pgp_sym_encrypt(contact_email, 'bench-old-key'), pgp_sym_encrypt(date_of_birth, 'bench-old-key'), region
FROM plain;
SQL
enc=$(echo "$(date +%s.%N) - $start" | bc)
printf 'pgcrypto in the database, 4 fields of %s rows: %.1f s (%.0f rows/s)\n' "$rows" "$enc" "$(echo "$rows / $enc" | bc -l)"
psql "$src" -qXc "VACUUM ANALYZE"
# The same rows in the clear: what the gateway's side costs without the
# source's pgcrypto decryption.
cat >"$work/plain.toml" <<'TOML'
[[table]]
source = "plain"
collection = "symptom-submissions"
key = "id"
owner = "user_id"
[table.fields]
symptoms = { column = "symptoms", json = true }
notes = "notes"
contactEmail = "contact_email"
dateOfBirth = "date_of_birth"
region = "region"
TOML

one() { # label mapping batch
  psql "$admin" -qXc "TRUNCATE import_rows, import_runs, symptom_submissions, submission_facts CASCADE"
  local start took
  start=$(date +%s.%N)
  PHI_IMPORT_SOURCE_KEY=bench-old-key "$bin" import --source "$src" --map "$2" \
    --batch "$3" --report "$work/report.ndjson" 2>/dev/null | tail -1 >&2
  took=$(echo "$(date +%s.%N) - $start" | bc)
  printf 'import, %s, batch %s: %s rows in %.1f s = %.0f rows/s\n' "$1" "$3" "$rows" "$took" "$(echo "$rows / $took" | bc -l)"
  psql "$admin" -tAXc "SELECT '  imported submissions: ' || count(*) FROM symptom_submissions"
}
for batch in ${BENCH_IMPORT_BATCHES:-500 2000}; do
  one "pgcrypto-encrypted source (the guide's)" deploy/import/cms-guide.toml "$batch"
  one "the same rows in the clear" "$work/plain.toml" "$batch"
done
