-- The append-only, tamper-evident audit log.
--
-- audit.log      every access to PHI, inserted in the same transaction as the
--                access (or, for refusals, in its own); partitioned by month.
--                Writes to PHI tables are recorded by triggers on those tables
--                (no extra round trip, no way around them); reads by the service.
-- audit.chain    the hash chain, in sealing order: hash = SHA-256(prev_hash ||
--                canonical entry), computed by the service's single sealer.
-- audit.sealer_state  how far the sealer has got, by transaction id: it seals
--                entries whose transactions are all finished (below the
--                snapshot's xmin), in sequence order: commit order, without a
--                queue table or a trigger on the log.
-- audit.checkpoints  signed heads of the chain.
--
-- phi_app may INSERT into the log and read it (the sealer and the auditor's
-- export run in the service); it may never UPDATE or DELETE, and triggers
-- refuse UPDATE, DELETE and TRUNCATE to everyone, owner included. A superuser
-- can still get around triggers: the chain is what detects that.

CREATE SCHEMA audit AUTHORIZATION phi_owner;

SET LOCAL ROLE phi_owner;

CREATE SEQUENCE audit.log_seq;

CREATE TABLE audit.log (
  seq               bigint NOT NULL DEFAULT nextval('audit.log_seq'),
  at                timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_user        text,
  actor_collection  text,
  actor_roles       text,
  api_key_id        uuid,
  action            text NOT NULL CHECK (action IN ('CREATE', 'READ', 'UPDATE', 'DELETE', 'EXPORT',
                      'ACCESS_DENIED', 'BREAK_GLASS', 'DECRYPT_FAILURE', 'KEY_ROTATION', 'LOGIN')),
  entity_type       text NOT NULL,
  entity_id         text,
  request_id        text,
  client_addr       text,
  outcome           text NOT NULL,
  reason            text,
  fields            text[] NOT NULL DEFAULT '{}',
  txid              bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
) PARTITION BY RANGE (at);
-- One index serves the sealer (a txid range in seq order) and every lookup
-- of an entry (the chain stores txid and seq). seq is unique by its
-- sequence; a unique index would have to include `at` and would cost a
-- second index insert on every audited request.
CREATE INDEX log_txid_seq ON audit.log (txid, seq);
ALTER SEQUENCE audit.log_seq OWNED BY audit.log.seq;

CREATE TABLE audit.log_default PARTITION OF audit.log DEFAULT;

CREATE TABLE audit.sealer_state (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  lo         bigint NOT NULL,          -- every entry with txid < lo is sealed
  hi         bigint,                   -- the range being sealed: [lo, hi)
  after_seq  bigint NOT NULL DEFAULT 0 -- within it, sealed up to this seq
);
INSERT INTO audit.sealer_state (lo) VALUES (0);

CREATE TABLE audit.chain (
  pos        bigint PRIMARY KEY,
  seq        bigint NOT NULL UNIQUE,
  txid       bigint NOT NULL,
  prev_hash  bytea NOT NULL,
  hash       bytea NOT NULL,
  sealed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE audit.checkpoints (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pos         bigint NOT NULL,
  hash        bytea NOT NULL,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  key_id      integer NOT NULL,
  signature   bytea NOT NULL
);

CREATE FUNCTION audit.refuse_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit records are append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;

-- Guards one partition (each new month's partition gets them too).
CREATE FUNCTION audit.guard(part regclass) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON %s
                  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()', part);
END $$;

-- Creates the monthly partitions from this month to `months_ahead` ahead.
CREATE FUNCTION audit.ensure_partitions(months_ahead integer) RETURNS void
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

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.log
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.log
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
SELECT audit.guard('audit.log_default');
SELECT audit.ensure_partitions(3);

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.chain
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.chain
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- The triggers below write one entry each, the actor taken from the
-- transaction-local settings the service sets at the start of every request
-- (db::scoped). The INSERT is written out in each (plpgsql caches its plan;
-- a shared helper function would cost a nested call per row).

-- Every change to a submission, recorded with the transaction that makes it.
-- Field names are the API's; a re-sealed value counts as changed.
CREATE FUNCTION audit.submission_changed() RETURNS trigger
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
CREATE FUNCTION audit.practitioner_changed() RETURNS trigger
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

-- BEFORE, not AFTER: no after-trigger queue. A change that fails later
-- (constraint, row-level security check) aborts its statement, and the
-- transaction takes the entry with it. Named to run after any other
-- BEFORE trigger, so the entry sees the final row.
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION audit.submission_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.practitioners
  FOR EACH ROW EXECUTE FUNCTION audit.practitioner_changed();

GRANT USAGE ON SCHEMA audit TO phi_app, phi_auditor;
GRANT USAGE ON SEQUENCE audit.log_seq TO phi_app;
GRANT INSERT, SELECT ON audit.log TO phi_app;
GRANT INSERT, SELECT ON audit.chain, audit.checkpoints TO phi_app;
GRANT SELECT, UPDATE ON audit.sealer_state TO phi_app;
GRANT EXECUTE ON FUNCTION audit.ensure_partitions(integer),
  audit.submission_changed(), audit.practitioner_changed() TO phi_app;
GRANT SELECT ON audit.log, audit.chain, audit.checkpoints TO phi_auditor;

RESET ROLE;
