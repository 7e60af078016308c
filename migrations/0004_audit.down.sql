-- Reverts 0004. Destroys the audit log: export it first.
DROP SCHEMA IF EXISTS audit CASCADE;
