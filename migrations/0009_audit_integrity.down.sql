-- Reverts 0009: the service writes the audit tables directly again and the
-- triggers of 0006 return. Quarantined entries, the new columns and the
-- signature algorithm of checkpoints are dropped: export the log first.
DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM phi_sealer', current_database());
END
$$;

SET LOCAL ROLE phi_owner;

DROP TRIGGER IF EXISTS zz_audit_changes ON public.consents;
DROP FUNCTION IF EXISTS audit.consent_changed();
DROP FUNCTION IF EXISTS audit.status();
DROP FUNCTION IF EXISTS audit.append(text, text, text, uuid, text, text, text, audit.action[],
  text[], text[], text[], text[], text[], text[]);
DROP TABLE IF EXISTS audit.quarantine;
DROP INDEX IF EXISTS audit.log_export_request;
DROP INDEX IF EXISTS audit.chain_sealed_at;
ALTER TABLE audit.log DROP COLUMN IF EXISTS client_request_id;
ALTER TABLE audit.log DROP COLUMN IF EXISTS detail;
ALTER TABLE audit.checkpoints DROP COLUMN IF EXISTS alg;

CREATE OR REPLACE FUNCTION audit.ensure_partitions(months_ahead integer) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
  m date := date_trunc('month', now())::date;
  name text;
BEGIN
  FOR i IN 0..months_ahead LOOP
    name := format('log_%s', to_char(m, 'YYYY_MM'));
    IF to_regclass('audit.' || name) IS NULL THEN
      EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.log FOR VALUES FROM (%L) TO (%L)',
                     name, m, (m + interval '1 month')::date);
      PERFORM audit.guard(('audit.' || name)::regclass);
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
END $$;

-- The triggers of 0006, word for word.
CREATE OR REPLACE FUNCTION audit.submission_changed() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  f text[];
  reason text := nullif(current_setting('app.reason', true), '');
BEGIN
  IF TG_OP = 'INSERT' THEN
    f := array_remove(ARRAY[
      CASE WHEN NEW.symptoms IS NOT NULL THEN 'symptoms' END,
      CASE WHEN NEW.notes IS NOT NULL THEN 'notes' END,
      CASE WHEN NEW.contact_email IS NOT NULL THEN 'contactEmail' END,
      CASE WHEN NEW.date_of_birth IS NOT NULL THEN 'dateOfBirth' END,
      CASE WHEN NEW.region IS NOT NULL THEN 'region' END,
      CASE WHEN NEW.practitioner_id IS NOT NULL THEN 'practitionerId' END], NULL);
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION'::audit.action ELSE 'CREATE'::audit.action END,
            TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, f);
  ELSIF TG_OP = 'UPDATE' THEN
    f := array_remove(ARRAY[
      CASE WHEN NEW.symptoms IS DISTINCT FROM OLD.symptoms THEN 'symptoms' END,
      CASE WHEN NEW.notes IS DISTINCT FROM OLD.notes THEN 'notes' END,
      CASE WHEN NEW.contact_email IS DISTINCT FROM OLD.contact_email THEN 'contactEmail' END,
      CASE WHEN NEW.date_of_birth IS DISTINCT FROM OLD.date_of_birth THEN 'dateOfBirth' END,
      CASE WHEN NEW.region IS DISTINCT FROM OLD.region THEN 'region' END,
      CASE WHEN NEW.status IS DISTINCT FROM OLD.status THEN 'status' END,
      CASE WHEN NEW.practitioner_id IS DISTINCT FROM OLD.practitioner_id THEN 'practitionerId' END], NULL);
    IF cardinality(f) > 0 THEN
      INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                             entity_id, request_id, client_addr, outcome, reason, fields)
      VALUES (nullif(current_setting('app.user_id', true), ''),
              nullif(current_setting('app.collection', true), ''),
              nullif(current_setting('app.roles', true), ''),
              nullif(current_setting('app.api_key_id', true), '')::uuid,
              CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION'::audit.action ELSE 'UPDATE'::audit.action END,
              TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
              nullif(current_setting('app.client_addr', true), ''), 'success', reason, f);
    END IF;
  ELSE
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION'::audit.action ELSE 'DELETE'::audit.action END,
            TG_TABLE_NAME, OLD.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, '{}');
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$;

-- Every change to a practitioner's sealed fields, and every deletion.
CREATE OR REPLACE FUNCTION audit.practitioner_changed() RETURNS trigger
  LANGUAGE plpgsql AS $$
DECLARE
  f text[];
  reason text := nullif(current_setting('app.reason', true), '');
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION'::audit.action ELSE 'DELETE'::audit.action END,
            TG_TABLE_NAME, OLD.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, '{}');
    RETURN OLD;
  END IF;
  IF TG_OP = 'INSERT' THEN
    f := array_remove(ARRAY[
      CASE WHEN NEW.email IS NOT NULL THEN 'email' END,
      CASE WHEN NEW.phone IS NOT NULL THEN 'phone' END,
      CASE WHEN NEW.licence_number IS NOT NULL THEN 'licenceNumber' END], NULL);
  ELSE
    f := array_remove(ARRAY[
      CASE WHEN NEW.email IS DISTINCT FROM OLD.email THEN 'email' END,
      CASE WHEN NEW.phone IS DISTINCT FROM OLD.phone THEN 'phone' END,
      CASE WHEN NEW.licence_number IS DISTINCT FROM OLD.licence_number THEN 'licenceNumber' END], NULL);
  END IF;
  IF cardinality(f) > 0 THEN
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION'::audit.action ELSE CASE TG_OP WHEN 'INSERT' THEN 'CREATE'::audit.action ELSE 'UPDATE'::audit.action END END,
            TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, f);
  END IF;
  RETURN NEW;
END $$;

REVOKE ALL ON audit.chain, audit.checkpoints, audit.sealer_state, audit.log FROM phi_sealer;
REVOKE ALL ON SCHEMA audit FROM phi_sealer;
REVOKE ALL ON TYPE audit.action FROM phi_sealer;
REVOKE ALL ON FUNCTION audit.ensure_partitions(integer) FROM phi_sealer;
REVOKE SELECT ON audit.sealer_state FROM phi_auditor;
GRANT USAGE ON SEQUENCE audit.log_seq TO phi_app;
GRANT INSERT, SELECT ON audit.log TO phi_app;
GRANT INSERT, SELECT ON audit.chain, audit.checkpoints TO phi_app;
GRANT SELECT, UPDATE ON audit.sealer_state TO phi_app;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(integer),
  audit.submission_changed(), audit.practitioner_changed() TO phi_app;

RESET ROLE;
