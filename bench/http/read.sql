\set n random(1, 1000)
-- @begin
SELECT id, owner_id, status, practitioner_id, symptoms, notes, contact_email, date_of_birth, region, created_at, updated_at, CASE WHEN owner_id = (SELECT app_user_id()) THEN NULL ELSE coalesce(consent_scope(owner_id, id), '{}') END AS scope FROM symptom_submissions WHERE id = (SELECT id FROM bench_ids WHERE n = :n);
SELECT audit.append(:user_id, :collection, :roles, NULL, :request_id, NULL, :client_addr, :actions::text[]::audit.action[], :tables, :ids, :outcomes, :nulls, :fields, :nulls, :subjects);
COMMIT;
