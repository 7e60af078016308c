-- Disclosure: who is who, who may link whom, and what a backup shows.
--
-- 1. User ids are namespaced by their Payload collection (`users:5` and
--    `customers:5` are different people). Existing bare ids were all from
--    the default `users` collection and are prefixed with it.
-- 2. Linking a CMS user to a practitioner record is an admin's act, refused
--    to everyone else by a trigger (the service says so first, with a 403).
-- 3. A consent binds the user that was linked when the patient consented
--    (`practitioner_user`): re-pointing the record later does not carry the
--    patient's data to whoever it now points at, and unlinking ends it.
-- 4. Who may change a submission's status: its owner (submitted <->
--    archived) and a practitioner it is shared with (-> reviewed, and
--    nothing else).
-- 5. The submission row no longer keeps de-identified facts in cleartext
--    beside its owner id: symptom categories and the age band are derived
--    from sealed fields when read, the region (now an ISO 3166 code) is
--    sealed, and analytics reads `submission_facts`, which holds no owner id
--    and no submission id (only a keyed hash of it, so the service can
--    replace or remove a submission's facts). Existing rows keep their
--    plaintext region in `region_legacy` until `phi-gateway reencrypt`
--    seals it and writes their facts (`needs_facts`).
-- 6. Analysts read materialized views that hold only aggregates with small
--    cells already removed: their queries (and EXPLAIN ANALYZE, and any
--    error a condition could raise) never reach base rows.

-- (1) Namespaced ids. As the migrating role (superuser or table owner with
-- row-level security satisfied through the owner policies below).
SET LOCAL ROLE phi_owner;

CREATE POLICY migrate_0008 ON symptom_submissions FOR ALL TO phi_owner USING (true) WITH CHECK (true);
CREATE POLICY migrate_0008 ON consents FOR ALL TO phi_owner USING (true) WITH CHECK (true);
CREATE POLICY migrate_0008 ON practitioners FOR ALL TO phi_owner USING (true) WITH CHECK (true);

ALTER TABLE symptom_submissions DISABLE TRIGGER zz_audit_changes;
ALTER TABLE practitioners DISABLE TRIGGER zz_audit_changes;
UPDATE symptom_submissions SET owner_id = 'users:' || owner_id WHERE strpos(owner_id, ':') = 0;
UPDATE consents SET owner_id = 'users:' || owner_id WHERE strpos(owner_id, ':') = 0;
UPDATE practitioners SET user_id = 'users:' || user_id WHERE user_id IS NOT NULL AND strpos(user_id, ':') = 0;
ALTER TABLE symptom_submissions ENABLE TRIGGER zz_audit_changes;
ALTER TABLE practitioners ENABLE TRIGGER zz_audit_changes;

-- (3) Consents bind the linked user.
ALTER TABLE consents ADD COLUMN practitioner_user text;
UPDATE consents c SET practitioner_user = p.user_id FROM practitioners p WHERE p.id = c.practitioner_id;
-- A consent whose practitioner had no linked user shared with nobody.
DELETE FROM consents WHERE practitioner_user IS NULL;
ALTER TABLE consents ALTER COLUMN practitioner_user SET NOT NULL;
CREATE INDEX consents_practitioner_user ON consents (practitioner_user, owner_id);

DROP POLICY migrate_0008 ON symptom_submissions;
DROP POLICY migrate_0008 ON consents;
DROP POLICY migrate_0008 ON practitioners;

-- The linked user is practitioner_user, as long as the record still points
-- at them and the consent has not expired.
DROP POLICY consents_practitioner_read ON consents;
CREATE POLICY consents_practitioner_read ON consents FOR SELECT
  USING ((SELECT app_has_role('practitioner'))
         AND practitioner_user = (SELECT app_user_id())
         AND (expires_at IS NULL OR expires_at > now())
         AND EXISTS (SELECT 1 FROM practitioners p
                     WHERE p.id = consents.practitioner_id AND p.user_id = consents.practitioner_user));
-- A patient's consent names the practitioner's currently linked user.
DROP POLICY consents_owner ON consents;
CREATE POLICY consents_owner ON consents FOR ALL
  USING (owner_id = (SELECT app_user_id()))
  WITH CHECK (owner_id = (SELECT app_user_id())
              AND EXISTS (SELECT 1 FROM practitioners p
                          WHERE p.id = consents.practitioner_id AND p.user_id = consents.practitioner_user));

-- Shared with the caller: a live consent bound to them, for the record that
-- is still linked to them.
CREATE FUNCTION app_shared_with_me(owner text, submission uuid) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT EXISTS (
          SELECT 1 FROM public.consents c JOIN public.practitioners p ON p.id = c.practitioner_id
          WHERE c.practitioner_user = public.app_user_id()
            AND p.user_id = c.practitioner_user
            AND c.owner_id = owner
            AND (c.submission_id IS NULL OR c.submission_id = submission)
            AND (c.expires_at IS NULL OR c.expires_at > now())) $$;
GRANT EXECUTE ON FUNCTION app_shared_with_me(text, uuid) TO phi_app;

DROP POLICY submissions_shared_read ON symptom_submissions;
CREATE POLICY submissions_shared_read ON symptom_submissions FOR SELECT
  USING ((SELECT app_has_role('practitioner')) AND app_shared_with_me(owner_id, id));
CREATE POLICY submissions_shared_update ON symptom_submissions FOR UPDATE
  USING ((SELECT app_has_role('practitioner')) AND app_shared_with_me(owner_id, id))
  WITH CHECK ((SELECT app_has_role('practitioner')) AND app_shared_with_me(owner_id, id));

-- (2) and (4): guards that row-level security cannot express (it sees rows,
-- not which columns change). They apply to the service's role; operators
-- (reencrypt, imports) connect as other roles. SQLSTATE PH403 is the
-- service's "forbidden".
CREATE FUNCTION practitioners_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF session_user = 'phi_app' AND NOT public.app_has_role('admin')
     AND ((TG_OP = 'INSERT' AND NEW.user_id IS NOT NULL)
          OR (TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id)) THEN
    RAISE EXCEPTION 'only an admin may link a CMS user to a practitioner record'
      USING ERRCODE = 'PH403';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER aa_guard BEFORE INSERT OR UPDATE ON practitioners
  FOR EACH ROW EXECUTE FUNCTION practitioners_guard();

CREATE FUNCTION submissions_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF session_user <> 'phi_app' THEN
    RETURN NEW;
  END IF;
  IF OLD.owner_id = public.app_user_id() THEN
    IF NEW.status = 'reviewed' AND OLD.status IS DISTINCT FROM 'reviewed' THEN
      RAISE EXCEPTION 'only a practitioner the submission is shared with marks it reviewed'
        USING ERRCODE = 'PH403';
    END IF;
    RETURN NEW;
  END IF;
  -- Not the owner: a practitioner it is shared with (the update policy
  -- admits nobody else). They change the status to reviewed, nothing more.
  IF NEW.status <> 'reviewed'
     OR (NEW.owner_id, NEW.practitioner_id, NEW.symptoms, NEW.notes, NEW.contact_email,
         NEW.contact_email_bidx, NEW.date_of_birth, NEW.created_at)
        IS DISTINCT FROM
        (OLD.owner_id, OLD.practitioner_id, OLD.symptoms, OLD.notes, OLD.contact_email,
         OLD.contact_email_bidx, OLD.date_of_birth, OLD.created_at) THEN
    RAISE EXCEPTION 'a practitioner may only mark a shared submission reviewed'
      USING ERRCODE = 'PH403';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER aa_guard BEFORE UPDATE ON symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION submissions_guard();

-- (5) and (6): the old analytics views read the cleartext columns.
DROP VIEW analytics.submissions_weekly;
DROP VIEW analytics.practitioners_by_region;
DROP VIEW analytics.herb_catalogue;

ALTER TABLE symptom_submissions DROP COLUMN age_band;
ALTER TABLE symptom_submissions DROP COLUMN symptom_categories;
ALTER TABLE symptom_submissions RENAME COLUMN region TO region_legacy;
ALTER TABLE symptom_submissions ADD COLUMN region bytea;  -- sealed ISO 3166 code
-- Rows written before this migration have no facts yet (reencrypt writes them).
ALTER TABLE symptom_submissions ADD COLUMN needs_facts boolean NOT NULL DEFAULT true;
ALTER TABLE symptom_submissions ALTER COLUMN needs_facts SET DEFAULT false;

CREATE TABLE submission_facts (
  ref         bytea PRIMARY KEY,      -- blind index of the submission id
  week        date NOT NULL,          -- Monday of the week it was submitted
  region      text NOT NULL,          -- ISO 3166 code, or 'unknown'
  age_band    text NOT NULL,          -- ten-year band, '90+', or 'unknown'
  categories  text[] NOT NULL         -- coarse symptom categories
);
ALTER TABLE submission_facts ENABLE ROW LEVEL SECURITY;
ALTER TABLE submission_facts FORCE ROW LEVEL SECURITY;
CREATE POLICY facts_app ON submission_facts FOR ALL TO phi_app USING (true) WITH CHECK (true);
CREATE POLICY analytics_owner_read ON submission_facts FOR SELECT TO phi_owner USING (true);
-- The service writes and removes facts; it reads none of them back.
GRANT INSERT, DELETE ON submission_facts TO phi_app;
GRANT SELECT (ref) ON submission_facts TO phi_app;

-- Aggregates only, cells under 5 removed before an analyst sees anything.
CREATE MATERIALIZED VIEW analytics.submissions_weekly AS
  SELECT f.week, f.region, f.age_band, c.category, count(*) AS submissions
  FROM submission_facts f
  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(f.categories) = 0
                                 THEN ARRAY['other'] ELSE f.categories END) AS c(category)
  GROUP BY 1, 2, 3, 4
  HAVING count(*) >= 5;
CREATE UNIQUE INDEX submissions_weekly_key ON analytics.submissions_weekly (week, region, age_band, category);

CREATE MATERIALIZED VIEW analytics.practitioners_by_region AS
  SELECT coalesce(p.country, 'unknown') AS country,
         coalesce(p.region, 'unknown') AS region,
         m.modality,
         count(*) AS practitioners
  FROM practitioners p
  CROSS JOIN LATERAL unnest(p.modalities) AS m(modality)
  WHERE p.status = 'published'
  GROUP BY 1, 2, 3
  HAVING count(*) >= 5;
CREATE UNIQUE INDEX practitioners_by_region_key ON analytics.practitioners_by_region (country, region, modality);

CREATE MATERIALIZED VIEW analytics.herb_catalogue AS
  SELECT h.slug, h.name, h.scientific_name, h.tcm_properties
  FROM herbs h
  WHERE h.status = 'published';
CREATE UNIQUE INDEX herb_catalogue_key ON analytics.herb_catalogue (slug);

-- Refreshed by the owner: the service calls this on a schedule, operators
-- with `phi-gateway analytics refresh`. Concurrently, so analysts keep
-- reading the previous contents meanwhile.
CREATE FUNCTION analytics.refresh() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.submissions_weekly;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.practitioners_by_region;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.herb_catalogue;
END $$;
GRANT USAGE ON SCHEMA analytics TO phi_app;
GRANT EXECUTE ON FUNCTION analytics.refresh() TO phi_app;

GRANT SELECT ON analytics.submissions_weekly, analytics.practitioners_by_region,
  analytics.herb_catalogue TO phi_analytics;

RESET ROLE;
