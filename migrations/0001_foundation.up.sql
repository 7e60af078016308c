-- Foundation: extensions, roles and the privilege baseline.
--
-- Roles are cluster-wide, so they are created idempotently (another database
-- in the same cluster may have made them first, even concurrently) and are
-- never given passwords here: deployment sets passwords (deploy/pg.sh locally,
-- deploy/README.md in production).
--
-- Privileges fail closed: nothing is granted by default. Each later migration
-- grants phi_app exactly what its tables need, so a new table is invisible to
-- the service until someone decides otherwise.

CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;

DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('phi_owner', false),      -- owns schema objects; nobody logs in as it
      ('phi_app', true),         -- the service: DML under RLS, owns nothing
      ('phi_analytics', true),   -- read-only, de-identified views only
      ('phi_auditor', true)      -- reads the audit log, nothing else
    ) AS t(name, login)
  LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I', r.name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created concurrently by another database's migration
      END;
    END IF;
    -- Only alter when needed: concurrent ALTER ROLE of one role fails with
    -- "tuple concurrently updated".
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r.name AND (
        rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls
        OR rolcanlogin <> r.login)) THEN
      EXECUTE format(
        'ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS %s',
        r.name, CASE WHEN r.login THEN 'LOGIN' ELSE 'NOLOGIN' END);
    END IF;
  END LOOP;

  -- The analytics role reads; it never writes, even by mistake.
  IF NOT EXISTS (
      SELECT FROM pg_db_role_setting s JOIN pg_roles ro ON ro.oid = s.setrole
      WHERE ro.rolname = 'phi_analytics' AND s.setdatabase = 0
        AND 'default_transaction_read_only=on' = ANY (s.setconfig)) THEN
    ALTER ROLE phi_analytics SET default_transaction_read_only = on;
  END IF;

  -- The database: only our login roles connect; nobody makes temp tables.
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO phi_app, phi_analytics, phi_auditor',
                 current_database());
END
$$;

-- Schema public: phi_owner creates objects in it; phi_app may use it. Nobody
-- else may see into it (phi_analytics gets its own schema in a later migration).
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO phi_owner;
GRANT USAGE ON SCHEMA public TO phi_app;

-- Objects phi_owner creates later grant nothing by default, functions
-- included (PostgreSQL would otherwise let PUBLIC execute them).
ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner REVOKE ALL ON TABLES FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner REVOKE ALL ON SEQUENCES FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE phi_owner REVOKE USAGE ON TYPES FROM PUBLIC;
