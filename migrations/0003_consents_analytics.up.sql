-- Consent sharing, and the de-identified analytics schema.
--
-- A patient shares all their submissions, or one, with a practitioner,
-- optionally until a time. Consents are themselves under RLS: the owner sees
-- and changes their own; the practitioner may see those naming them. Revoking
-- (DELETE) or expiry takes effect on the next statement: the submissions
-- policy checks consents live.

-- Schemas need CREATE on the database, which phi_owner lacks: the migrator
-- makes it and hands it over.
CREATE SCHEMA analytics AUTHORIZATION phi_owner;

SET LOCAL ROLE phi_owner;

CREATE TABLE consents (
  id               uuid PRIMARY KEY,
  owner_id         text NOT NULL,
  practitioner_id  uuid NOT NULL REFERENCES practitioners (id) ON DELETE CASCADE,
  submission_id    uuid REFERENCES symptom_submissions (id) ON DELETE CASCADE,  -- NULL: all of the owner's
  expires_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_owner ON consents (owner_id);
CREATE INDEX consents_practitioner ON consents (practitioner_id, owner_id);

ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;
CREATE POLICY consents_owner ON consents FOR ALL
  USING (owner_id = (SELECT app_user_id()))
  WITH CHECK (owner_id = (SELECT app_user_id()));
CREATE POLICY consents_practitioner_read ON consents FOR SELECT
  USING ((SELECT app_has_role('practitioner')) AND practitioner_id IN (
    SELECT p.id FROM practitioners p WHERE p.user_id = (SELECT app_user_id())));
GRANT SELECT, INSERT, DELETE ON consents TO phi_app;

-- A practitioner reads a submission its owner shared with them, while the
-- consent lasts.
CREATE POLICY submissions_shared_read ON symptom_submissions FOR SELECT
  USING ((SELECT app_has_role('practitioner')) AND EXISTS (
    SELECT 1 FROM consents c JOIN practitioners p ON p.id = c.practitioner_id
    WHERE p.user_id = (SELECT app_user_id())
      AND c.owner_id = symptom_submissions.owner_id
      AND (c.submission_id IS NULL OR c.submission_id = symptom_submissions.id)
      AND (c.expires_at IS NULL OR c.expires_at > now())));

-- Analytics: aggregates only, small cells (< 5) suppressed. The views run
-- with their owner's (phi_owner's) rights, so phi_owner gets a read policy on
-- the base tables; phi_analytics itself gets nothing but these views.
CREATE POLICY analytics_owner_read ON symptom_submissions FOR SELECT TO phi_owner USING (true);
CREATE POLICY analytics_owner_read ON practitioners FOR SELECT TO phi_owner USING (true);
CREATE POLICY analytics_owner_read ON herbs FOR SELECT TO phi_owner USING (true);

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

GRANT USAGE ON SCHEMA analytics TO phi_analytics;
GRANT SELECT ON analytics.submissions_weekly, analytics.practitioners_by_region,
  analytics.herb_catalogue TO phi_analytics;

RESET ROLE;
