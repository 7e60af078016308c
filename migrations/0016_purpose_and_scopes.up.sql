-- Purpose of use and consent scopes (issue 22).
--
-- * Every audit entry records why PHI was accessed (`purpose`: the
--   `X-Purpose-Of-Use` vocabulary, exported as FHIR purposeOfEvent). The
--   request's transaction sets `app.purpose` with the identity
--   (`store::begin`), and the column's default reads it, so the service's
--   entries (`audit.append`) and the triggers' (`audit.row_changed`) carry
--   it without either function being re-created. Entries written before
--   have none (NULL), and hash as they always did.
-- * Every entry about a patient's record names the patient (`subject`:
--   the record's owner), so a patient's report reads their entries by an
--   index, deleted records included. The service passes it to
--   `audit.append` (a new overload; the old one stays for a gateway of the
--   previous version during a rolling upgrade), the trigger takes it from
--   the row's `owner_id`. `audit.access_report` is the one way a patient's
--   request reads the log: only entries whose subject is the caller.
-- * A consent grants chosen parts of a submission (`scope`); existing
--   consents keep granting all of it. `consent_scope` gives the union of
--   the scopes of the consents that let the caller read a submission (the
--   same consents as `app_shared_with_me`), read under the caller's own
--   rights (SECURITY INVOKER): the service opens nothing else.
SET LOCAL ROLE phi_owner;

-- Added without a default, then given one: existing rows keep NULL without
-- the whole log being rewritten.
ALTER TABLE audit.log ADD COLUMN purpose text
  CONSTRAINT log_purpose_vocabulary CHECK (purpose IN
    ('treatment', 'payment', 'operations', 'research', 'emergency', 'patient-request'));
ALTER TABLE audit.log ALTER COLUMN purpose SET DEFAULT nullif(current_setting('app.purpose', true), '');

ALTER TABLE audit.log ADD COLUMN subject text;
CREATE INDEX audit_log_subject ON audit.log (subject, at) WHERE subject IS NOT NULL;

CREATE FUNCTION audit.append(
    p_actor_user text, p_actor_collection text, p_actor_roles text, p_api_key_id uuid,
    p_request_id text, p_client_request_id text, p_client_addr text,
    p_actions audit.action[], p_entity_types text[], p_entity_ids text[], p_outcomes text[],
    p_reasons text[], p_fields text[], p_details text[], p_subjects text[])
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                         entity_id, request_id, client_request_id, client_addr, outcome, reason,
                         fields, detail, subject)
  SELECT p_actor_user, p_actor_collection, p_actor_roles, p_api_key_id, a, t, i,
         p_request_id, p_client_request_id, p_client_addr, o, r,
         CASE WHEN f = '' THEN '{}'::text[] ELSE string_to_array(f, ',') END, d, s
  FROM unnest(p_actions, p_entity_types, p_entity_ids, p_outcomes, p_reasons, p_fields, p_details,
              p_subjects)
       AS x(a, t, i, o, r, f, d, s);
END $$;
REVOKE EXECUTE ON FUNCTION audit.append(text, text, text, uuid, text, text, text, audit.action[],
  text[], text[], text[], text[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.append(text, text, text, uuid, text, text, text, audit.action[],
  text[], text[], text[], text[], text[], text[], text[]) TO phi_app;

-- The trigger of 0015, naming the row's owner as the entry's subject.
CREATE OR REPLACE FUNCTION audit.row_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  f text[] := '{}';
  d jsonb := '{}';
  m record;
  cascade boolean := TG_OP = 'DELETE' AND pg_trigger_depth() > 1;
  rotation boolean := session_user <> 'phi_app'
                      AND current_setting('app.operation', true) = 'reencrypt';
BEGIN
  FOR m IN SELECT column_name, api_name, on_create, with_values FROM audit.fields
           WHERE entity_type = TG_TABLE_NAME ORDER BY ord LOOP
    IF TG_OP = 'UPDATE' THEN
      IF new_row -> m.column_name IS DISTINCT FROM old_row -> m.column_name THEN
        f := f || m.api_name;
        IF m.with_values THEN
          d := d || jsonb_build_object(m.api_name, jsonb_build_object(
                 'old', old_row -> m.column_name, 'new', new_row -> m.column_name));
        END IF;
      END IF;
    ELSIF m.on_create AND coalesce(new_row, old_row) -> m.column_name <> 'null'::jsonb THEN
      f := f || m.api_name;
      IF TG_OP = 'INSERT' AND m.with_values THEN
        d := d || jsonb_build_object(m.api_name, jsonb_build_object(
               'old', NULL, 'new', new_row -> m.column_name));
      END IF;
    END IF;
  END LOOP;
  IF TG_OP = 'UPDATE' AND cardinality(f) = 0 THEN
    RETURN NEW;
  END IF;
  INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                         entity_id, request_id, client_request_id, client_addr, outcome, reason,
                         fields, detail, subject)
  VALUES (nullif(current_setting('app.user_id', true), ''),
          nullif(current_setting('app.collection', true), ''),
          nullif(current_setting('app.roles', true), ''),
          nullif(current_setting('app.api_key_id', true), '')::uuid,
          CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action
               WHEN TG_OP = 'INSERT' THEN 'CREATE'::audit.action
               WHEN TG_OP = 'UPDATE' THEN 'UPDATE'::audit.action
               ELSE 'DELETE'::audit.action END,
          TG_TABLE_NAME, coalesce(new_row, old_row) ->> 'id',
          nullif(current_setting('app.request_id', true), ''),
          nullif(current_setting('app.client_request_id', true), ''),
          nullif(current_setting('app.client_addr', true), ''), 'success',
          CASE WHEN cascade THEN 'cascade' ELSE nullif(current_setting('app.reason', true), '') END,
          f,
          CASE WHEN cascade THEN '{"cascade":true}'
               WHEN d = '{}' THEN NULL
               ELSE audit.json_text(d) END,
          coalesce(new_row, old_row) ->> 'owner_id');
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$;

-- A patient's accesses report: the entries whose subject is the caller
-- (app.user_id), by others (and their own when asked), in [p_from, p_to),
-- after position p_after, at most p_limit. Whether the request that made
-- an entry was a break-glass one (and its stated reason), and the
-- practitioner's name for an actor linked to one, come with it. SECURITY DEFINER: the service's role reads
-- the log through this, and this sees only the caller's entries.
CREATE FUNCTION audit.access_report(p_from timestamptz, p_to timestamptz, p_include_own boolean,
                                    p_after bigint, p_limit integer)
  RETURNS TABLE (seq bigint, at timestamptz, actor_user text, actor_roles text,
                 practitioner_name text, action text, entity_type text, entity_id text,
                 fields text[], purpose text, reason text, break_glass boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH mine AS (
    SELECT l.seq, l.at, l.actor_user, l.actor_roles, l.action, l.entity_type, l.entity_id,
           l.fields, l.purpose, l.reason,
           bool_or(l.action = 'BREAK_GLASS')
             OVER (PARTITION BY coalesce(l.request_id, l.seq::text)) AS break_glass,
           max(l.reason) FILTER (WHERE l.action = 'BREAK_GLASS')
             OVER (PARTITION BY coalesce(l.request_id, l.seq::text)) AS emergency
    FROM audit.log l
    WHERE l.subject = public.app_user_id()
      AND l.at >= p_from AND l.at < p_to
      AND (p_include_own OR l.actor_user IS DISTINCT FROM l.subject)
  )
  SELECT m.seq, m.at, m.actor_user, m.actor_roles,
         (SELECT p.name FROM public.practitioners p
          WHERE p.user_id = m.actor_user ORDER BY p.id LIMIT 1),
         m.action::text, m.entity_type, m.entity_id, m.fields, m.purpose,
         m.emergency, m.break_glass
  FROM mine m
  WHERE m.seq > p_after
  ORDER BY m.seq
  LIMIT p_limit $$;
REVOKE EXECUTE ON FUNCTION audit.access_report(timestamptz, timestamptz, boolean, bigint, integer)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.access_report(timestamptz, timestamptz, boolean, bigint, integer)
  TO phi_app;

ALTER TABLE consents ADD COLUMN scope text[] NOT NULL
  DEFAULT '{symptoms,notes,contact,dateOfBirth,region}'
  CONSTRAINT consents_scope_vocabulary CHECK (
    cardinality(scope) > 0
    AND scope <@ '{symptoms,notes,contact,dateOfBirth,region}'::text[]);

INSERT INTO audit.fields (entity_type, column_name, api_name, ord, on_create, with_values) VALUES
  ('consents', 'scope', 'scope', 4, true, true);

CREATE FUNCTION consent_scope(owner text, submission uuid) RETURNS text[]
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT array_agg(DISTINCT s ORDER BY s)
        FROM public.consents c JOIN public.practitioners p ON p.id = c.practitioner_id,
             unnest(c.scope) AS s
        WHERE c.practitioner_user = public.app_user_id()
          AND p.user_id = c.practitioner_user
          AND c.owner_id = owner
          AND (c.submission_id IS NULL OR c.submission_id = submission)
          AND (c.expires_at IS NULL OR c.expires_at > now()) $$;
REVOKE EXECUTE ON FUNCTION consent_scope(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION consent_scope(text, uuid) TO phi_app;

RESET ROLE;
