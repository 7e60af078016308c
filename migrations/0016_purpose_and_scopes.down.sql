-- Reverts 0016: entries keep no purpose and no subject, consents grant all,
-- and the trigger of 0015 is back.
SET LOCAL ROLE phi_owner;
DROP FUNCTION audit.access_report(timestamptz, timestamptz, boolean, bigint, integer);
DROP FUNCTION consent_scope(text, uuid);
DELETE FROM audit.fields WHERE entity_type = 'consents' AND column_name = 'scope';
ALTER TABLE consents DROP COLUMN scope;
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
DROP FUNCTION audit.append(text, text, text, uuid, text, text, text, audit.action[],
  text[], text[], text[], text[], text[], text[], text[]);
DROP INDEX audit.audit_log_subject;
ALTER TABLE audit.log DROP COLUMN subject;
ALTER TABLE audit.log DROP COLUMN purpose;
RESET ROLE;
