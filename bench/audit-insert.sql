-- Server-side cost of the audit trigger per audited write, without the
-- client or the WAL flush:
--   psql "$DB" -X -f bench/audit-insert.sql
-- on a migrated, disposable database, as a superuser (it adds a table and
-- leaves 60,000 rows behind). One insert per transaction, as the service
-- does, alternating blocks of 5,000 between symptom_submissions (audit
-- trigger on) and a copy of it without the trigger; synchronous_commit is
-- off for this session so that fsync does not drown the difference. Prints
-- each pair of blocks and the median difference per transaction.
\set QUIET on
SET app.user_id = 'bench'; SET app.roles = 'patient'; SET app.collection = 'users';
SET app.request_id = '018f6f7e-0000-7000-8000-000000000000'; SET app.client_addr = '127.0.0.1';
SET synchronous_commit = off;
DROP TABLE IF EXISTS bench_unaudited;
CREATE TABLE bench_unaudited (LIKE symptom_submissions INCLUDING ALL);
CREATE TEMP TABLE timing (round int, audited numeric, unaudited numeric);
DO $$
DECLARE
  t0 timestamptz;
  a numeric;
  s bytea := decode(repeat('ab', 300), 'hex');
  n bytea := decode(repeat('cd', 1030), 'hex');
BEGIN
  FOR round IN 0..6 LOOP
    t0 := clock_timestamp();
    FOR i IN 1..5000 LOOP
      INSERT INTO symptom_submissions (id, owner_id, symptoms, notes) VALUES (gen_random_uuid(), 'bench', s, n);
      COMMIT;
    END LOOP;
    a := extract(epoch FROM clock_timestamp() - t0) * 1e6 / 5000;
    t0 := clock_timestamp();
    FOR i IN 1..5000 LOOP
      INSERT INTO bench_unaudited (id, owner_id, symptoms, notes) VALUES (gen_random_uuid(), 'bench', s, n);
      COMMIT;
    END LOOP;
    -- Round 0 warms up.
    IF round > 0 THEN
      INSERT INTO timing VALUES (round, round(a, 1),
        round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1e6 / 5000, 1));
    END IF;
    COMMIT;
  END LOOP;
END $$;
\set QUIET off
SELECT round, audited AS us_audited, unaudited AS us_unaudited, audited - unaudited AS us_difference
FROM timing ORDER BY round;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY audited - unaudited) AS median_us_per_audited_insert
FROM timing;
DROP TABLE bench_unaudited;
