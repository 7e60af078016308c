-- Server-side cost of the audit trigger on a submission insert, without the
-- client round trips: psql "$DB" -X -f bench/audit-insert.sql on a migrated,
-- disposable database (it inserts 10,000 rows and leaves them).
\set QUIET on
SET app.user_id = 'bench'; SET app.roles = 'patient';
CREATE TEMP TABLE timing (what text, us_per_row numeric);
DO $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..5000 LOOP
    INSERT INTO symptom_submissions (id, owner_id, symptoms, notes)
    VALUES (gen_random_uuid(), 'bench', repeat('x', 300)::bytea, repeat('y', 1100)::bytea);
  END LOOP;
  INSERT INTO timing VALUES ('with audit trigger', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / 5000, 1));
END $$;
ALTER TABLE symptom_submissions DISABLE TRIGGER zz_audit_changes;
DO $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..5000 LOOP
    INSERT INTO symptom_submissions (id, owner_id, symptoms, notes)
    VALUES (gen_random_uuid(), 'bench', repeat('x', 300)::bytea, repeat('y', 1100)::bytea);
  END LOOP;
  INSERT INTO timing VALUES ('without', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / 5000, 1));
END $$;
ALTER TABLE symptom_submissions ENABLE TRIGGER zz_audit_changes;
\set QUIET off
SELECT * FROM timing;
