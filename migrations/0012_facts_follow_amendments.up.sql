-- A patient's amendment of their symptoms, date of birth or region moves
-- the submission's de-identified facts (store::facts::replace upserts
-- them). 0008 granted phi_app INSERT and DELETE on submission_facts but
-- not UPDATE, so every such amendment failed with a 500 (issue 20). The
-- service may already delete and re-insert any facts row, so this widens
-- nothing it could not do before; it still reads back only `ref`.
SET LOCAL ROLE phi_owner;
GRANT UPDATE (region, age_band, categories) ON submission_facts TO phi_app;
RESET ROLE;
