-- Reverts 0005.
DROP FUNCTION IF EXISTS api_key_lookup(bytea[]);
DROP TABLE IF EXISTS api_keys;
