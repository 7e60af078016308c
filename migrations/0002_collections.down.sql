-- Reverts 0002: drops the collections, their policies and the identity functions.
DROP TABLE IF EXISTS symptom_submissions;
DROP TABLE IF EXISTS herbs;
DROP TABLE IF EXISTS practitioners;
DROP FUNCTION IF EXISTS phi_earth(double precision, double precision);
DROP FUNCTION IF EXISTS app_break_glass();
DROP FUNCTION IF EXISTS app_has_role(text);
DROP FUNCTION IF EXISTS app_user_id();
