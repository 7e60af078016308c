-- Reverts 0010: lists read the tables again.
DO $$
BEGIN
  EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM phi_owner', current_database());
END
$$;
SET LOCAL ROLE phi_owner;
DROP VIEW IF EXISTS herbs_visible;
DROP VIEW IF EXISTS practitioners_visible;
CREATE INDEX IF NOT EXISTS herbs_published ON herbs (name, id) WHERE status = 'published';
DROP INDEX IF EXISTS herbs_name;
CREATE INDEX IF NOT EXISTS practitioners_published ON practitioners (created_at DESC, id) WHERE status = 'published';
DROP INDEX IF EXISTS practitioners_created;
CREATE INDEX IF NOT EXISTS symptom_submissions_owner ON symptom_submissions (owner_id, created_at DESC, id);
DROP INDEX IF EXISTS symptom_submissions_owner_created;
CREATE INDEX IF NOT EXISTS practitioners_location ON practitioners USING gist (phi_earth(lat, lon));
DROP TRIGGER IF EXISTS ab_earth ON practitioners;
DROP FUNCTION IF EXISTS practitioners_earth();
ALTER TABLE practitioners DROP COLUMN IF EXISTS earth;
RESET ROLE;
