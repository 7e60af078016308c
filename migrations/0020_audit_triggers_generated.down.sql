-- Reverts 0020: the generic trigger of 0015/0016 takes over again.
SET LOCAL ROLE phi_owner;
DROP TRIGGER zz_audit_changes ON public.symptom_submissions;
DROP TRIGGER zz_audit_changes ON public.practitioners;
DROP TRIGGER zz_audit_changes ON public.consents;
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR UPDATE OR DELETE ON public.practitioners
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
CREATE TRIGGER zz_audit_changes BEFORE INSERT OR DELETE ON public.consents
  FOR EACH ROW EXECUTE FUNCTION audit.row_changed();
DROP FUNCTION audit.symptom_submissions_changed();
DROP FUNCTION audit.practitioners_changed();
DROP FUNCTION audit.consents_changed();
DROP FUNCTION audit.generate_trigger(text);
RESET ROLE;
