-- Reverts 0001 in this database. The roles stay: they are cluster-wide and
-- other databases may use them; drop them by hand (DROP OWNED, DROP ROLE)
-- once no database does.

ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner GRANT USAGE ON TYPES TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
-- Tables and sequences grant PUBLIC nothing by default, so the up step's
-- REVOKEs on them left nothing to undo; granting back the function and type
-- defaults removes the pg_default_acl rows.

REVOKE ALL ON SCHEMA public FROM phi_app, phi_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;

DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM phi_app, phi_analytics, phi_auditor',
                 current_database());
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;

DROP EXTENSION IF EXISTS earthdistance;
DROP EXTENSION IF EXISTS cube;
