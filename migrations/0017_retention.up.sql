-- Retention of the audit log (issue 22): legal holds, and archiving old
-- monthly partitions with a verifiable cut.
--
-- * audit.legal_holds: a hold on one patient's entries (subject) or on a
--   range of time; while one is in force, no partition it covers is
--   archived. Placed and released by the operator (`phi-gateway audit
--   hold`), never deleted: a release is recorded on the hold.
-- * audit.archives: one row per archiving run. The archive is the chain's
--   positions (first_pos, last_pos], written to a file as a signed export
--   (`audit verify-export` checks it offline); last_hash is the chain's hash
--   at last_pos, signed as a checkpoint (checkpoint_id) that the live chain's
--   verification starts from. Every entry dated before `before` is in an
--   archive, not in the log.
-- * audit.archive_cut: the one way partitions leave the log. It checks,
--   inside the database whatever the caller's settings say, that each
--   partition ends at least six years ago (and at least p_min_age ago),
--   that no legal hold in force covers it, that every entry in it is chained
--   at or before p_last_pos, that the chain's hash there is the one signed,
--   and that the archive starts where the previous one ended; then records
--   the archive and drops the partitions, in one transaction.
SET LOCAL ROLE phi_owner;

CREATE TABLE audit.legal_holds (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject      text,
  from_at      timestamptz,
  to_at        timestamptz,
  reason       text NOT NULL CHECK (btrim(reason) <> ''),
  placed_by    text NOT NULL,
  placed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  released_by  text,
  released_at  timestamptz,
  CONSTRAINT legal_holds_say_what CHECK (subject IS NOT NULL OR from_at IS NOT NULL OR to_at IS NOT NULL),
  CONSTRAINT legal_holds_range CHECK (from_at IS NULL OR to_at IS NULL OR from_at < to_at),
  CONSTRAINT legal_holds_release CHECK ((released_by IS NULL) = (released_at IS NULL))
);

-- A hold is never deleted, and only its release may be written, once.
CREATE FUNCTION audit.hold_released_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' OR OLD.released_at IS NOT NULL
     OR (NEW.id, NEW.subject, NEW.from_at, NEW.to_at, NEW.reason, NEW.placed_by, NEW.placed_at)
        IS DISTINCT FROM (OLD.id, OLD.subject, OLD.from_at, OLD.to_at, OLD.reason, OLD.placed_by, OLD.placed_at)
  THEN
    RAISE EXCEPTION 'a legal hold is only ever released, once (% on %)', TG_OP, TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER released_only BEFORE UPDATE OR DELETE ON audit.legal_holds
  FOR EACH ROW EXECUTE FUNCTION audit.hold_released_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.legal_holds
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

CREATE TABLE audit.archives (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  first_pos      bigint NOT NULL,
  last_pos       bigint NOT NULL,
  last_hash      bytea NOT NULL,
  checkpoint_id  bigint NOT NULL,
  before         timestamptz NOT NULL,
  partitions     text[] NOT NULL,
  rows           bigint NOT NULL,
  file           text NOT NULL,
  file_sha256    text NOT NULL,
  archived_by    text NOT NULL,
  archived_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK (0 < first_pos AND first_pos <= last_pos)
);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.archives
  FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.archives
  FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- The monthly partitions, oldest first, with their bounds (read from the
-- names ensure_partitions gives them).
CREATE FUNCTION audit.monthly_partitions()
  RETURNS TABLE (name text, from_at timestamptz, to_at timestamptz)
  LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.relname::text, m, m + interval '1 month'
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
       LATERAL (SELECT to_date(substr(c.relname, 5), 'YYYY_MM')::timestamptz AS m) b
  WHERE i.inhparent = 'audit.log'::regclass AND c.relname ~ '^log_[0-9]{4}_[0-9]{2}$'
  ORDER BY m $$;

-- The first hold in force that covers partition [p_from, p_to), if any.
CREATE FUNCTION audit.hold_on(p_part text, p_from timestamptz, p_to timestamptz) RETURNS bigint
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h record;
  found boolean;
BEGIN
  FOR h IN SELECT * FROM audit.legal_holds WHERE released_at IS NULL ORDER BY id LOOP
    IF (h.from_at IS NULL OR h.from_at < p_to) AND (h.to_at IS NULL OR h.to_at > p_from) THEN
      IF h.subject IS NULL THEN
        RETURN h.id;
      END IF;
      EXECUTE format('SELECT EXISTS (SELECT 1 FROM audit.%I WHERE subject = $1
                        AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3))',
                     p_part)
        INTO found USING h.subject, h.from_at, h.to_at;
      IF found THEN
        RETURN h.id;
      END IF;
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

CREATE FUNCTION audit.archive_cut(p_partitions text[], p_min_age interval, p_last_pos bigint,
                                  p_checkpoint_id bigint, p_file text, p_file_sha256 text,
                                  p_rows bigint, p_by text) RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  prev_last bigint;
  cp record;
  part record;
  hold bigint;
  late bigint;
  chain_hash bytea;
  before_at timestamptz;
  new_id bigint;
  expected text[];
BEGIN
  IF p_min_age < interval '6 years' THEN
    RAISE EXCEPTION 'audit.archive_cut: the retention (%) is below six years', p_min_age
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF cardinality(p_partitions) IS NULL OR cardinality(p_partitions) = 0 THEN
    RAISE EXCEPTION 'audit.archive_cut: no partition named' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- One archiver at a time.
  PERFORM pg_advisory_xact_lock(7068695061726368);
  SELECT coalesce(max(a.last_pos), 0) INTO prev_last FROM audit.archives a;
  -- The oldest partitions, with none left out before them.
  SELECT array_agg(m.name ORDER BY m.from_at) INTO expected
  FROM (SELECT * FROM audit.monthly_partitions() LIMIT cardinality(p_partitions)) m;
  IF expected IS DISTINCT FROM p_partitions THEN
    RAISE EXCEPTION 'audit.archive_cut: % are not the oldest partitions (%)', p_partitions, expected
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR part IN SELECT * FROM audit.monthly_partitions() m WHERE m.name = ANY (p_partitions) LOOP
    IF part.to_at > now() - p_min_age THEN
      RAISE EXCEPTION 'audit.archive_cut: % ends on %, within the retention of %', part.name, part.to_at, p_min_age
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    hold := audit.hold_on(part.name, part.from_at, part.to_at);
    IF hold IS NOT NULL THEN
      RAISE EXCEPTION 'audit.archive_cut: legal hold % covers %', hold, part.name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('SELECT count(*) FROM audit.%I l WHERE NOT EXISTS (SELECT 1 FROM audit.chain c
                      WHERE c.seq = l.seq AND c.txid = l.txid AND c.pos > $1 AND c.pos <= $2)', part.name)
      INTO late USING prev_last, p_last_pos;
    IF late > 0 THEN
      RAISE EXCEPTION 'audit.archive_cut: % entries of % are not chained in (%, %]', late, part.name, prev_last, p_last_pos
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    before_at := part.to_at;
  END LOOP;
  SELECT * INTO cp FROM audit.checkpoints k WHERE k.id = p_checkpoint_id;
  SELECT c.hash INTO chain_hash FROM audit.chain c WHERE c.pos = p_last_pos;
  IF cp.pos IS DISTINCT FROM p_last_pos OR chain_hash IS NULL OR cp.hash IS DISTINCT FROM chain_hash THEN
    RAISE EXCEPTION 'audit.archive_cut: checkpoint % is not the chain''s head at %', p_checkpoint_id, p_last_pos
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO audit.archives (first_pos, last_pos, last_hash, checkpoint_id, before, partitions, rows,
                              file, file_sha256, archived_by)
  VALUES (prev_last + 1, p_last_pos, chain_hash, p_checkpoint_id, before_at, p_partitions, p_rows,
          p_file, p_file_sha256, p_by)
  RETURNING archives.id INTO new_id;
  FOR part IN SELECT unnest(p_partitions) AS name LOOP
    EXECUTE format('ALTER TABLE audit.log DETACH PARTITION audit.%I', part.name);
    EXECUTE format('DROP TABLE audit.%I', part.name);
  END LOOP;
  RETURN new_id;
END $$;

-- Where a patient's report and the accounting stop: entries dated before
-- this are archived (NULL: nothing is).
CREATE FUNCTION audit.archived_before() RETURNS timestamptz
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT max(before) FROM audit.archives $$;

REVOKE ALL ON FUNCTION audit.archive_cut(text[], interval, bigint, bigint, text, text, bigint, text),
  audit.hold_on(text, timestamptz, timestamptz), audit.monthly_partitions() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.archived_before() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.archived_before() TO phi_app, phi_sealer, phi_auditor;
GRANT SELECT ON audit.archives TO phi_app, phi_sealer, phi_auditor;
GRANT SELECT ON audit.legal_holds TO phi_sealer, phi_auditor;

RESET ROLE;
