-- An audit trail the service's own role cannot cut, forge or stop.
--
-- * phi_app no longer writes audit tables directly. It appends entries only
--   through audit.append() and the tables' triggers, SECURITY DEFINER
--   functions that take seq, time and transaction id from the database,
--   never from the caller.
-- * A role of its own, phi_sealer, is the only one (besides the owner) that
--   writes the chain, the checkpoints, the sealer's state and the
--   quarantine, and creates partitions (at most 24 months ahead).
-- * An entry that can never be sealed (it reuses a sealed sequence number:
--   only a superuser can insert one now) is quarantined and reported by
--   `audit verify` and /health/audit instead of stopping the sealer.
-- * Checkpoints say how they are signed: 'ed25519' (new, verifiable with the
--   public key alone) or 'hmac-sha256' (before this migration).
-- * Entries gain the client's own request id (ours is always `request_id`)
--   and a `detail`: JSON text written by the service or a trigger (counts of
--   a list, old and new values of a practitioner's link and status, a
--   consent removed by a cascade, a signed export manifest). Never a PHI
--   value. The chain encodes both only when present, so entries sealed
--   before this migration verify as before.
-- * The operator label KEY_ROTATION comes from `app.operation`, and only for
--   sessions that are not the service's: nothing a request sends can set it.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phi_sealer') THEN
    BEGIN
      CREATE ROLE phi_sealer LOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;  -- created concurrently by another database's migration
    END;
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'phi_sealer' AND (
      rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin)) THEN
    ALTER ROLE phi_sealer NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO phi_sealer', current_database());
END
$$;

SET LOCAL ROLE phi_owner;

ALTER TABLE audit.log ADD COLUMN client_request_id text;
ALTER TABLE audit.log ADD COLUMN detail text;
-- Finds an export's signed manifest by the export's request id.
CREATE INDEX log_export_request ON audit.log (request_id) WHERE action = 'EXPORT';

-- Exports select a window by when entries were sealed (the chain's order).
CREATE INDEX chain_sealed_at ON audit.chain (sealed_at);

ALTER TABLE audit.checkpoints ADD COLUMN alg text NOT NULL DEFAULT 'hmac-sha256';
ALTER TABLE audit.checkpoints ALTER COLUMN alg SET DEFAULT 'ed25519';

CREATE TABLE audit.quarantine (
  seq       bigint NOT NULL,
  txid      bigint NOT NULL,
  reason    text NOT NULL,
  found_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (txid, seq)
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.quarantine
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.quarantine
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Bounded: a caller cannot make the database create thousands of tables.
CREATE OR REPLACE FUNCTION audit.ensure_partitions(months_ahead integer) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
  m date := date_trunc('month', now())::date;
  name text;
BEGIN
  IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 24 THEN
    RAISE EXCEPTION 'audit.ensure_partitions: months_ahead must be 0 to 24'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
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

-- The service's one way to write entries: any number in one call. seq, at
-- and txid come from the column defaults.
CREATE FUNCTION audit.append(
    p_actor_user text, p_actor_collection text, p_actor_roles text, p_api_key_id uuid,
    p_request_id text, p_client_request_id text, p_client_addr text,
    p_actions audit.action[], p_entity_types text[], p_entity_ids text[], p_outcomes text[],
    p_reasons text[], p_fields text[], p_details text[])
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                         entity_id, request_id, client_request_id, client_addr, outcome, reason,
                         fields, detail)
  SELECT p_actor_user, p_actor_collection, p_actor_roles, p_api_key_id, a, t, i,
         p_request_id, p_client_request_id, p_client_addr, o, r,
         CASE WHEN f = '' THEN '{}'::text[] ELSE string_to_array(f, ',') END, d
  FROM unnest(p_actions, p_entity_types, p_entity_ids, p_outcomes, p_reasons, p_fields, p_details)
       AS x(a, t, i, o, r, f, d);
END $$;

-- What health checks and metrics report about sealing, readable by the
-- service without any right on the sealer's tables.
CREATE FUNCTION audit.status(
    OUT unsealed bigint, OUT oldest_unsealed timestamptz, OUT quarantined bigint,
    OUT head_pos bigint, OUT last_checkpoint timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT (SELECT count(*) FROM audit.log l WHERE l.txid >= s.lo
            AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq)
            AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid)),
         (SELECT min(l.at) FROM audit.log l WHERE l.txid >= s.lo
            AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq)
            AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid)),
         (SELECT count(*) FROM audit.quarantine),
         (SELECT max(pos) FROM audit.chain),
         (SELECT max(at) FROM audit.checkpoints)
  FROM audit.sealer_state s
$$;

-- The triggers below write one entry each, the actor taken from the
-- transaction-local settings the service sets at the start of every request
-- (db::scoped). SECURITY DEFINER: they insert as the log's owner, so the
-- service's role needs no INSERT right on the log. The INSERT is written
-- out in each (plpgsql caches its plan; a shared helper would cost a nested
-- call per row).
CREATE OR REPLACE FUNCTION audit.submission_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  f text[];
  reason text := nullif(current_setting('app.reason', true), '');
  rotation boolean := session_user <> 'phi_app'
                      AND current_setting('app.operation', true) = 'reencrypt';
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
                           entity_id, request_id, client_request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action ELSE 'CREATE'::audit.action END,
            TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_request_id', true), ''),
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
                             entity_id, request_id, client_request_id, client_addr, outcome, reason,
                             fields, detail)
      VALUES (nullif(current_setting('app.user_id', true), ''),
              nullif(current_setting('app.collection', true), ''),
              nullif(current_setting('app.roles', true), ''),
              nullif(current_setting('app.api_key_id', true), '')::uuid,
              CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action ELSE 'UPDATE'::audit.action END,
              TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
              nullif(current_setting('app.client_request_id', true), ''),
              nullif(current_setting('app.client_addr', true), ''), 'success', reason, f,
              CASE WHEN NEW.status IS DISTINCT FROM OLD.status
                   THEN jsonb_build_object('status', jsonb_build_object('old', OLD.status, 'new', NEW.status))::text END);
    END IF;
  ELSE
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action ELSE 'DELETE'::audit.action END,
            TG_TABLE_NAME, OLD.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, '{}');
    RETURN OLD;
  END IF;
  RETURN NEW;
END $$;

-- A practitioner's sealed fields, its linked user and its status: every
-- change, with old and new values of the link and the status (never of a
-- sealed field), and every deletion.
CREATE OR REPLACE FUNCTION audit.practitioner_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  f text[];
  d jsonb := '{}';
  reason text := nullif(current_setting('app.reason', true), '');
  rotation boolean := session_user <> 'phi_app'
                      AND current_setting('app.operation', true) = 'reencrypt';
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_request_id, client_addr, outcome, reason, fields)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action ELSE 'DELETE'::audit.action END,
            TG_TABLE_NAME, OLD.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, '{}');
    RETURN OLD;
  END IF;
  IF TG_OP = 'INSERT' THEN
    f := array_remove(ARRAY[
      CASE WHEN NEW.email IS NOT NULL THEN 'email' END,
      CASE WHEN NEW.phone IS NOT NULL THEN 'phone' END,
      CASE WHEN NEW.licence_number IS NOT NULL THEN 'licenceNumber' END,
      CASE WHEN NEW.user_id IS NOT NULL THEN 'userId' END], NULL);
    IF NEW.user_id IS NOT NULL THEN
      d := jsonb_build_object('userId', jsonb_build_object('old', NULL, 'new', NEW.user_id));
    END IF;
  ELSE
    f := array_remove(ARRAY[
      CASE WHEN NEW.email IS DISTINCT FROM OLD.email THEN 'email' END,
      CASE WHEN NEW.phone IS DISTINCT FROM OLD.phone THEN 'phone' END,
      CASE WHEN NEW.licence_number IS DISTINCT FROM OLD.licence_number THEN 'licenceNumber' END,
      CASE WHEN NEW.user_id IS DISTINCT FROM OLD.user_id THEN 'userId' END,
      CASE WHEN NEW.status IS DISTINCT FROM OLD.status THEN 'status' END], NULL);
    IF NEW.user_id IS DISTINCT FROM OLD.user_id THEN
      d := d || jsonb_build_object('userId', jsonb_build_object('old', OLD.user_id, 'new', NEW.user_id));
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
      d := d || jsonb_build_object('status', jsonb_build_object('old', OLD.status, 'new', NEW.status));
    END IF;
  END IF;
  IF cardinality(f) > 0 THEN
    INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                           entity_id, request_id, client_request_id, client_addr, outcome, reason,
                           fields, detail)
    VALUES (nullif(current_setting('app.user_id', true), ''),
            nullif(current_setting('app.collection', true), ''),
            nullif(current_setting('app.roles', true), ''),
            nullif(current_setting('app.api_key_id', true), '')::uuid,
            CASE WHEN rotation THEN 'KEY_ROTATION'::audit.action
                 WHEN TG_OP = 'INSERT' THEN 'CREATE'::audit.action ELSE 'UPDATE'::audit.action END,
            TG_TABLE_NAME, NEW.id::text, nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_request_id', true), ''),
            nullif(current_setting('app.client_addr', true), ''), 'success', reason, f,
            CASE WHEN d = '{}' THEN NULL ELSE d::text END);
  END IF;
  RETURN NEW;
END $$;

-- Consents given and withdrawn, including those removed because their
-- practitioner or submission was deleted (a cascade: trigger depth > 1).
CREATE FUNCTION audit.consent_changed() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  cascade boolean := TG_OP = 'DELETE' AND pg_trigger_depth() > 1;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  INSERT INTO audit.log (actor_user, actor_collection, actor_roles, api_key_id, action, entity_type,
                         entity_id, request_id, client_request_id, client_addr, outcome, reason,
                         fields, detail)
  VALUES (nullif(current_setting('app.user_id', true), ''),
          nullif(current_setting('app.collection', true), ''),
          nullif(current_setting('app.roles', true), ''),
          nullif(current_setting('app.api_key_id', true), '')::uuid,
          CASE WHEN TG_OP = 'INSERT' THEN 'CREATE'::audit.action ELSE 'DELETE'::audit.action END,
          TG_TABLE_NAME, r.id::text,
          nullif(current_setting('app.request_id', true), ''),
          nullif(current_setting('app.client_request_id', true), ''),
          nullif(current_setting('app.client_addr', true), ''), 'success',
          CASE WHEN cascade THEN 'cascade' ELSE nullif(current_setting('app.reason', true), '') END,
          array_remove(ARRAY['practitionerId',
                             CASE WHEN r.submission_id IS NOT NULL THEN 'submissionId' END,
                             CASE WHEN r.expires_at IS NOT NULL THEN 'expiresAt' END], NULL),
          CASE WHEN cascade THEN '{"cascade": true}' END);
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR DELETE ON public.consents
  FOR EACH ROW EXECUTE FUNCTION audit.consent_changed();

-- Rights: the service appends and reads (the export); the sealer seals.
REVOKE INSERT ON audit.log FROM phi_app;
REVOKE INSERT ON audit.chain, audit.checkpoints FROM phi_app;
REVOKE UPDATE ON audit.sealer_state FROM phi_app;
REVOKE SELECT ON audit.sealer_state FROM phi_app;
REVOKE USAGE ON SEQUENCE audit.log_seq FROM phi_app;
REVOKE EXECUTE ON FUNCTION audit.ensure_partitions(integer) FROM phi_app;
REVOKE EXECUTE ON FUNCTION audit.submission_changed(), audit.practitioner_changed() FROM phi_app;
GRANT EXECUTE ON FUNCTION audit.append(text, text, text, uuid, text, text, text, audit.action[],
  text[], text[], text[], text[], text[], text[]) TO phi_app;
GRANT EXECUTE ON FUNCTION audit.status() TO phi_app, phi_sealer, phi_auditor;

GRANT USAGE ON SCHEMA audit TO phi_sealer;
GRANT USAGE ON TYPE audit.action TO phi_sealer;
GRANT SELECT ON audit.log TO phi_sealer;
GRANT SELECT, INSERT ON audit.chain, audit.checkpoints, audit.quarantine TO phi_sealer;
GRANT SELECT, UPDATE ON audit.sealer_state TO phi_sealer;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(integer) TO phi_sealer;
GRANT SELECT ON audit.quarantine, audit.sealer_state TO phi_auditor;

RESET ROLE;
