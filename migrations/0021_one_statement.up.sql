-- One statement per request (issue 26).
--
-- A request's transaction used to be BEGIN, the statement that sets the
-- caller's identity (`store::begin`), the work, the audit entry, COMMIT:
-- four or five round trips to PostgreSQL. `app_begin` sets the same
-- identity from inside the request's one statement, which PostgreSQL runs
-- as a transaction of its own (implicit, committed when it ends): a create
-- or a read by id is one round trip.
--
-- The statements that use it (store::submissions::insert_one, get_one)
-- call it in FROM, before any table, and read every table through it:
-- an INSERT .. SELECT .. FROM app_begin(..) AS who(ok), a read through a
-- LATERAL subquery that names `who.ok` (so it runs only once the function
-- has returned, whatever the plan). The settings are transaction-local as
-- before: they end with the statement's own transaction, so a pooled
-- connection never carries one caller's identity into another's request.
--
-- No SET clause (`search_path`): a function with one restores, when it
-- returns, every setting made inside it with set_config(.., true), which
-- would undo its whole point. It is SECURITY INVOKER and names everything
-- it calls with its schema: it gives phi_app nothing it could not do with
-- set_config itself. A logged-out session (0019) is refused here, with the
-- SQLSTATE PH401.
SET LOCAL ROLE phi_owner;

CREATE FUNCTION app_begin(
    p_user_id text, p_roles text, p_break_glass text, p_collection text, p_request_id text,
    p_client_addr text, p_api_key_id text, p_reason text, p_client_request_id text,
    p_purpose text, p_session text)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_catalog.set_config('app.user_id', p_user_id, true),
          pg_catalog.set_config('app.roles', p_roles, true),
          pg_catalog.set_config('app.break_glass', p_break_glass, true),
          pg_catalog.set_config('app.collection', p_collection, true),
          pg_catalog.set_config('app.request_id', p_request_id, true),
          pg_catalog.set_config('app.client_addr', p_client_addr, true),
          pg_catalog.set_config('app.api_key_id', p_api_key_id, true),
          pg_catalog.set_config('app.reason', p_reason, true),
          pg_catalog.set_config('app.client_request_id', p_client_request_id, true),
          pg_catalog.set_config('app.purpose', p_purpose, true);
  IF p_session IS NOT NULL AND public.app_session_ended(p_session) THEN
    RAISE EXCEPTION 'the session was logged out' USING ERRCODE = 'PH401';
  END IF;
  RETURN true;
END $$;
REVOKE EXECUTE ON FUNCTION app_begin(text, text, text, text, text, text, text, text, text, text, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_begin(text, text, text, text, text, text, text, text, text, text, text)
  TO phi_app;

RESET ROLE;
