-- One audit trigger for every audited table, from a row diff and a map of
-- columns to API names (issue 20, and issue 21's "a new column needs no
-- trigger copy"). 0004, 0006 and 0009 each re-created three trigger
-- functions in full, each with its own list of columns: a column added
-- later was changed without its name in the entry. Now:
--
-- * `audit.fields` maps each recorded column to its API name, in order,
--   with whether a CREATE or DELETE names it when it holds a value
--   (`on_create`) and whether its old and new values go into the entry's
--   `detail` (`with_values`: cleartext columns that say nothing of a
--   patient, the link and the status; never a sealed one). A test compares
--   it with `schema.rs`, and requires every sealed column to be in it.
-- * `audit.row_changed()` names the mapped columns a CREATE or DELETE row
--   holds and those an UPDATE changed (by comparing the row's images as
--   jsonb), and writes no entry for an UPDATE that changed none of them.
-- * `detail` is written as canonical JSON text (`audit.json_text`: keys in
--   byte order, no spaces), the form the service writes too, so exports
--   can show it as a JSON object and still verify it against its hash.
--   Entries written before keep the text they were hashed with.
SET LOCAL ROLE phi_owner;

CREATE FUNCTION audit.json_text(j jsonb) RETURNS text
  LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  CASE jsonb_typeof(j)
    WHEN 'object' THEN
      RETURN '{' || coalesce((SELECT string_agg(to_jsonb(k)::text || ':' || audit.json_text(v), ','
                                                ORDER BY k COLLATE "C")
                              FROM jsonb_each(j) AS e(k, v)), '') || '}';
    WHEN 'array' THEN
      RETURN '[' || coalesce((SELECT string_agg(audit.json_text(v), ',' ORDER BY n)
                              FROM jsonb_array_elements(j) WITH ORDINALITY AS e(v, n)), '') || ']';
    ELSE
      RETURN j::text;
  END CASE;
END $$;

CREATE TABLE audit.fields (
  entity_type  text NOT NULL,
  column_name  text NOT NULL,
  api_name     text NOT NULL,
  ord          integer NOT NULL,
  on_create    boolean NOT NULL,
  with_values  boolean NOT NULL,
  PRIMARY KEY (entity_type, column_name),
  UNIQUE (entity_type, ord)
);
INSERT INTO audit.fields (entity_type, column_name, api_name, ord, on_create, with_values) VALUES
  ('symptom_submissions', 'symptoms',        'symptoms',       1, true,  false),
  ('symptom_submissions', 'notes',           'notes',          2, true,  false),
  ('symptom_submissions', 'contact_email',   'contactEmail',   3, true,  false),
  ('symptom_submissions', 'date_of_birth',   'dateOfBirth',    4, true,  false),
  ('symptom_submissions', 'region',          'region',         5, true,  false),
  ('symptom_submissions', 'status',          'status',         6, false, true),
  ('symptom_submissions', 'practitioner_id', 'practitionerId', 7, true,  false),
  ('practitioners',       'email',           'email',          1, true,  false),
  ('practitioners',       'phone',           'phone',          2, true,  false),
  ('practitioners',       'licence_number',  'licenceNumber',  3, true,  false),
  ('practitioners',       'user_id',         'userId',         4, true,  true),
  ('practitioners',       'status',          'status',         5, false, true),
  ('consents',            'practitioner_id', 'practitionerId', 1, true,  false),
  ('consents',            'submission_id',   'submissionId',   2, true,  false),
  ('consents',            'expires_at',      'expiresAt',      3, true,  false);

-- The entry of one changed row, actor from the transaction's settings
-- (store::begin). SECURITY DEFINER: it writes as the log's owner.
CREATE FUNCTION audit.row_changed() RETURNS trigger
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
                         fields, detail)
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
               ELSE audit.json_text(d) END);
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$;

-- The same trigger names as before (BEFORE, named to run after any other
-- BEFORE trigger, so the entry sees the final row).
DROP TRIGGER zz_audit_changes ON public.symptom_submissions;
DROP TRIGGER zz_audit_changes ON public.practitioners;
DROP TRIGGER zz_audit_changes ON public.consents;
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.practitioners
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR DELETE ON public.consents
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
REVOKE EXECUTE ON FUNCTION audit.row_changed() FROM PUBLIC;
GRANT SELECT ON audit.fields TO phi_auditor;

RESET ROLE;
