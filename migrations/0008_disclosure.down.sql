-- Reverts 0008. Refused while any submission holds a sealed region (its
-- plaintext cannot be restored in SQL, and an audit-grade system does not
-- drop data silently). The derived columns come back empty: they were
-- filled by the service.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM symptom_submissions WHERE region IS NOT NULL) THEN
    RAISE EXCEPTION 'submissions hold sealed regions; reverting 0008 would lose them';
  END IF;
END $$;

SET LOCAL ROLE phi_owner;

DROP FUNCTION IF EXISTS analytics.refresh();
DROP MATERIALIZED VIEW IF EXISTS analytics.submissions_weekly;
DROP MATERIALIZED VIEW IF EXISTS analytics.practitioners_by_region;
DROP MATERIALIZED VIEW IF EXISTS analytics.herb_catalogue;
DROP TABLE IF EXISTS submission_facts;

DROP TRIGGER IF EXISTS aa_guard ON symptom_submissions;
DROP TRIGGER IF EXISTS aa_guard ON practitioners;
DROP FUNCTION IF EXISTS submissions_guard();
DROP FUNCTION IF EXISTS practitioners_guard();

DROP POLICY IF EXISTS submissions_shared_update ON symptom_submissions;
DROP POLICY IF EXISTS submissions_shared_read ON symptom_submissions;
DROP FUNCTION IF EXISTS app_shared_with_me(text, uuid);
CREATE POLICY submissions_shared_read ON symptom_submissions FOR SELECT
  USING ((SELECT app_has_role('practitioner')) AND EXISTS (
    SELECT 1 FROM consents c JOIN practitioners p ON p.id = c.practitioner_id
    WHERE p.user_id = (SELECT app_user_id())
      AND c.owner_id = symptom_submissions.owner_id
      AND (c.submission_id IS NULL OR c.submission_id = symptom_submissions.id)
      AND (c.expires_at IS NULL OR c.expires_at > now())));

DROP POLICY IF EXISTS consents_owner ON consents;
CREATE POLICY consents_owner ON consents FOR ALL
  USING (owner_id = (SELECT app_user_id()))
  WITH CHECK (owner_id = (SELECT app_user_id()));
DROP POLICY IF EXISTS consents_practitioner_read ON consents;
CREATE POLICY consents_practitioner_read ON consents FOR SELECT
  USING ((SELECT app_has_role('practitioner')) AND practitioner_id IN (
    SELECT p.id FROM practitioners p WHERE p.user_id = (SELECT app_user_id())));
DROP INDEX IF EXISTS consents_practitioner_user;
ALTER TABLE consents DROP COLUMN IF EXISTS practitioner_user;

ALTER TABLE symptom_submissions DROP COLUMN IF EXISTS needs_facts;
ALTER TABLE symptom_submissions DROP COLUMN IF EXISTS region;
ALTER TABLE symptom_submissions RENAME COLUMN region_legacy TO region;
ALTER TABLE symptom_submissions ADD COLUMN age_band text;
ALTER TABLE symptom_submissions ADD COLUMN symptom_categories text[] NOT NULL DEFAULT '{}';

CREATE POLICY migrate_0008 ON symptom_submissions FOR ALL TO phi_owner USING (true) WITH CHECK (true);
CREATE POLICY migrate_0008 ON consents FOR ALL TO phi_owner USING (true) WITH CHECK (true);
CREATE POLICY migrate_0008 ON practitioners FOR ALL TO phi_owner USING (true) WITH CHECK (true);
ALTER TABLE symptom_submissions DISABLE TRIGGER zz_audit_changes;
ALTER TABLE practitioners DISABLE TRIGGER zz_audit_changes;
UPDATE symptom_submissions SET owner_id = substr(owner_id, 7) WHERE owner_id LIKE 'users:%';
UPDATE consents SET owner_id = substr(owner_id, 7) WHERE owner_id LIKE 'users:%';
UPDATE practitioners SET user_id = substr(user_id, 7) WHERE user_id LIKE 'users:%';
ALTER TABLE symptom_submissions ENABLE TRIGGER zz_audit_changes;
ALTER TABLE practitioners ENABLE TRIGGER zz_audit_changes;
DROP POLICY migrate_0008 ON symptom_submissions;
DROP POLICY migrate_0008 ON consents;
DROP POLICY migrate_0008 ON practitioners;

CREATE VIEW analytics.submissions_weekly AS
  SELECT date_trunc('week', s.created_at)::date AS week,
         coalesce(s.region, 'unknown') AS region,
         coalesce(s.age_band, 'unknown') AS age_band,
         c.category,
         count(*) AS submissions
  FROM symptom_submissions s
  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(s.symptom_categories) = 0
                                 THEN ARRAY['other'] ELSE s.symptom_categories END) AS c(category)
  GROUP BY 1, 2, 3, 4
  HAVING count(*) >= 5;

CREATE VIEW analytics.practitioners_by_region AS
  SELECT coalesce(p.country, 'unknown') AS country,
         coalesce(p.region, 'unknown') AS region,
         m.modality,
         count(*) AS practitioners
  FROM practitioners p
  CROSS JOIN LATERAL unnest(p.modalities) AS m(modality)
  WHERE p.status = 'published'
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5;

CREATE VIEW analytics.herb_catalogue AS
  SELECT h.slug, h.name, h.scientific_name, h.tcm_properties
  FROM herbs h
  WHERE h.status = 'published';

GRANT SELECT ON analytics.submissions_weekly, analytics.practitioners_by_region,
  analytics.herb_catalogue TO phi_analytics;

RESET ROLE;
