//! Symptom submissions (PHI): sealed per field, bound to their row, visible
//! to their owner (and, through row-level security, to whom the owner shares
//! them with, and to an admin on a recorded break-glass reason).
//!
//! Nobody but those learns that a row exists: every other caller gets 404,
//! and every answer that shows anything of a submission, an empty list
//! included, is in the audit log.

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use super::practitioners;
use super::{Crypt, Related, Services, client_error, list_entry, new_id};
use crate::audit::{self, Action, Entry, Outcome};
use crate::crypto::Place;
use crate::domain::Named;
use crate::domain::consent::ConsentScope;
use crate::domain::practitioner::PractitionerDoc;
use crate::domain::region::Region;
use crate::domain::submission::{
    NewSubmission, SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom, age_band, categories,
};
use crate::error::ApiError;
use crate::identity::{Principal, Role};
use crate::page::Page;
use crate::query::{ItemQuery, ListQuery, NoParams, Selection};
use crate::schema::{SUBMISSION_FACTS, SUBMISSIONS};
use crate::store::facts::Facts;
use crate::store::submissions::{self as table, NewRow, Patch, SubmissionRow};
use crate::store::{self, Tx};

const TABLE: &str = "symptom_submissions";

fn place(column: &'static str, id: Uuid) -> Place<'static> {
    Place::new(TABLE, column, id)
}

/// The fields of `row` the caller may not see: for someone else's row
/// read through consents, what their scopes do not grant (all the scoped
/// parts when the database says none does); nothing for the owner, or for
/// an admin's recorded break-glass read (which sees all, on the record).
fn withheld(who: &Principal, row: &SubmissionRow) -> Vec<&'static str> {
    match &row.scope {
        None => vec![],
        Some(_) if who.break_glass() => vec![],
        Some(granted) => {
            let granted: Vec<ConsentScope> = granted
                .iter()
                .filter_map(|s| ConsentScope::parse(s))
                .collect();
            ConsentScope::withheld(&granted)
        }
    }
}

/// Opens what the selection shows (all of it for a write's answer) and the
/// caller's consent grants: a field left out is never decrypted. The
/// derived fields need their sources: `symptomCategories` opens the
/// symptoms, `ageBand` the date of birth, without showing them.
fn to_doc(
    c: &Crypt,
    who: &Principal,
    row: &SubmissionRow,
    sel: &Selection,
) -> Result<SubmissionDoc, ApiError> {
    let withheld = withheld(who, row);
    let narrowed = sel.without(&withheld);
    let sel = &narrowed;
    let id = row.id;
    let symptoms: Vec<Symptom> = if sel.keeps("symptoms") || sel.keeps("symptomCategories") {
        let symptoms_json = c.open(&row.symptoms, place("symptoms", id))?;
        serde_json::from_slice(&symptoms_json).map_err(|_| {
            tracing::error!(table = TABLE, column = "symptoms", row_id = %id, "sealed symptoms are not the expected JSON");
            ApiError::bug("opening symptoms: unexpected shape")
        })?
    } else {
        vec![]
    };
    let opt = |field: &str, column: &'static str, v: Option<&crate::crypto::SealedField>| {
        if sel.keeps(field) {
            c.open_text_opt(v, place(column, id))
        } else {
            Ok(None)
        }
    };
    let dob_needed = sel.keeps("dateOfBirth") || sel.keeps("ageBand");
    let date_of_birth = (if dob_needed {
        c.open_text_opt(row.date_of_birth.as_ref(), place("date_of_birth", id))?
    } else {
        None
    })
        .map(|s| {
            crate::domain::time::date(s.as_str()).ok_or_else(|| {
                tracing::error!(table = TABLE, column = "date_of_birth", row_id = %id, "sealed date is not a date");
                ApiError::bug("opening date_of_birth: not a date")
            })
        })
        .transpose()?;
    let region = opt("region", "region", row.region.as_ref())?
        .map(|s| {
            Region::parse(s.as_str()).ok_or_else(|| {
                tracing::error!(table = TABLE, column = "region", row_id = %id, "sealed region is not a code");
                ApiError::bug("opening region: not a code")
            })
        })
        .transpose()?;
    Ok(SubmissionDoc {
        id,
        owner: row.owner_id.clone(),
        status: SubmissionStatus::from_db(&row.status),
        practitioner_id: row.practitioner_id,
        symptom_categories: categories(&symptoms),
        age_band: date_of_birth.map(|d| age_band(d, Utc::now().date_naive())),
        symptoms,
        notes: opt("notes", "notes", row.notes.as_ref())?,
        contact_email: opt("contactEmail", "contact_email", row.contact_email.as_ref())?,
        date_of_birth,
        region,
        created_at: row.created_at,
        updated_at: row.updated_at,
        withheld,
    })
}

/// Opens rows for a response that only read them. A failure is recorded as
/// DECRYPT_FAILURE on the request's own transaction, which is committed:
/// no second connection is needed, so it is recorded however busy the pool.
async fn open_read(
    c: &Crypt,
    mut tx: Tx,
    who: &Principal,
    rows: &[SubmissionRow],
    sel: &Selection,
) -> Result<(Tx, Vec<SubmissionDoc>), ApiError> {
    let mut docs = Vec::with_capacity(rows.len());
    for row in rows {
        match to_doc(c, who, row, sel) {
            Ok(d) => docs.push(d),
            Err(e) => {
                audit::record(&mut tx, who, &[decrypt_failure(row)]).await?;
                tx.commit().await?;
                return Err(e);
            }
        }
    }
    Ok((tx, docs))
}

/// Opens the row a write returned. On failure the write is rolled back and
/// the failure recorded on the reserved audit pool.
async fn open_written(
    svc: &Services,
    c: &Crypt,
    tx: Tx,
    who: &Principal,
    row: &SubmissionRow,
) -> Result<(Tx, SubmissionDoc), ApiError> {
    match to_doc(c, who, row, &Selection::All) {
        Ok(d) => Ok((tx, d)),
        Err(e) => {
            tx.rollback().await.map_err(store::StoreError::from)?;
            Err(recorded_alone(svc, who, row, e).await)
        }
    }
}

/// The READ entries for documents a caller was shown, each naming the
/// fields the answer showed (what the selection kept and the consent
/// granted) and the patient; an admin's emergency read of someone else's
/// record is also a BREAK_GLASS entry with the reason.
fn read_entries(who: &Principal, docs: &[SubmissionDoc], sel: &Selection) -> Vec<Entry> {
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let fields = sel.without(&d.withheld).shown(SUBMISSIONS.document);
        out.push(
            Entry::new(Action::Read, TABLE, d.id)
                .fields(fields)
                .subject(&d.owner),
        );
        if who.break_glass() && who.user_id.as_deref() != Some(d.owner.as_str()) {
            out.push(
                Entry::new(Action::BreakGlass, TABLE, d.id)
                    .reason(who.break_glass_reason.clone())
                    .subject(&d.owner),
            );
        }
    }
    out
}

/// `read_entries` for a one-statement read, where the database knows the
/// consent scope and the service does not yet: the fields the selection
/// shows, each with the consent parts it needs (`ConsentScope::fields`),
/// comma-joined (`store::submissions::ReadEntry`).
fn read_entry_parts(sel: &Selection) -> (Vec<&'static str>, Vec<String>) {
    let shown = sel.shown(SUBMISSIONS.document);
    let needs = shown
        .iter()
        .map(|f| {
            ConsentScope::ALL
                .iter()
                .filter(|s| s.fields().contains(f))
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    (shown, needs)
}

fn seal_symptoms(
    c: &Crypt,
    symptoms: &[Symptom],
    id: Uuid,
) -> Result<crate::crypto::SealedField, ApiError> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(symptoms).expect("plain data"));
    c.seal(&json, place("symptoms", id))
}

/// A submission's de-identified facts, keyed by the blind index of its id.
fn facts(
    c: &Crypt,
    id: Uuid,
    symptoms: &[Symptom],
    dob: Option<NaiveDate>,
    region: Option<Region>,
) -> Facts {
    let (key, keys) = c.id_refs(SUBMISSION_FACTS.table, "submission", id);
    Facts {
        key,
        keys,
        region: region.map(|r| r.as_str()).unwrap_or("unknown").to_string(),
        age_band: dob
            .map(|d| age_band(d, Utc::now().date_naive()))
            .unwrap_or_else(|| "unknown".into()),
        categories: categories(symptoms),
    }
}

/// A practitioner the caller cannot see is, for them, one that does not
/// exist: no existence oracle for drafts through the foreign key.
async fn check_practitioner(tx: &mut Tx, id: Option<Uuid>) -> Result<(), ApiError> {
    if let Some(p) = id
        && !crate::store::practitioners::visible(tx, p).await?
    {
        return Err(invisible_practitioner());
    }
    Ok(())
}

fn invisible_practitioner() -> ApiError {
    ApiError::invalid("practitionerId", "refers to a record that does not exist")
}

/// Opens the row a one-statement request returned, whose transaction has
/// committed already (with its CREATE or READ entry): a failure (a key
/// missing from this keyring; for a row just written only a bug or a
/// broken keyring makes it) is recorded beside it on the reserved audit
/// pool and answered as the error it is. A write stands, whole.
async fn opened_after_commit(
    svc: &Services,
    c: &Crypt,
    who: &Principal,
    row: &SubmissionRow,
    sel: &Selection,
) -> Result<SubmissionDoc, ApiError> {
    match to_doc(c, who, row, sel) {
        Ok(d) => Ok(d),
        Err(e) => Err(recorded_alone(svc, who, row, e).await),
    }
}

/// The DECRYPT_FAILURE entry of a row that could not be opened.
fn decrypt_failure(row: &SubmissionRow) -> Entry {
    Entry::new(Action::DecryptFailure, TABLE, row.id)
        .outcome(Outcome::Failure)
        .subject(&row.owner_id)
}

/// Records that `row` could not be opened on the reserved audit pool (the
/// request's transaction is gone or rolled back), and gives back why.
async fn recorded_alone(
    svc: &Services,
    who: &Principal,
    row: &SubmissionRow,
    e: ApiError,
) -> ApiError {
    audit::record_alone(&svc.audit_pool, who, decrypt_failure(row)).await;
    e
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    input: NewSubmission,
) -> Result<SubmissionDoc, ApiError> {
    let owner = who.require_user()?.to_string();
    if who.api_key_id.is_some() {
        // A service's key acts for a system, not a patient: whose record
        // would it be, and who could ever read or amend it?
        return Err(ApiError::Forbidden(
            "A service API key cannot own a submission: submit as the patient (their own token)."
                .into(),
        ));
    }
    let c = Crypt::new(svc);
    let (new, facts) = new_row(&c, owner, &input)?;
    svc.check_purpose(who)?;
    if let Some(mut one) = svc.pool.single().await? {
        // One statement, its own transaction: the row, its facts and the
        // CREATE entry (the trigger's), or nothing.
        let Some(row) = table::insert_one(&mut one, who, new, &facts)
            .await
            .map_err(|e| client_error(&SUBMISSIONS, e))?
        else {
            return Err(invisible_practitioner());
        };
        drop(one);
        return opened_after_commit(svc, &c, who, &row, &Selection::All).await;
    }
    let mut tx = svc.begin_phi(who).await?;
    let row = insert_in(&mut tx, (new, facts)).await?;
    let (tx, doc) = open_written(svc, &c, tx, who, &row).await?;
    // The CREATE entry is written by the table's audit trigger, on this
    // transaction.
    tx.commit().await?;
    Ok(doc)
}

/// A new submission of `owner`'s: its row, sealed, and its facts.
pub(crate) fn new_row(
    c: &Crypt,
    owner: String,
    input: &NewSubmission,
) -> Result<(NewRow, crate::store::facts::Facts), ApiError> {
    let id = new_id();
    let email = input.contact_email.as_ref();
    let dob = input.date_of_birth;
    let row = NewRow {
        id,
        owner_id: owner,
        status: input.status.as_str(),
        practitioner_id: input.practitioner_id,
        symptoms: seal_symptoms(c, &input.symptoms, id)?,
        notes: c.seal_text(input.notes.as_ref(), place("notes", id))?,
        contact_email_bidx: email.map(|e| c.blind(TABLE, "contact_email", e.as_str())),
        contact_email: c.seal_text(email, place("contact_email", id))?,
        date_of_birth: c.seal_text(
            dob.map(|d| d.to_string().into()).as_ref(),
            place("date_of_birth", id),
        )?,
        region: c.seal_text(
            input.region.map(|r| r.as_str().into()).as_ref(),
            place("region", id),
        )?,
    };
    let f = facts(c, id, &input.symptoms, dob, input.region);
    Ok((row, f))
}

/// Inserts a new submission (`new_row`) on the caller's transaction: the
/// practitioner it names must be one the caller sees.
pub(crate) async fn insert_in(
    tx: &mut Tx,
    (row, f): (NewRow, crate::store::facts::Facts),
) -> Result<SubmissionRow, ApiError> {
    check_practitioner(tx, row.practitioner_id).await?;
    table::insert(tx, row, &f)
        .await
        .map_err(|e| client_error(&SUBMISSIONS, e))
}

/// Inserts many new submissions (`new_row`) in one statement on the
/// caller's transaction (an import's batch); each practitioner they name
/// must be one the caller sees. An error names no row: the caller redoes
/// the batch row by row (`insert_in`) to find it.
pub(crate) async fn insert_many_in(
    tx: &mut Tx,
    rows: Vec<(NewRow, crate::store::facts::Facts)>,
) -> Result<Vec<Uuid>, ApiError> {
    let mut named: Vec<Uuid> = rows.iter().filter_map(|(r, _)| r.practitioner_id).collect();
    named.sort();
    named.dedup();
    for p in named {
        check_practitioner(tx, Some(p)).await?;
    }
    table::insert_many(tx, rows)
        .await
        .map_err(|e| client_error(&SUBMISSIONS, e))
}

pub async fn get(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    item: &ItemQuery,
) -> Result<Related<SubmissionDoc, PractitionerDoc>, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    svc.check_purpose(who)?;
    // The common read (no relationship to populate, no break-glass entry
    // to add) is one statement with its READ entry.
    let alone = item.depth == 0 || !item.select.keeps("practitionerId");
    if alone
        && !who.break_glass()
        && let Some(mut one) = svc.pool.single().await?
    {
        let (shown, needs) = read_entry_parts(&item.select);
        let entry = table::ReadEntry {
            shown: &shown,
            needs: &needs,
        };
        let Some(row) = table::get_one(&mut one, who, id, entry).await? else {
            return Err(ApiError::NotFound);
        };
        drop(one);
        let doc = opened_after_commit(svc, &c, who, &row, &item.select).await?;
        return Ok(Related::alone(doc));
    }
    let mut tx = svc.begin_phi(who).await?;
    let Some(row) = table::get(&mut tx, id).await? else {
        return Err(ApiError::NotFound);
    };
    let (mut tx, docs) = open_read(&c, tx, who, std::slice::from_ref(&row), &item.select).await?;
    let mut entries = read_entries(who, &docs, &item.select);
    let mut out = populate(
        &mut tx,
        &c,
        who,
        docs,
        item.depth,
        &item.select,
        &mut entries,
    )
    .await?;
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(out.remove(0))
}

/// `depth >= 1`: each document with the practitioner it names, read under
/// the caller's rights on the same transaction (one they may not see stays
/// an id, as Payload leaves an unreadable relationship).
async fn populate(
    tx: &mut Tx,
    c: &Crypt,
    who: &Principal,
    docs: Vec<SubmissionDoc>,
    depth: u8,
    sel: &Selection,
    entries: &mut Vec<Entry>,
) -> Result<Vec<Related<SubmissionDoc, PractitionerDoc>>, ApiError> {
    if depth == 0 || !sel.keeps("practitionerId") {
        return Ok(docs.into_iter().map(Related::alone).collect());
    }
    let named: Vec<Option<Uuid>> = docs.iter().map(|d| d.practitioner_id).collect();
    let (found, more) = practitioners::related(tx, c, who, &named).await?;
    entries.extend(more);
    Ok(docs
        .into_iter()
        .zip(found)
        .map(|(doc, related)| Related { doc, related })
        .collect())
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
) -> Result<Page<Related<SubmissionDoc, PractitionerDoc>>, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    if let Some(f) = q.filter.as_mut() {
        f.resolve_blind(&|t, col, v| c.blind_candidates(t, col, v));
    }
    let owners = if who.break_glass() {
        table::Owners::Anyone
    } else if who.has(Role::Practitioner) {
        table::Owners::OwnAndConsenting
    } else {
        table::Owners::Own
    };
    let mut tx = svc.begin_phi(who).await?;
    let found = table::list(&mut tx, &q, owners).await?;
    let (mut tx, docs) = open_read(&c, tx, who, &found.rows, &q.select).await?;
    let mut entries = vec![list_entry(TABLE, &q, docs.len(), found.total)];
    if who.break_glass() {
        let mut bg = list_entry(TABLE, &q, docs.len(), found.total);
        bg.action = Action::BreakGlass;
        entries.push(bg.reason(who.break_glass_reason.clone()));
    }
    entries.extend(read_entries(who, &docs, &q.select));
    let docs = populate(&mut tx, &c, who, docs, q.depth, &q.select, &mut entries).await?;
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(Page::new(docs, found.total, found.capped, &q))
}

/// The sealed changes of a PATCH to row `id` (sealing binds to the row).
/// Destructured whole: a new field does not build until it is sealed (or
/// passed) here.
fn patch_for(c: &Crypt, id: Uuid, f: &SubmissionFields) -> Result<Patch, ApiError> {
    let SubmissionFields {
        symptoms,
        notes,
        contact_email,
        date_of_birth,
        region,
        status,
        practitioner_id,
    } = f;
    Ok(Patch {
        symptoms: symptoms
            .as_ref()
            .map(|s| seal_symptoms(c, s, id))
            .transpose()?,
        notes: notes
            .as_ref()
            .map(|n| c.seal_text(n.as_ref(), place("notes", id)))
            .transpose()?,
        contact_email: contact_email
            .as_ref()
            .map(|email| -> Result<_, ApiError> {
                Ok((
                    c.seal_text(email.as_ref(), place("contact_email", id))?,
                    email
                        .as_ref()
                        .map(|e| c.blind(TABLE, "contact_email", e.as_str())),
                ))
            })
            .transpose()?,
        date_of_birth: date_of_birth
            .map(|dob| {
                c.seal_text(
                    dob.map(|d| d.to_string().into()).as_ref(),
                    place("date_of_birth", id),
                )
            })
            .transpose()?,
        region: region
            .map(|r| c.seal_text(r.map(|r| r.as_str().into()).as_ref(), place("region", id)))
            .transpose()?,
        status: status.map(SubmissionStatus::as_str),
        practitioner_id: *practitioner_id,
    })
}

/// Whose submissions a bulk write may reach: a write never goes through
/// break-glass (which reads only).
fn writable(who: &Principal) -> table::Owners {
    if who.has(Role::Practitioner) {
        table::Owners::OwnAndConsenting
    } else {
        table::Owners::Own
    }
}

/// The submissions a bulk request's `where` matches, at most
/// [`super::BULK_MAX`], in the request's transaction.
async fn bulk_rows(
    c: &Crypt,
    tx: &mut Tx,
    who: &Principal,
    q: &mut ListQuery,
) -> Result<Vec<SubmissionRow>, ApiError> {
    if let Some(f) = q.filter.as_mut() {
        f.resolve_blind(&|t, col, v| c.blind_candidates(t, col, v));
    }
    let found = table::list(tx, q, writable(who)).await?;
    super::bulk_size(found.rows.len())?;
    Ok(found.rows)
}

/// `PATCH /api/symptom-submissions?where=..`: every matching submission
/// changed in one transaction, or none (the first refusal rolls back all).
pub async fn update_many(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
    f: SubmissionFields,
) -> Result<Vec<SubmissionDoc>, ApiError> {
    who.require_user()?;
    if f.named().is_empty() {
        return Err(ApiError::bad_request("The body names no field to change."));
    }
    let c = Crypt::new(svc);
    let mut tx = svc.begin_phi(who).await?;
    check_practitioner(&mut tx, f.practitioner_id.flatten()).await?;
    let rows = bulk_rows(&c, &mut tx, who, &mut q).await?;
    let mut docs = Vec::with_capacity(rows.len());
    for row in &rows {
        let patch = patch_for(&c, row.id, &f)?;
        let updated = table::update(&mut tx, row.id, patch)
            .await
            .map_err(|e| client_error(&SUBMISSIONS, e))?;
        let Some(row) = updated else {
            return Err(ApiError::NotFound);
        };
        let (next, doc) = open_written(svc, &c, tx, who, &row).await?;
        tx = next;
        if f.touches_facts() {
            let facts = facts(&c, row.id, &doc.symptoms, doc.date_of_birth, doc.region);
            crate::store::facts::replace(&mut tx, doc.created_at, &facts).await?;
        }
        docs.push(doc);
    }
    let mut entries = vec![list_entry(TABLE, &q, docs.len(), docs.len() as i64)];
    entries.extend(read_entries(who, &docs, &Selection::All));
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs)
}

/// Why a delete found nothing: a submission the caller may read (one shared
/// with them) but not delete is 403; one they cannot see stays 404, as if
/// it did not exist. Break-glass reads, never writes: 404 as before.
async fn not_deletable(tx: &mut Tx, who: &Principal, id: Uuid) -> Result<ApiError, ApiError> {
    if who.break_glass() {
        return Ok(ApiError::NotFound);
    }
    Ok(match table::get(tx, id).await? {
        Some(_) => ApiError::forbidden(),
        None => ApiError::NotFound,
    })
}

/// `DELETE /api/symptom-submissions?where=..`: all matching, or none.
pub async fn delete_many(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
) -> Result<Vec<SubmissionDoc>, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    let mut tx = svc.begin_phi(who).await?;
    let rows = bulk_rows(&c, &mut tx, who, &mut q).await?;
    let mut docs = Vec::with_capacity(rows.len());
    for row in &rows {
        let (_, fact_keys) = c.id_refs(SUBMISSION_FACTS.table, "submission", row.id);
        let Some(row) = table::delete(&mut tx, row.id, &fact_keys).await? else {
            return Err(not_deletable(&mut tx, who, row.id).await?);
        };
        let (next, doc) = open_written(svc, &c, tx, who, &row).await?;
        tx = next;
        docs.push(doc);
    }
    // The DELETE entries are the table trigger's; the answer shows the
    // documents (a read of each), and the filter found them.
    let mut entries = vec![list_entry(TABLE, &q, docs.len(), docs.len() as i64)];
    entries.extend(read_entries(who, &docs, &Selection::All));
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs)
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    f: SubmissionFields,
) -> Result<SubmissionDoc, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    let named = f.named();
    if named.is_empty() {
        // Nothing to change: the answer is a read, and is audited as one.
        return Ok(get(svc, who, id, &ItemQuery::default()).await?.doc);
    }
    let touches_facts = f.touches_facts();
    let patch = patch_for(&c, id, &f)?;
    let mut tx = svc.begin_phi(who).await?;
    check_practitioner(&mut tx, f.practitioner_id.flatten()).await?;
    let updated = table::update(&mut tx, id, patch)
        .await
        .map_err(|e| client_error(&SUBMISSIONS, e))?;
    // Not theirs, or not there: the same answer.
    let Some(row) = updated else {
        return Err(ApiError::NotFound);
    };
    let (mut tx, doc) = open_written(svc, &c, tx, who, &row).await?;
    if touches_facts {
        let facts = facts(&c, id, &doc.symptoms, doc.date_of_birth, doc.region);
        crate::store::facts::replace(&mut tx, doc.created_at, &facts).await?;
    }
    // The UPDATE entry is written by the table's audit trigger; the
    // response shows the whole document, which is a read.
    audit::record(
        &mut tx,
        who,
        &read_entries(who, std::slice::from_ref(&doc), &Selection::All),
    )
    .await?;
    tx.commit().await?;
    Ok(doc)
}

pub async fn delete(svc: &Services, who: &Principal, id: Uuid) -> Result<SubmissionDoc, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    let (_, fact_keys) = c.id_refs(SUBMISSION_FACTS.table, "submission", id);
    let mut tx = svc.begin_phi(who).await?;
    let Some(row) = table::delete(&mut tx, id, &fact_keys).await? else {
        return Err(not_deletable(&mut tx, who, id).await?);
    };
    let (mut tx, doc) = open_written(svc, &c, tx, who, &row).await?;
    // The DELETE entry is written by the table's audit trigger; the answer
    // shows the document as it was, which is a read.
    audit::record(
        &mut tx,
        who,
        &read_entries(who, std::slice::from_ref(&doc), &Selection::All),
    )
    .await?;
    tx.commit().await?;
    Ok(doc)
}
