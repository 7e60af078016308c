//! SQL for `symptom_submissions`. Sealed columns in, sealed columns out.
//! A submission's de-identified facts are written and removed in the same
//! statement as the submission itself.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::facts::Facts;
use super::filter::order_by;
use super::{Listing, Result, Rows, Tx, Value, bind_identity, list as page, update_returning};
use crate::crypto::SealedField;
use crate::identity::Principal;
use crate::query::ListQuery;
use crate::schema::SUBMISSIONS;

/// `scope`: for a row not the caller's own, the parts of it the consents
/// naming the caller grant (NULL for their own rows; empty when no consent
/// does, as for a break-glass read).
macro_rules! columns {
    () => {
        "id, owner_id, status, practitioner_id, symptoms, notes, contact_email, \
         date_of_birth, region, created_at, updated_at, \
         CASE WHEN owner_id = (SELECT app_user_id()) THEN NULL \
              ELSE coalesce(consent_scope(owner_id, id), '{}') END AS scope"
    };
}
const COLUMNS: &str = columns!();

#[derive(Debug, sqlx::FromRow)]
pub struct SubmissionRow {
    pub id: Uuid,
    pub owner_id: String,
    pub status: String,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: SealedField,
    pub notes: Option<SealedField>,
    pub contact_email: Option<SealedField>,
    pub date_of_birth: Option<SealedField>,
    pub region: Option<SealedField>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What consents grant the caller of someone else's row (`COLUMNS`).
    pub scope: Option<Vec<String>>,
}

pub struct NewRow {
    pub id: Uuid,
    pub owner_id: String,
    pub status: &'static str,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: SealedField,
    pub notes: Option<SealedField>,
    pub contact_email: Option<SealedField>,
    pub contact_email_bidx: Option<Vec<u8>>,
    pub date_of_birth: Option<SealedField>,
    pub region: Option<SealedField>,
}

/// What a PATCH changes: absent leaves a column, `Some(None)` clears it.
#[derive(Default)]
pub struct Patch {
    pub symptoms: Option<SealedField>,
    pub notes: Option<Option<SealedField>>,
    /// The sealed email and its blind index, together.
    pub contact_email: Option<(Option<SealedField>, Option<Vec<u8>>)>,
    pub date_of_birth: Option<Option<SealedField>>,
    pub region: Option<Option<SealedField>>,
    pub status: Option<&'static str>,
    pub practitioner_id: Option<Option<Uuid>>,
}

/// Inserts the submission and its facts in one statement.
pub async fn insert(tx: &mut Tx, s: NewRow, facts: &Facts) -> Result<SubmissionRow> {
    let sql = format!(
        "WITH s AS (INSERT INTO symptom_submissions (id, owner_id, status, practitioner_id, symptoms, \
         notes, contact_email, contact_email_bidx, date_of_birth, region) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}), \
         f AS (INSERT INTO submission_facts (ref, week, region, age_band, categories) \
         SELECT $11, date_trunc('week', s.created_at AT TIME ZONE 'UTC')::date, $12, $13, $14 FROM s) \
         SELECT * FROM s"
    );
    Ok(tx
        .q_as(&sql)
        .bind(s.id)
        .bind(s.owner_id)
        .bind(s.status)
        .bind(s.practitioner_id)
        .bind(s.symptoms)
        .bind(s.notes)
        .bind(s.contact_email)
        .bind(s.contact_email_bidx)
        .bind(s.date_of_birth)
        .bind(s.region)
        .bind(&facts.key)
        .bind(&facts.region)
        .bind(&facts.age_band)
        .bind(&facts.categories)
        .fetch_one(&mut **tx)
        .await?)
}

/// `insert` as the request's one statement (`Db::single`): the identity
/// set first (`IDENTITY_FROM`), the row selected from it, so that every
/// policy, default and trigger sees the caller; the practitioner it names
/// checked in the same statement (`practitioners::visible`'s question).
/// `None`: that practitioner is not one the caller sees, and nothing was
/// written.
pub async fn insert_one(
    tx: &mut Tx,
    who: &Principal,
    s: NewRow,
    facts: &Facts,
) -> Result<Option<SubmissionRow>> {
    const SQL: &str = concat!(
        "WITH s AS (INSERT INTO symptom_submissions (id, owner_id, status, practitioner_id, symptoms, \
         notes, contact_email, contact_email_bidx, date_of_birth, region) \
         SELECT $12, $13, $14, $15, $16, $17, $18, $19, $20, $21 FROM ",
        "app_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS who(ok)",
        " WHERE who.ok AND ($15::uuid IS NULL \
                OR EXISTS (SELECT 1 FROM practitioners p WHERE p.id = $15 AND who.ok)) \
         RETURNING ",
        columns!(),
        "), f AS (INSERT INTO submission_facts (ref, week, region, age_band, categories) \
         SELECT $22, date_trunc('week', s.created_at AT TIME ZONE 'UTC')::date, $23, $24, $25 FROM s) \
         SELECT * FROM s"
    );
    debug_assert!(SQL.contains(super::IDENTITY_FROM));
    let q = bind_identity!(tx.q_as::<SubmissionRow>(SQL), who);
    Ok(q.bind(s.id)
        .bind(s.owner_id)
        .bind(s.status)
        .bind(s.practitioner_id)
        .bind(s.symptoms)
        .bind(s.notes)
        .bind(s.contact_email)
        .bind(s.contact_email_bidx)
        .bind(s.date_of_birth)
        .bind(s.region)
        .bind(&facts.key)
        .bind(&facts.region)
        .bind(&facts.age_band)
        .bind(&facts.categories)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The READ entry of a one-statement read: which fields the answer shows,
/// as the row's consent scope leaves them (`service::submissions::
/// read_entries`, said in SQL). `shown[i]` is shown when the row is the
/// caller's own (`scope` NULL) or the consents grant every part of
/// `needs[i]` (comma-joined; empty when no part is needed).
pub struct ReadEntry<'a> {
    pub shown: &'a [&'static str],
    pub needs: &'a [String],
}

/// `get` as the request's one statement (`Db::single`), with its READ
/// entry: the identity set first (`IDENTITY_FROM`), the row read in a
/// LATERAL subquery that cannot run before it, the entry appended for the
/// row found (`audit.append`, as `store::audit::append` calls it), all in
/// one transaction. `None`: no row the caller may see, and no entry.
pub async fn get_one(
    tx: &mut Tx,
    who: &Principal,
    id: Uuid,
    entry: ReadEntry<'_>,
) -> Result<Option<SubmissionRow>> {
    const SQL: &str = concat!(
        "SELECT x.*, audit.append($13, $14, $15, $16, $17, $18, $19, '{READ}'::audit.action[], \
           '{symptom_submissions}'::text[], ARRAY[x.id::text], '{success}'::text[], '{NULL}'::text[], \
           ARRAY[array_to_string(ARRAY(SELECT f FROM unnest($20::text[], $21::text[]) AS u(f, n) \
                 WHERE x.scope IS NULL OR string_to_array(n, ',') <@ x.scope), ',')], \
           '{NULL}'::text[], ARRAY[x.owner_id]) AS audited \
         FROM ",
        "app_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS who(ok)",
        " CROSS JOIN LATERAL (SELECT ",
        columns!(),
        " FROM symptom_submissions WHERE id = $12 AND who.ok OFFSET 0) x"
    );
    debug_assert!(SQL.contains(super::IDENTITY_FROM));
    let q = bind_identity!(tx.q_as::<SubmissionRow>(SQL), who);
    Ok(q.bind(id)
        .bind(who.user_id.as_deref())
        .bind(who.collection.as_deref())
        .bind(who.roles_csv())
        .bind(who.api_key_id)
        .bind(who.request_id.as_deref())
        .bind(who.client_request_id.as_deref())
        .bind(who.client_addr.as_deref())
        .bind(entry.shown)
        .bind(entry.needs)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Inserts many submissions and their facts in one statement (an import's
/// batch): the rows' columns as arrays, unnested. The same policies,
/// guards and audit trigger apply, row by row, inside the statement.
/// Returns the ids in the order given.
pub async fn insert_many(tx: &mut Tx, rows: Vec<(NewRow, Facts)>) -> Result<Vec<Uuid>> {
    let n = rows.len();
    let mut id = Vec::with_capacity(n);
    let mut owner = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut practitioner = Vec::with_capacity(n);
    let mut symptoms = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    let mut email = Vec::with_capacity(n);
    let mut email_bidx = Vec::with_capacity(n);
    let mut dob = Vec::with_capacity(n);
    let mut region = Vec::with_capacity(n);
    let mut fact_ref = Vec::with_capacity(n);
    let mut fact_region = Vec::with_capacity(n);
    let mut fact_band = Vec::with_capacity(n);
    let mut fact_categories = Vec::with_capacity(n);
    for (r, f) in rows {
        id.push(r.id);
        owner.push(r.owner_id);
        status.push(r.status);
        practitioner.push(r.practitioner_id);
        symptoms.push(r.symptoms);
        notes.push(r.notes);
        email.push(r.contact_email);
        email_bidx.push(r.contact_email_bidx);
        dob.push(r.date_of_birth);
        region.push(r.region);
        fact_ref.push(f.key);
        fact_region.push(f.region);
        fact_band.push(f.age_band);
        // A fixed vocabulary without commas (`domain::submission::CATEGORIES`).
        fact_categories.push(f.categories.join(","));
    }
    let ids: Vec<Uuid> = tx
        .q_scalar(
            "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], \
               $5::bytea[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bytea[], \
               $11::bytea[], $12::text[], $13::text[], $14::text[]) WITH ORDINALITY \
               AS x(id, owner_id, status, practitioner_id, symptoms, notes, contact_email, \
                    contact_email_bidx, date_of_birth, region, ref, f_region, age_band, categories, n)), \
             s AS (INSERT INTO symptom_submissions (id, owner_id, status, practitioner_id, symptoms, \
               notes, contact_email, contact_email_bidx, date_of_birth, region) \
               SELECT id, owner_id, status, practitioner_id, symptoms, notes, contact_email, \
                      contact_email_bidx, date_of_birth, region FROM x ORDER BY n \
               RETURNING id, created_at), \
             f AS (INSERT INTO submission_facts (ref, week, region, age_band, categories) \
               SELECT x.ref, date_trunc('week', s.created_at AT TIME ZONE 'UTC')::date, x.f_region, \
                      x.age_band, CASE WHEN x.categories = '' THEN '{}'::text[] \
                                       ELSE string_to_array(x.categories, ',') END \
               FROM s JOIN x USING (id)) \
             SELECT s.id FROM s JOIN x USING (id) ORDER BY x.n",
        )
        .bind(&id)
        .bind(&owner)
        .bind(&status)
        .bind(&practitioner)
        .bind(&symptoms)
        .bind(&notes)
        .bind(&email)
        .bind(&email_bidx)
        .bind(&dob)
        .bind(&region)
        .bind(&fact_ref)
        .bind(&fact_region)
        .bind(&fact_band)
        .bind(&fact_categories)
        .fetch_all(&mut **tx)
        .await?;
    Ok(ids)
}

pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<SubmissionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM symptom_submissions WHERE id = $1");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}

/// Destructured whole: a new column does not build until it is set here.
pub async fn update(tx: &mut Tx, id: Uuid, p: Patch) -> Result<Option<SubmissionRow>> {
    let Patch {
        symptoms,
        notes,
        contact_email,
        date_of_birth,
        region,
        status,
        practitioner_id,
    } = p;
    let mut sets = Vec::new();
    if let Some(v) = symptoms {
        sets.push(("symptoms", Value::Sealed(Some(v))));
    }
    if let Some(v) = notes {
        sets.push(("notes", Value::Sealed(v)));
    }
    if let Some((sealed, bidx)) = contact_email {
        sets.push(("contact_email_bidx", Value::Bytes(bidx)));
        sets.push(("contact_email", Value::Sealed(sealed)));
    }
    if let Some(v) = date_of_birth {
        sets.push(("date_of_birth", Value::Sealed(v)));
    }
    if let Some(v) = region {
        sets.push(("region", Value::Sealed(v)));
        // A region set through the API replaces any pre-0008 free text.
        sets.push(("region_legacy", Value::Text(None)));
    }
    if let Some(v) = status {
        sets.push(("status", Value::Text(Some(v.into()))));
    }
    if let Some(v) = practitioner_id {
        sets.push(("practitioner_id", Value::Uuid(v)));
    }
    update_returning(tx, "symptom_submissions", COLUMNS, id, sets).await
}

/// Deletes the submission and its facts (`fact_keys`: its blind indexes
/// under every live index key) in one statement.
pub async fn delete(tx: &mut Tx, id: Uuid, fact_keys: &[Vec<u8>]) -> Result<Option<SubmissionRow>> {
    let sql = format!(
        "WITH d AS (DELETE FROM symptom_submissions WHERE id = $1 RETURNING {COLUMNS}), \
         f AS (DELETE FROM submission_facts WHERE ref = ANY($2) AND EXISTS (SELECT 1 FROM d)) \
         SELECT * FROM d"
    );
    Ok(tx
        .q_as(&sql)
        .bind(id)
        .bind(fact_keys)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Whose submissions a list looks among, besides what the policies allow.
/// The read policies are an OR of owner, break-glass and consent, which no
/// index serves, so every list would read the whole table; this condition
/// is a leakproof equality on the owner (the caller's identity as set in
/// the transaction), which the planner may use in the owner index under
/// row-level security. It only narrows: the policies still decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// The caller's own.
    Own,
    /// The caller's own and those of patients with a consent naming them.
    OwnAndConsenting,
    /// Anyone's (break-glass): the policies alone decide.
    Anyone,
}

pub async fn list(tx: &mut Tx, q: &ListQuery, owners: Owners) -> Result<Rows<SubmissionRow>> {
    let scope = move |qb: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>| {
        qb.push(match owners {
            Owners::Own => " AND owner_id = (SELECT app_user_id())",
            Owners::OwnAndConsenting => {
                " AND owner_id = ANY (ARRAY (SELECT app_user_id() UNION \
                 SELECT owner_id FROM consents WHERE practitioner_user = (SELECT app_user_id())))"
            }
            Owners::Anyone => "",
        });
    };
    page(
        tx,
        Listing {
            from: "symptom_submissions",
            select: COLUMNS,
            order: order_by(&q.sort, SUBMISSIONS.default_order),
            extra: &scope,
            knn_within_m: None,
            one_off: false,
        },
        q,
    )
    .await
}
