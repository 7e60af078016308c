-- Reverts 0011: 0008's column-list guard.
SET LOCAL ROLE phi_owner;
CREATE OR REPLACE FUNCTION submissions_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF session_user <> 'phi_app' THEN
    RETURN NEW;
  END IF;
  IF OLD.owner_id = public.app_user_id() THEN
    IF NEW.status = 'reviewed' AND OLD.status IS DISTINCT FROM 'reviewed' THEN
      RAISE EXCEPTION 'only a practitioner the submission is shared with marks it reviewed'
        USING ERRCODE = 'PH403';
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.status <> 'reviewed'
     OR (NEW.owner_id, NEW.practitioner_id, NEW.symptoms, NEW.notes, NEW.contact_email,
         NEW.contact_email_bidx, NEW.date_of_birth, NEW.created_at)
        IS DISTINCT FROM
        (OLD.owner_id, OLD.practitioner_id, OLD.symptoms, OLD.notes, OLD.contact_email,
         OLD.contact_email_bidx, OLD.date_of_birth, OLD.created_at) THEN
    RAISE EXCEPTION 'a practitioner may only mark a shared submission reviewed'
      USING ERRCODE = 'PH403';
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER aa_guard ON symptom_submissions;
CREATE TRIGGER aa_guard BEFORE UPDATE ON symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION submissions_guard();
RESET ROLE;
