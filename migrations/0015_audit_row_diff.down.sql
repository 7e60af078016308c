-- Reverts 0015: the per-table trigger functions of 0009 (left in place by
-- 0015) take over again.
SET LOCAL ROLE phi_owner;
DROP TRIGGER zz_audit_changes ON public.symptom_submissions;
DROP TRIGGER zz_audit_changes ON public.practitioners;
DROP TRIGGER zz_audit_changes ON public.consents;
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION audit.submission_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.practitioners
  FOR EACH ROW EXECUTE FUNCTION audit.practitioner_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR DELETE ON public.consents
  FOR EACH ROW EXECUTE FUNCTION audit.consent_changed();
DROP FUNCTION audit.row_changed();
DROP TABLE audit.fields;
DROP FUNCTION audit.json_text(jsonb);
RESET ROLE;
