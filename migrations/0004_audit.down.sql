-- Reverts 0004. Destroys the audit log: export it first.
DROP TRIGGER IF EXISTS zz_audit_changes ON public.symptom_submissions;
DROP TRIGGER IF EXISTS zz_audit_changes ON public.practitioners;
DROP SCHEMA IF EXISTS audit CASCADE;
