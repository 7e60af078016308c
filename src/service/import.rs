//! What an import writes, through the collections' own paths (the same
//! validation before, the same sealing, insert, policies and audit
//! triggers), as `operator:import` with the run's id as the request id:
//! a batch of records in one transaction with the rows that say where each
//! came from and how far the run has got, so a record is written once and
//! a stopped run goes on where it stopped. And an import undone.

use serde_json::Value;
use uuid::Uuid;

use super::Services;
use crate::domain::herb::NewHerb;
use crate::domain::practitioner::NewPractitioner;
use crate::domain::submission::NewSubmission;
use crate::error::ApiError;
use crate::identity::{Principal, PurposeOfUse, Role};
use crate::query::ItemQuery;
use crate::store::imports::{self, RunRow};

/// A record of one collection, validated as the API validates a create.
pub enum Record {
    Submission { owner: String, input: NewSubmission },
    Practitioner(NewPractitioner),
    Herb(NewHerb),
}

/// Who writes an import: `operator:import`, an admin (practitioners and
/// herbs), for healthcare operations, the run's id as the request id.
pub fn principal(run: Uuid) -> Principal {
    let mut p = Principal::operator("import", &[Role::Admin]);
    p.request_id = Some(run.to_string());
    p.purpose_of_use = Some(PurposeOfUse::Operations);
    p
}

/// A run: new, or the newest one of this mapping and source not finished.
pub async fn open_run(
    svc: &Services,
    run_if_new: Uuid,
    mapping_sha256: &str,
    source: &str,
) -> Result<(RunRow, bool), ApiError> {
    let who = principal(run_if_new);
    let mut tx = svc.pool.begin(&who).await?;
    if let Some(r) = imports::unfinished(&mut tx, mapping_sha256, source).await? {
        tx.commit().await?;
        return Ok((r, true));
    }
    imports::start(&mut tx, run_if_new, mapping_sha256, source).await?;
    let r = imports::get(&mut tx, run_if_new)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok((r, false))
}

pub async fn get_run(svc: &Services, run: Uuid) -> Result<Option<RunRow>, ApiError> {
    let mut tx = svc.pool.begin(&principal(run)).await?;
    let r = imports::get(&mut tx, run).await?;
    tx.commit().await?;
    Ok(r)
}

/// Saves the run's progress, counts and state on their own.
pub async fn save_run(
    svc: &Services,
    run: Uuid,
    progress: &Value,
    counts: &Value,
    state: &str,
) -> Result<(), ApiError> {
    let mut tx = svc.pool.begin(&principal(run)).await?;
    imports::save(&mut tx, run, progress, counts, state).await?;
    tx.commit().await?;
    Ok(())
}

/// Which of these source keys of `source_table` were imported already.
pub async fn present(
    svc: &Services,
    run: Uuid,
    source_table: &str,
    keys: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut tx = svc.pool.begin(&principal(run)).await?;
    let found = imports::present(&mut tx, source_table, keys).await?;
    tx.commit().await?;
    Ok(found)
}

/// A batch refused: the record at `at` (None: the batch as a whole).
#[derive(Debug)]
pub struct Refused {
    pub at: Option<usize>,
    pub error: ApiError,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self { at: None, error }
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Self::from(ApiError::from(e))
    }
}

/// Writes a batch of records of `source_table` in one transaction, with
/// their import rows and the run's progress and counts: all or none.
/// Submissions go in one statement; should it fail, the batch is written
/// again a record at a time, which names the record refused.
#[allow(clippy::too_many_arguments)]
pub async fn write_batch(
    svc: &Services,
    run: Uuid,
    source_table: &str,
    collection: &str,
    records: Vec<(String, Record)>,
    progress: &Value,
    counts: &Value,
) -> Result<Vec<(String, Uuid)>, Refused> {
    if records
        .iter()
        .all(|(_, r)| matches!(r, Record::Submission { .. }))
    {
        match write_submissions(
            svc,
            run,
            source_table,
            collection,
            &records,
            progress,
            counts,
        )
        .await
        {
            Ok(written) => return Ok(written),
            // The database is away: the record-at-a-time path would fail too.
            Err(e @ ApiError::Unavailable { .. }) => return Err(e.into()),
            Err(_) => {}
        }
    }
    write_records(
        svc,
        run,
        source_table,
        collection,
        records,
        progress,
        counts,
    )
    .await
}

/// A batch of submissions in one INSERT (`submissions::insert_many_in`).
#[allow(clippy::too_many_arguments)]
async fn write_submissions(
    svc: &Services,
    run: Uuid,
    source_table: &str,
    collection: &str,
    records: &[(String, Record)],
    progress: &Value,
    counts: &Value,
) -> Result<Vec<(String, Uuid)>, ApiError> {
    let who = principal(run);
    let c = super::Crypt::new(svc);
    let mut rows = Vec::with_capacity(records.len());
    for (_, record) in records {
        let Record::Submission { owner, input } = record else {
            return Err(ApiError::bug("a batch of submissions holds another record"));
        };
        rows.push(super::submissions::new_row(&c, owner.clone(), input)?);
    }
    let mut tx = svc.begin_phi(&who).await?;
    let ids = super::submissions::insert_many_in(&mut tx, rows).await?;
    let written: Vec<(String, Uuid)> = records.iter().map(|(k, _)| k.clone()).zip(ids).collect();
    if written.len() != records.len() {
        return Err(ApiError::bug(
            "a batch insert returned another number of rows",
        ));
    }
    imports::record(&mut tx, run, source_table, collection, &written).await?;
    imports::save(&mut tx, run, progress, counts, "running").await?;
    tx.commit().await?;
    Ok(written)
}

/// A batch a record at a time: the record refused is named.
#[allow(clippy::too_many_arguments)]
async fn write_records(
    svc: &Services,
    run: Uuid,
    source_table: &str,
    collection: &str,
    records: Vec<(String, Record)>,
    progress: &Value,
    counts: &Value,
) -> Result<Vec<(String, Uuid)>, Refused> {
    let who = principal(run);
    let c = super::Crypt::new(svc);
    let mut tx = svc.begin_phi(&who).await?;
    let mut written = Vec::with_capacity(records.len());
    for (i, (key, record)) in records.into_iter().enumerate() {
        let at = |error: ApiError| Refused { at: Some(i), error };
        let id = match record {
            Record::Submission { owner, input } => {
                let new = super::submissions::new_row(&c, owner, &input).map_err(at)?;
                super::submissions::insert_in(&mut tx, new)
                    .await
                    .map_err(at)?
                    .id
            }
            Record::Practitioner(input) => {
                if let Some(link) = &input.user_id {
                    super::practitioners::check_link(svc, &who, Some(link)).map_err(at)?;
                }
                let new = super::practitioners::new_row(&c, input).map_err(at)?;
                super::practitioners::insert_in(&mut tx, new)
                    .await
                    .map_err(at)?
                    .id
            }
            Record::Herb(input) => {
                super::herbs::insert_in(&mut tx, input)
                    .await
                    .map_err(at)?
                    .id
            }
        };
        written.push((key, id));
    }
    imports::record(&mut tx, run, source_table, collection, &written).await?;
    imports::save(&mut tx, run, progress, counts, "running").await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(written)
}

/// A run's records: (source table, source key, collection, id).
pub async fn rows_of(
    svc: &Services,
    run: Uuid,
) -> Result<Vec<(String, String, String, Uuid)>, ApiError> {
    let mut tx = svc.pool.begin(&principal(run)).await?;
    let rows = imports::rows_of(&mut tx, run).await?;
    tx.commit().await?;
    Ok(rows)
}

/// A record as the API shows it, read as `operator:import` with
/// break-glass (every field, the reading on the record as an emergency
/// access with the run's reason): for `--verify`.
pub async fn read_back(
    svc: &Services,
    run: Uuid,
    collection: &str,
    id: Uuid,
) -> Result<Value, ApiError> {
    let mut who = principal(run);
    who.break_glass_reason = Some(format!(
        "import {run}: verifying the import against its source"
    ));
    let q = ItemQuery::default();
    let doc = match collection {
        "symptom-submissions" => {
            serde_json::to_value(super::submissions::get(svc, &who, id, &q).await?.doc)
        }
        "practitioners" => {
            serde_json::to_value(super::practitioners::get(svc, &who, id, &q).await?)
        }
        "herbs" => serde_json::to_value(super::herbs::get(svc, &who, id, &q).await?),
        _ => {
            return Err(ApiError::bug(
                "reading back a record of no collection an import writes",
            ));
        }
    };
    doc.map_err(|e| ApiError::internal("writing a document out", e))
}

/// Undoes a run: refused while any record it wrote has changed since (or,
/// for a submission, is shared by a consent); otherwise each is deleted
/// through its collection's delete (audited, as `operator:import`), and
/// the run is marked undone. Returns how many records were deleted.
pub async fn undo(svc: &Services, run: Uuid) -> Result<u64, ApiError> {
    let who = principal(run);
    let mut tx = svc.pool.begin(&who).await?;
    let r = imports::get(&mut tx, run)
        .await?
        .ok_or(ApiError::NotFound)?;
    if r.state == "undone" {
        return Err(ApiError::Conflict(format!(
            "import {run} is undone already"
        )));
    }
    for table in ["symptom_submissions", "practitioners", "herbs"] {
        let changed = imports::changed_since(&mut tx, run, table).await?;
        if !changed.is_empty() {
            return Err(ApiError::Conflict(format!(
                "import {run} cannot be undone: {} record(s) of {table} changed since (first: {})",
                changed.len(),
                changed[0]
            )));
        }
    }
    let rows = imports::rows_of(&mut tx, run).await?;
    tx.commit().await?;
    let mut deleted = 0;
    for (_, _, collection, id) in &rows {
        let gone = match collection.as_str() {
            "symptom-submissions" => super::submissions::delete(svc, &who, *id).await.map(|_| ()),
            "practitioners" => super::practitioners::delete(svc, &who, *id)
                .await
                .map(|_| ()),
            "herbs" => super::herbs::delete(svc, &who, *id).await.map(|_| ()),
            _ => Ok(()),
        };
        match gone {
            Ok(()) => deleted += 1,
            // Deleted by an undo that stopped half way.
            Err(ApiError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let mut tx = svc.pool.begin(&who).await?;
    imports::forget(&mut tx, run).await?;
    imports::save(&mut tx, run, &r.progress, &r.counts, "undone").await?;
    tx.commit().await?;
    Ok(deleted)
}
