-- Reverts 0007: PostgreSQL cannot drop an enum value, so the type is rebuilt
-- without them, which is refused while any entry uses them (an audit log is
-- never silently rewritten).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM audit.log WHERE action::text IN ('LIST', 'AUTH_FAILURE')) THEN
    RAISE EXCEPTION 'audit entries use LIST or AUTH_FAILURE; export the log before reverting';
  END IF;
END $$;
SET LOCAL ROLE phi_owner;
ALTER TYPE audit.action RENAME TO action_0007;
CREATE TYPE audit.action AS ENUM ('CREATE', 'READ', 'UPDATE', 'DELETE', 'EXPORT',
  'ACCESS_DENIED', 'BREAK_GLASS', 'DECRYPT_FAILURE', 'KEY_ROTATION', 'LOGIN');
GRANT USAGE ON TYPE audit.action TO phi_app, phi_auditor;
ALTER TABLE audit.log ALTER COLUMN action TYPE audit.action USING action::text::audit.action;
DROP TYPE audit.action_0007;
RESET ROLE;
