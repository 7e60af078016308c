-- Reverts 0021: a gateway of before it opens a transaction per request.
SET LOCAL ROLE phi_owner;
DROP FUNCTION app_begin(text, text, text, text, text, text, text, text, text, text, text);
RESET ROLE;
