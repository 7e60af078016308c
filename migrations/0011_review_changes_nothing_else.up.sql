-- A practitioner a submission is shared with may mark it reviewed and
-- change nothing else. 0008's guard compared a list of columns and missed
-- those added with it (the sealed `region`, `region_legacy`, `needs_facts`),
-- so a reviewer could rewrite a patient's region and, through it, the
-- analytics facts. The guard now compares the whole row but the status and
-- the update time, so a column added later is covered without a change here.
-- It also runs on INSERT: 0008's ran on UPDATE only, so a patient could
-- create a submission already marked reviewed.
SET LOCAL ROLE phi_owner;
CREATE OR REPLACE FUNCTION submissions_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF session_user <> 'phi_app' THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'reviewed' THEN
      RAISE EXCEPTION 'only a practitioner the submission is shared with marks it reviewed'
        USING ERRCODE = 'PH403';
    END IF;
    RETURN NEW;
  END IF;
  IF OLD.owner_id = public.app_user_id() THEN
    IF NEW.status = 'reviewed' AND OLD.status IS DISTINCT FROM 'reviewed' THEN
      RAISE EXCEPTION 'only a practitioner the submission is shared with marks it reviewed'
        USING ERRCODE = 'PH403';
    END IF;
    RETURN NEW;
  END IF;
  -- Not the owner: a practitioner it is shared with (the update policy
  -- admits nobody else). They change the status to reviewed, nothing more.
  IF NEW.status <> 'reviewed'
     OR (to_jsonb(NEW) - 'status' - 'updated_at') IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'updated_at') THEN
    RAISE EXCEPTION 'a practitioner may only mark a shared submission reviewed'
      USING ERRCODE = 'PH403';
  END IF;
  RETURN NEW;
END $$;
DROP TRIGGER aa_guard ON symptom_submissions;
CREATE TRIGGER aa_guard BEFORE INSERT OR UPDATE ON symptom_submissions
  FOR EACH ROW EXECUTE FUNCTION submissions_guard();
RESET ROLE;
