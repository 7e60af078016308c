-- Practitioners, herbs and symptom submissions, under row-level security.
--
-- Objects belong to phi_owner. phi_app gets only DML on these tables, and
-- every table is ENABLE + FORCE ROW LEVEL SECURITY. Policies read the
-- caller's identity from transaction-local settings (app.user_id, app.roles,
-- app.break_glass) set by the service at the start of each request's
-- transaction, through (SELECT ...) so each is computed once per statement.
--
-- Sealed columns (bytea) hold the service's AES-256-GCM envelopes; *_bidx
-- columns hold blind indexes. PostgreSQL never sees a plaintext PHI value.

SET LOCAL ROLE phi_owner;

-- Identity, as the policies see it. STABLE SQL functions: inlined by the
-- planner and wrapped in (SELECT ..) by the policies.
CREATE FUNCTION app_user_id() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('app.user_id', true), '') $$;

CREATE FUNCTION app_has_role(role text) RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(role = ANY (string_to_array(nullif(current_setting('app.roles', true), ''), ',')), false) $$;

CREATE FUNCTION app_break_glass() RETURNS boolean
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(current_setting('app.break_glass', true), '') = 'on'
               AND coalesce('admin' = ANY (string_to_array(nullif(current_setting('app.roles', true), ''), ',')), false) $$;

-- ll_to_earth with a fully schema-qualified body: an expression index on
-- plain ll_to_earth(lat, lon) is silently lost by pg_dump/pg_restore on
-- PostgreSQL 15 (restore runs with an empty search_path and cannot find type
-- earth). Same definition as earthdistance 1.1, so the same points and
-- distances; IMMUTABLE and inlinable, so the index matches queries.
CREATE FUNCTION phi_earth(lat double precision, lon double precision) RETURNS public.earth
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT public.cube(public.cube(public.cube(
           public.earth() * pg_catalog.cos(pg_catalog.radians(lat)) * pg_catalog.cos(pg_catalog.radians(lon))),
           public.earth() * pg_catalog.cos(pg_catalog.radians(lat)) * pg_catalog.sin(pg_catalog.radians(lon))),
           public.earth() * pg_catalog.sin(pg_catalog.radians(lat)))::public.earth $$;

GRANT EXECUTE ON FUNCTION app_user_id(), app_has_role(text), app_break_glass(),
  phi_earth(double precision, double precision) TO phi_app;

-- Practitioners: a public directory with sealed contact fields.
CREATE TABLE practitioners (
  id              uuid PRIMARY KEY,
  slug            text NOT NULL UNIQUE,
  name            text NOT NULL,
  modalities      text[] NOT NULL DEFAULT '{}',
  bio             text,
  city            text,
  region          text,
  country         text,
  postal_code     text,
  website         text,
  status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
  lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
  lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
  user_id         text,                 -- the CMS user who is this practitioner
  email           bytea,                -- sealed
  email_bidx      bytea UNIQUE,         -- blind index of the normalised email
  phone           bytea,                -- sealed
  licence_number  bytea,                -- sealed
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX practitioners_location ON practitioners USING gist (phi_earth(lat, lon));
CREATE INDEX practitioners_published ON practitioners (created_at DESC, id) WHERE status = 'published';
CREATE INDEX practitioners_modalities ON practitioners USING gin (modalities);
CREATE INDEX practitioners_user ON practitioners (user_id) WHERE user_id IS NOT NULL;

ALTER TABLE practitioners ENABLE ROW LEVEL SECURITY;
ALTER TABLE practitioners FORCE ROW LEVEL SECURITY;
CREATE POLICY practitioners_read ON practitioners FOR SELECT
  USING (status = 'published'
         OR user_id = (SELECT app_user_id())
         OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
CREATE POLICY practitioners_insert ON practitioners FOR INSERT
  WITH CHECK ((SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
CREATE POLICY practitioners_update ON practitioners FOR UPDATE
  USING (user_id = (SELECT app_user_id())
         OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')))
  WITH CHECK (user_id = (SELECT app_user_id())
         OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
CREATE POLICY practitioners_delete ON practitioners FOR DELETE
  USING ((SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
GRANT SELECT, INSERT, UPDATE, DELETE ON practitioners TO phi_app;

-- Herbs: reference data with Traditional Chinese Medicine properties.
CREATE TABLE herbs (
  id               uuid PRIMARY KEY,
  slug             text NOT NULL UNIQUE,
  name             text NOT NULL,
  scientific_name  text,
  description      text,
  status           text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
  tcm_properties   jsonb NOT NULL DEFAULT '{}',
  search           tsvector GENERATED ALWAYS AS (
                     to_tsvector('english'::regconfig,
                       coalesce(name, '') || ' ' || coalesce(scientific_name, '') || ' ' || coalesce(description, ''))
                   ) STORED,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX herbs_tcm_properties ON herbs USING gin (tcm_properties jsonb_path_ops);
CREATE INDEX herbs_search ON herbs USING gin (search);
CREATE INDEX herbs_published ON herbs (name, id) WHERE status = 'published';

ALTER TABLE herbs ENABLE ROW LEVEL SECURITY;
ALTER TABLE herbs FORCE ROW LEVEL SECURITY;
CREATE POLICY herbs_read ON herbs FOR SELECT
  USING (status = 'published' OR (SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
CREATE POLICY herbs_write ON herbs FOR ALL
  USING ((SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')))
  WITH CHECK ((SELECT app_has_role('editor')) OR (SELECT app_has_role('admin')));
GRANT SELECT, INSERT, UPDATE, DELETE ON herbs TO phi_app;

-- Symptom submissions: PHI. Every identifying or clinical field is sealed;
-- the plaintext columns are status, sharing, times and coarse de-identified
-- fields the service derives for analytics.
CREATE TABLE symptom_submissions (
  id                   uuid PRIMARY KEY,
  owner_id             text NOT NULL,         -- CMS user id (text: ids may be numbers or strings)
  status               text NOT NULL DEFAULT 'submitted'
                         CHECK (status IN ('submitted', 'reviewed', 'archived')),
  practitioner_id      uuid REFERENCES practitioners (id) ON DELETE SET NULL,
  symptoms             bytea NOT NULL,        -- sealed JSON list
  notes                bytea,                 -- sealed
  contact_email        bytea,                 -- sealed
  contact_email_bidx   bytea,                 -- blind index
  date_of_birth        bytea,                 -- sealed
  age_band             text,                  -- derived, e.g. '30-39'
  region               text,                  -- derived, coarse
  symptom_categories   text[] NOT NULL DEFAULT '{}',
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX symptom_submissions_owner ON symptom_submissions (owner_id, created_at DESC, id);
CREATE INDEX symptom_submissions_practitioner ON symptom_submissions (practitioner_id) WHERE practitioner_id IS NOT NULL;
CREATE INDEX symptom_submissions_contact_email ON symptom_submissions (contact_email_bidx) WHERE contact_email_bidx IS NOT NULL;

ALTER TABLE symptom_submissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE symptom_submissions FORCE ROW LEVEL SECURITY;
-- Owners see their own; an admin sees any only through break-glass (audited
-- by the service). Practitioners' consent-based reads arrive with consents.
CREATE POLICY submissions_owner_read ON symptom_submissions FOR SELECT
  USING (owner_id = (SELECT app_user_id()) OR (SELECT app_break_glass()));
CREATE POLICY submissions_owner_insert ON symptom_submissions FOR INSERT
  WITH CHECK (owner_id = (SELECT app_user_id()));
CREATE POLICY submissions_owner_update ON symptom_submissions FOR UPDATE
  USING (owner_id = (SELECT app_user_id()))
  WITH CHECK (owner_id = (SELECT app_user_id()));
CREATE POLICY submissions_owner_delete ON symptom_submissions FOR DELETE
  USING (owner_id = (SELECT app_user_id()));
GRANT SELECT, INSERT, UPDATE, DELETE ON symptom_submissions TO phi_app;

RESET ROLE;
