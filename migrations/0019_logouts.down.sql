-- Reverts 0019 (logged-out sessions are forgotten: their tokens work
-- again until they expire).
SET LOCAL ROLE phi_owner;
DROP FUNCTION app_end_session(text, timestamptz);
DROP FUNCTION app_session_ended(text);
DROP TABLE auth_logouts;
RESET ROLE;
