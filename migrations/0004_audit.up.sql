-- The append-only, tamper-evident audit log.
--
-- audit.log      every access to PHI, inserted in the same transaction as the
--                access (or, for refusals, in its own); partitioned by month.
-- audit.pending  what the sealer has yet to chain (filled by a trigger).
-- audit.chain    the hash chain, in sealing order: hash = SHA-256(prev_hash ||
--                canonical entry), computed by the service's single sealer.
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
  PRIMARY KEY (seq, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE audit.log_seq OWNED BY audit.log.seq;

CREATE TABLE audit.log_default PARTITION OF audit.log DEFAULT;

CREATE TABLE audit.pending (seq bigint PRIMARY KEY, at timestamptz NOT NULL);

CREATE TABLE audit.chain (
  pos        bigint PRIMARY KEY,
  seq        bigint NOT NULL UNIQUE,
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

-- Every new entry waits in audit.pending until sealed. SECURITY DEFINER: the
-- inserting role (phi_app) has no rights on audit.pending.
CREATE FUNCTION audit.enqueue() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
BEGIN
  INSERT INTO audit.pending (seq, at) VALUES (NEW.seq, NEW.at);
  RETURN NULL;
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
CREATE TRIGGER enqueue AFTER INSERT ON audit.log
  FOR EACH ROW EXECUTE FUNCTION audit.enqueue();
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

-- The sealer takes entries off the queue (the one DELETE anywhere here, on
-- a queue, not on a record).
CREATE FUNCTION audit.take_pending(batch integer)
  RETURNS SETOF audit.log
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
  WITH taken AS (
    DELETE FROM audit.pending
    WHERE seq IN (SELECT seq FROM audit.pending ORDER BY seq LIMIT batch FOR UPDATE SKIP LOCKED)
    RETURNING seq, at)
  SELECT l.* FROM audit.log l JOIN taken t ON l.seq = t.seq AND l.at = t.at ORDER BY l.seq
$$;

GRANT USAGE ON SCHEMA audit TO phi_app, phi_auditor;
GRANT USAGE ON SEQUENCE audit.log_seq TO phi_app;
GRANT INSERT, SELECT ON audit.log TO phi_app;
GRANT INSERT, SELECT ON audit.chain, audit.checkpoints TO phi_app;
GRANT EXECUTE ON FUNCTION audit.take_pending(integer), audit.ensure_partitions(integer) TO phi_app;
GRANT SELECT ON audit.log, audit.chain, audit.checkpoints TO phi_auditor;

RESET ROLE;
