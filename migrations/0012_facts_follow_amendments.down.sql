-- Reverts 0012.
SET LOCAL ROLE phi_owner;
REVOKE UPDATE (region, age_band, categories) ON submission_facts FROM phi_app;
RESET ROLE;
