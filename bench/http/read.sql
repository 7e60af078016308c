\set n random(1, 1000)
-- @begin
SELECT id, owner_id, status, practitioner_id, symptoms, notes, contact_email, date_of_birth, region, created_at, updated_at FROM symptom_submissions WHERE id = (SELECT id FROM bench_ids WHERE n = :n);
SELECT audit.append('users:bench', 'users', 'patient', NULL, '01a2305c-51de-70d4-b979-dda6ae39d446', NULL, '127.0.0.1', ARRAY['READ']::text[]::audit.action[], ARRAY['symptom_submissions'], ARRAY['01a2305c-51de-70d4-b979-dda6ae39d446'], ARRAY['success'], ARRAY[NULL], ARRAY[''], ARRAY[NULL]);
COMMIT;
