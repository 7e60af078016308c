-- Reverts 0017. Refused while an archive or a legal hold exists: the
-- archives are where the live chain's verification starts, and a hold is a
-- legal obligation; neither is dropped by a migration.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM audit.archives) OR EXISTS (SELECT 1 FROM audit.legal_holds) THEN
    RAISE EXCEPTION 'reverting 0017: audit archives or legal holds exist, and would be lost';
  END IF;
END $$;
SET LOCAL ROLE phi_owner;
DROP FUNCTION audit.archived_before();
DROP FUNCTION audit.archive_cut(text[], interval, bigint, bigint, text, text, bigint, text);
DROP FUNCTION audit.hold_on(text, timestamptz, timestamptz);
DROP FUNCTION audit.monthly_partitions();
DROP TABLE audit.archives;
DROP TABLE audit.legal_holds;
DROP FUNCTION audit.hold_released_only();
RESET ROLE;
