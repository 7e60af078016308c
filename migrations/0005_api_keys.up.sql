-- Service API keys for machine callers (`Authorization: <collection> API-Key <key>`).
-- Keys are stored only as keyed hashes (HMAC under a key derived from the
-- keyring's index key, with its version in the first four bytes). phi_app
-- cannot read the table: it may only ask `api_key_lookup` about hashes.

SET LOCAL ROLE phi_owner;

CREATE TABLE api_keys (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  role        text NOT NULL CHECK (role IN ('service', 'auditor')),
  key_hash    bytea NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_owner ON api_keys FOR ALL TO phi_owner USING (true) WITH CHECK (true);

CREATE FUNCTION api_key_lookup(hashes bytea[])
  RETURNS TABLE (id uuid, name text, role text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT k.id, k.name, k.role FROM public.api_keys k
  WHERE k.key_hash = ANY (hashes) AND k.revoked_at IS NULL
    AND (k.expires_at IS NULL OR k.expires_at > now())
$$;
GRANT EXECUTE ON FUNCTION api_key_lookup(bytea[]) TO phi_app;

RESET ROLE;
