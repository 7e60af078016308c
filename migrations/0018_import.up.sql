-- Importing existing records (issue 23): `phi-gateway import`.
--
-- * import_runs: one per run (its mapping's digest, the source without its
--   password, how far each source table has got, and the counts); a stopped
--   run is continued by the next `import` of the same source and mapping.
-- * import_rows: every record an import wrote, by its source table and
--   key: written in the record's own transaction, so a row is imported once
--   (the key is unique), a resumed run skips it, and an undo finds it.
-- * The import writes as the service's role (phi_app), with the identity
--   `operator:import` (a namespace no token can take: PHI_USER_COLLECTIONS
--   may not name `operator`). Submissions belong to their patients, so the
--   one identity that may write and read any patient's submission, and the
--   import's own tables, is that one; every write is still audited by the
--   table's trigger, with that actor and the run's id as the request id.
SET LOCAL ROLE phi_owner;

CREATE TABLE import_runs (
  id            uuid PRIMARY KEY,
  mapping_sha256 text NOT NULL,
  source        text NOT NULL,
  state         text NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'stopped', 'finished', 'undone')),
  progress      jsonb NOT NULL DEFAULT '{}',   -- source table -> last key done
  counts        jsonb NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE import_rows (
  run_id       uuid NOT NULL REFERENCES import_runs (id),
  source_table text NOT NULL,
  source_key   text NOT NULL,
  collection   text NOT NULL,
  target_id    uuid NOT NULL,
  imported_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, source_key)
);
CREATE INDEX import_rows_run ON import_rows (run_id);

CREATE FUNCTION app_importing() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT current_setting('app.user_id', true) = 'operator:import' $$;

ALTER TABLE import_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_runs FORCE ROW LEVEL SECURITY;
ALTER TABLE import_rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_rows FORCE ROW LEVEL SECURITY;
CREATE POLICY import_only ON import_runs FOR ALL
  USING ((SELECT app_importing())) WITH CHECK ((SELECT app_importing()));
CREATE POLICY import_only ON import_rows FOR ALL
  USING ((SELECT app_importing())) WITH CHECK ((SELECT app_importing()));
CREATE POLICY submissions_import ON symptom_submissions FOR ALL
  USING ((SELECT app_importing())) WITH CHECK ((SELECT app_importing()));

GRANT SELECT, INSERT, UPDATE ON import_runs TO phi_app;
GRANT SELECT, INSERT, DELETE ON import_rows TO phi_app;
REVOKE EXECUTE ON FUNCTION app_importing() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_importing() TO phi_app;

RESET ROLE;
