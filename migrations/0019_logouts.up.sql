-- Logged-out Payload sessions. A Payload token stays valid until it
-- expires, wherever it is verified by its signature alone; Payload itself
-- refuses it after a logout (its sessions, `useSessions`), and the
-- gateway's Payload plugin tells the gateway (`POST /api/auth/logout`,
-- with the token being logged out). From then on every request with a
-- token of that session is refused: the check is part of the statement
-- that sets the request's identity (`store::begin`), no round trip of
-- its own.
--
-- A session is keyed `<user>#sid:<Payload's session id>`, or
-- `<user>#sig:<digest of the token>` for a collection without sessions.
-- Kept until the token would have expired anyway, then dropped. phi_app
-- has no right on the table: it asks and tells through the two functions,
-- and may end only its own caller's sessions.

SET LOCAL ROLE phi_owner;

CREATE TABLE auth_logouts (
  session    text PRIMARY KEY,
  user_id    text NOT NULL,
  expires_at timestamptz NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE auth_logouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_logouts FORCE ROW LEVEL SECURITY;
CREATE POLICY auth_logouts_owner ON auth_logouts FOR ALL TO phi_owner USING (true) WITH CHECK (true);

CREATE FUNCTION app_session_ended(p_session text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT EXISTS (SELECT 1 FROM public.auth_logouts WHERE session = p_session)
$$;

-- Ends the calling user's session `p_session` (which must be one of theirs)
-- until `p_expires_at`; drops the sessions whose tokens have expired.
-- Returns false when it was ended already.
CREATE FUNCTION app_end_session(p_session text, p_expires_at timestamptz) RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  me text := nullif(current_setting('app.user_id', true), '');
  n integer;
BEGIN
  IF me IS NULL OR left(p_session, length(me) + 1) <> me || '#' THEN
    RAISE EXCEPTION 'only the caller''s own session can be ended' USING ERRCODE = 'PH403';
  END IF;
  DELETE FROM public.auth_logouts WHERE expires_at < now() - interval '1 hour';
  INSERT INTO public.auth_logouts (session, user_id, expires_at)
  VALUES (p_session, me, p_expires_at)
  ON CONFLICT (session) DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n = 1;
END $$;

GRANT EXECUTE ON FUNCTION app_session_ended(text), app_end_session(text, timestamptz) TO phi_app;

RESET ROLE;
