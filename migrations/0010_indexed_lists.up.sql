-- Lists that their indexes can serve as phi_app, under row-level security.
--
-- As phi_app, a query's own conditions are evaluated after the read policy
-- unless their functions are leakproof, and the ones the lists need are not:
-- `@>` on jsonb (the TCM filters), `@@` (full text), earthdistance's cube
-- `@>` (proximity). So the planner may not use them inside an index scan and
-- reads every row the policy lets through: 89-176 ms for a TCM filter at
-- 200k herbs, 2.2 s for a `near` count at 1M practitioners. Marking the
-- built-in functions leakproof needs a superuser (which managed PostgreSQL
-- services do not give), and would change them for every table in the
-- database.
--
-- Instead, the reference collections (herbs, practitioners) are listed
-- through views that repeat their read policies. A view runs with its
-- owner's row-level security, and phi_owner's policy on these tables is
-- USING (true), so inside the view the visibility rule is an ordinary
-- condition beside the caller's and every index applies. The views are not
-- security barriers: a leaky function could see rows the view's condition
-- removes. Only the gateway's own SQL runs through them, with built-in
-- functions; phi_app cannot create functions (no CREATE on any schema), and
-- whoever holds phi_app's password can set any identity anyway, so a
-- barrier would protect nothing more. Writes, and reads by id, still go to
-- the tables and their policies. tests/api/plans.rs checks that each view
-- shows each kind of caller exactly what the table shows them, and that no
-- list reads a large table from end to end.
--
-- Symptom submissions (PHI) get no view: their lists are scoped by the
-- service to the caller's own rows or to what is shared with them, with
-- leakproof equality the planner may use in the owner index.
SET LOCAL ROLE phi_owner;

-- Proximity reads a stored point. The expression index on
-- phi_earth(lat, lon) served the index scan, but each row's distance was
-- computed again from lat and lon (trigonometry, twice per row for a
-- BETWEEN): 22 ms to count 1,000 practitioners in range at 1M, 12 ms from
-- a stored column. A plain column kept by a trigger, not a generated one:
-- DESIGN.md's dump-and-restore trap (a generated `earth` column fails to
-- restore; this one is copied as data).
ALTER TABLE practitioners ADD COLUMN earth cube;
CREATE FUNCTION practitioners_earth() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  NEW.earth := public.phi_earth(NEW.lat, NEW.lon);
  RETURN NEW;
END $$;
CREATE TRIGGER ab_earth BEFORE INSERT OR UPDATE OF lat, lon ON practitioners
  FOR EACH ROW EXECUTE FUNCTION practitioners_earth();
CREATE POLICY migrate_0010 ON practitioners FOR ALL TO phi_owner USING (true) WITH CHECK (true);
ALTER TABLE practitioners DISABLE TRIGGER USER;
UPDATE practitioners SET earth = public.phi_earth(lat, lon);
ALTER TABLE practitioners ENABLE TRIGGER USER;
DROP POLICY migrate_0010 ON practitioners;
ALTER TABLE practitioners ALTER COLUMN earth SET NOT NULL;
CREATE INDEX practitioners_earth ON practitioners USING gist (earth);
DROP INDEX practitioners_location;

CREATE VIEW herbs_visible AS
  SELECT * FROM herbs
  WHERE status = 'published' OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin'));
COMMENT ON VIEW herbs_visible IS
  'herbs as the herbs_read policy shows them to the caller (keep the two the same); lists only';

CREATE VIEW practitioners_visible AS
  SELECT * FROM practitioners
  WHERE status = 'published'
     OR user_id = (SELECT app_user_id())
     OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin'));
COMMENT ON VIEW practitioners_visible IS
  'practitioners as the practitioners_read policy shows them to the caller (keep the two the same); lists only';

GRANT SELECT ON herbs_visible, practitioners_visible TO phi_app;

-- The default orders, for every caller (the partial indexes served only a
-- condition the planner could not prove), in the direction the lists sort:
-- the id tiebreak follows the last key.
CREATE INDEX herbs_name ON herbs (name, id);
DROP INDEX herbs_published;
CREATE INDEX practitioners_created ON practitioners (created_at DESC, id DESC);
DROP INDEX practitioners_published;
CREATE INDEX symptom_submissions_owner_created ON symptom_submissions (owner_id, created_at DESC, id DESC);
DROP INDEX symptom_submissions_owner;

RESET ROLE;

-- Found while giving the tests the production database's privileges:
-- `analytics.refresh()` runs as phi_owner, and REFRESH MATERIALIZED VIEW
-- CONCURRENTLY needs a temporary table, which 0001's REVOKE ALL ON
-- DATABASE took from everyone. phi_owner cannot log in; only its
-- SECURITY DEFINER functions run as it.
DO $$
BEGIN
  EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO phi_owner', current_database());
END
$$;
