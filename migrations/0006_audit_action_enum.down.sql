-- Reverts 0006: audit.log.action back to text with a CHECK.
SET LOCAL ROLE phi_owner;

ALTER TABLE audit.log ALTER COLUMN action TYPE text USING action::text;
ALTER TABLE audit.log ADD CONSTRAINT log_action_check CHECK (action IN ('CREATE', 'READ', 'UPDATE',
  'DELETE', 'EXPORT', 'ACCESS_DENIED', 'BREAK_GLASS', 'DECRYPT_FAILURE', 'KEY_ROTATION', 'LOGIN'));

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
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION' ELSE 'CREATE' END,
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
              CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION' ELSE 'UPDATE' END,
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
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION' ELSE 'DELETE' END,
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
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION' ELSE 'DELETE' END,
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
            CASE WHEN reason = 'reencrypt' THEN 'KEY_ROTATION' ELSE CASE TG_OP WHEN 'INSERT' THEN 'CREATE' ELSE 'UPDATE' END END,
            TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, f);
  END IF;
  RETURN NEW;
END $$;

DROP TYPE audit.action;

RESET ROLE;
