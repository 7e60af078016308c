-- Reverts 0018. Refused while import records exist: they are how an
-- import is undone.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM import_rows) THEN
    RAISE EXCEPTION 'reverting 0018: imported rows are recorded (undo the imports first)';
  END IF;
END $$;
SET LOCAL ROLE phi_owner;
DROP POLICY submissions_import ON symptom_submissions;
DROP TABLE import_rows;
DROP TABLE import_runs;
DROP FUNCTION app_importing();
RESET ROLE;
