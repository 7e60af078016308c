-- Reverts 0003.
DROP SCHEMA IF EXISTS analytics CASCADE;
DROP POLICY IF EXISTS analytics_owner_read ON herbs;
DROP POLICY IF EXISTS analytics_owner_read ON practitioners;
DROP POLICY IF EXISTS analytics_owner_read ON symptom_submissions;
DROP POLICY IF EXISTS submissions_shared_read ON symptom_submissions;
DROP TABLE IF EXISTS consents;
