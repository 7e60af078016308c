-- The tables the CMS's database guide implies (../shared/reference/
-- cms-database-guide.md). The guide shows no DDL: this is the closest
-- faithful reading of it. `herbs` with a JSON `tcm_properties` (its GIN
-- index casts it to jsonb), `practitioners` with `latitude`/`longitude`
-- (its `ll_to_earth(latitude::double precision, ...)` index), and
-- `symptom_submissions` owned by `user_id` (its RLS policy) whose PHI
-- columns were encrypted in place with pgp_sym_encrypt under
-- DATABASE_ENCRYPTION_KEY ("HIPAA Encryption Migration": the migration is
-- not shown; encrypted columns are bytea). The key here is a test's.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE herbs (
  id               serial PRIMARY KEY,
  name             text NOT NULL,
  slug             text NOT NULL,
  scientific_name  text,
  description      text,
  status           text NOT NULL DEFAULT 'draft',
  tcm_properties   json,
  created_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO herbs (name, slug, scientific_name, description, status, tcm_properties) VALUES
  ('Ginger', 'ginger', 'Zingiber officinale', 'Warms the middle.', 'published',
   '{"taste": ["pungent"], "temperature": "warm", "meridians": ["lung", "spleen", "stomach"], "actions": ["warms the middle"]}'),
  ('Peppermint', 'peppermint', 'Mentha piperita', NULL, 'published',
   '{"taste": ["pungent"], "temperature": "cool", "meridians": ["lung", "liver"]}'),
  -- Invalid: a taste the vocabulary does not have.
  ('Mystery', 'mystery', NULL, NULL, 'draft', '{"taste": ["umami-ish"]}');

CREATE TABLE practitioners (
  id          serial PRIMARY KEY,
  name        text NOT NULL,
  slug        text NOT NULL,
  email       bytea,          -- pgp_sym_encrypt
  phone       text,
  city        text,
  latitude    numeric(9, 6),
  longitude   numeric(9, 6),
  status      text NOT NULL DEFAULT 'published'
);
INSERT INTO practitioners (name, slug, email, phone, city, latitude, longitude) VALUES
  ('Dr Lin Wei', 'lin-wei', pgp_sym_encrypt('lin@example.org', 'guide-old-key'), '+1 555 0100', 'Portland', 45.515200, -122.678400),
  ('Ana Souza', 'ana-souza', NULL, NULL, 'Lisbon', 38.722300, -9.139300);

CREATE TABLE symptom_submissions (
  id             serial PRIMARY KEY,
  user_id        text NOT NULL,
  symptoms       bytea NOT NULL,   -- pgp_sym_encrypt of the JSON list
  notes          bytea,            -- pgp_sym_encrypt
  contact_email  bytea,            -- pgp_sym_encrypt
  date_of_birth  bytea,            -- pgp_sym_encrypt of YYYY-MM-DD
  region         text,             -- in the clear
  created_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO symptom_submissions (user_id, symptoms, notes, contact_email, date_of_birth, region)
SELECT 'guide-' || (i % 3),
       pgp_sym_encrypt(format('[{"name": "Headache %s", "severity": %s, "onset": "2026-01-%s"}]', i, i % 10, lpad((i % 28 + 1)::text, 2, '0')), 'guide-old-key'),
       pgp_sym_encrypt('notes of submission ' || i, 'guide-old-key'),
       CASE WHEN i % 2 = 0 THEN pgp_sym_encrypt('patient' || i || '@example.org', 'guide-old-key') END,
       pgp_sym_encrypt('1980-05-0' || (i % 9 + 1), 'guide-old-key'),
       'FR'
FROM generate_series(1, 12) i;
-- Invalid: a severity out of range, and an email that is not one.
INSERT INTO symptom_submissions (user_id, symptoms, contact_email) VALUES
  ('guide-9', pgp_sym_encrypt('[{"name": "Fever", "severity": 14, "onset": "2026-01-02"}]', 'guide-old-key'), NULL),
  ('guide-9', pgp_sym_encrypt('[{"name": "Fever", "severity": 4, "onset": "2026-01-02"}]', 'guide-old-key'),
   pgp_sym_encrypt('not an email', 'guide-old-key'));
