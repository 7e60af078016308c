//! `phi-gateway import`: existing records from a source PostgreSQL database
//! (a Payload CMS's own tables, in the clear or `pgp_sym_encrypt`ed under
//! one key as the CMS's guide recommends) into the gateway, through the
//! collections' own paths (`service::import`).
//!
//! Each source table is read in key order, a page at a time, read-only; each
//! row becomes the JSON object the API would receive (`mapping`, built by
//! the source: decrypted there with the old key, never an argument) and is
//! validated exactly as the API validates a create. Valid rows not imported
//! before are written a batch per transaction with the rows recording their
//! source keys and the run's progress; a row a batch refuses (a slug in use)
//! is reported and the rest written again. Invalid rows are reported by
//! source key, field path and message, never a value. The source is never
//! changed.

pub mod mapping;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::json::from_object;
use crate::error::ApiError;
use crate::progress::Progress;
use crate::service::Services;
use crate::service::import::{self as write, Record, Refused};
use mapping::{Mapping, TableMap};

/// The environment variable holding the source's pgcrypto key.
pub const SOURCE_KEY_VAR: &str = "PHI_IMPORT_SOURCE_KEY";

pub struct Options {
    pub source_url: String,
    pub mapping_text: String,
    pub dry_run: bool,
    pub batch: usize,
    pub max_errors: u64,
    pub report: PathBuf,
    pub old_key: Option<SecretString>,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub run: Option<Uuid>,
    pub resumed: bool,
    pub dry_run: bool,
    pub read: u64,
    pub imported: u64,
    pub skipped: u64,
    pub invalid: u64,
}

/// The source URL without its password (for the run's record and messages).
pub fn masked(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let user = auth.map(|a| a.split(':').next().unwrap_or_default());
    // Query parameters may carry a password too: left out.
    let host = host.split('?').next().unwrap_or_default();
    match user {
        Some(u) => format!("{scheme}://{u}@{host}"),
        None => format!("{scheme}://{host}"),
    }
}

fn invalid_line(table: &str, key: &str, errors: &[(String, String)]) -> Value {
    json!({
        "table": table,
        "key": key,
        "errors": errors.iter().map(|(p, m)| json!({"path": p, "message": m})).collect::<Vec<_>>(),
    })
}

/// An error's field paths and messages (never a value: the API's messages
/// name none).
fn field_errors(e: &ApiError) -> Vec<(String, String)> {
    match e {
        ApiError::Validation(errs) => errs
            .iter()
            .map(|f| (f.path.clone(), f.message.clone()))
            .collect(),
        other => vec![("".into(), other.to_string())],
    }
}

/// The record a source row is, as the API would take it.
fn record_of(t: &TableMap, row: &source::SourceRow) -> Result<Record, ApiError> {
    let object = row.fields.clone();
    Ok(match t.collection.as_str() {
        "symptom-submissions" => {
            let owner = row
                .owner
                .as_deref()
                .filter(|o| !o.trim().is_empty())
                .ok_or_else(|| ApiError::invalid("owner", "the source row names no owner"))?;
            let fields: crate::domain::submission::SubmissionFields = from_object(object)?;
            Record::Submission {
                owner: format!("{}:{}", t.owner_collection, owner.trim()),
                input: fields.try_into()?,
            }
        }
        "practitioners" => {
            let fields: crate::domain::practitioner::PractitionerFields = from_object(object)?;
            Record::Practitioner(fields.try_into()?)
        }
        _ => {
            let fields: crate::domain::herb::HerbFields = from_object(object)?;
            Record::Herb(fields.try_into()?)
        }
    })
}

struct Report {
    file: std::fs::File,
}

impl Report {
    fn open(path: &PathBuf) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the report {}", path.display()))?;
        Ok(Self { file })
    }

    fn line(&mut self, v: &Value) -> anyhow::Result<()> {
        writeln!(self.file, "{v}")?;
        Ok(())
    }
}

/// Imports what the mapping names. With `dry_run`, reads and validates
/// everything and writes nothing but the report.
pub async fn run(
    svc: &Services,
    opts: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let mapping = Mapping::parse(&opts.mapping_text)?;
    let mapping_sha =
        crate::audit::chain::hex::encode(&Sha256::digest(opts.mapping_text.as_bytes()));
    if mapping.tables.iter().any(TableMap::has_encrypted) && opts.old_key.is_none() {
        anyhow::bail!(
            "the mapping has encrypted columns: set {SOURCE_KEY_VAR} to the key they were encrypted with \
             (an environment variable, never an argument)"
        );
    }
    let batch = opts.batch.clamp(1, 5000);
    let src = source::connect(&opts.source_url).await?;
    let label = masked(&opts.source_url);
    // Every table's query, and its first rows decrypted, before anything is
    // written: a wrong key or a wrong name stops here.
    let mut sqls = Vec::new();
    for t in &mapping.tables {
        let sql = source::page_sql(&src, t).await?;
        source::page(&src, &sql, None, 100, opts.old_key.as_ref())
            .await
            .with_context(|| format!("checking {}", t.source))?;
        sqls.push(sql);
    }
    let mut report = Report::open(&opts.report)?;
    let mut s = Summary {
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let (run, mut progress_of, mut counts) = if opts.dry_run {
        (Uuid::now_v7(), Map::new(), Map::new())
    } else {
        let (r, resumed) = write::open_run(svc, Uuid::now_v7(), &mapping_sha, &label).await?;
        s.resumed = resumed;
        let p = r.progress.as_object().cloned().unwrap_or_default();
        let c = r.counts.as_object().cloned().unwrap_or_default();
        (r.id, p, c)
    };
    s.run = (!opts.dry_run).then_some(run);
    for k in ["read", "imported", "skipped", "invalid"] {
        let v = counts.get(k).and_then(Value::as_u64).unwrap_or(0);
        match k {
            "read" => s.read = v,
            "imported" => s.imported = v,
            "skipped" => s.skipped = v,
            _ => s.invalid = v,
        }
    }
    let result = async {
        for (t, sql) in mapping.tables.iter().zip(&sqls) {
            t.collection()?;
            let total = source::count(&src, t).await? as u64;
            progress.begin("import", total);
            let mut after: Option<String> = progress_of
                .get(&t.source)
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut done_here = 0u64;
            let mut rows =
                source::page(&src, sql, after.as_deref(), batch as i64, opts.old_key.as_ref()).await?;
            while let Some(last) = rows.last().map(|r| r.key.clone()) {
                // The next page is read (and decrypted, by the source) while
                // this one is validated, sealed and written.
                let next_after = last.clone();
                let next = source::page(&src, sql, Some(&next_after), batch as i64, opts.old_key.as_ref());
                let this = async {
                s.read += rows.len() as u64;
                done_here += rows.len() as u64;
                let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
                let present: HashSet<String> = if opts.dry_run {
                    HashSet::new()
                } else {
                    write::present(svc, run, &t.source, &keys).await?.into_iter().collect()
                };
                let mut records = Vec::new();
                for row in &rows {
                    if present.contains(&row.key) {
                        s.skipped += 1;
                        continue;
                    }
                    match record_of(t, row) {
                        Ok(r) => records.push((row.key.clone(), r)),
                        Err(e) => {
                            s.invalid += 1;
                            report.line(&invalid_line(&t.source, &row.key, &field_errors(&e)))?;
                        }
                    }
                }
                after = Some(last.clone());
                progress_of.insert(t.source.clone(), Value::String(last));
                if !opts.dry_run {
                    // A record a batch refuses is reported and the batch
                    // written again without it.
                    loop {
                        counts = counts_of(&s, records.len() as u64);
                        let keys: Vec<String> = records.iter().map(|(k, _)| k.clone()).collect();
                        let attempt = std::mem::take(&mut records);
                        match write::write_batch(
                            svc,
                            run,
                            &t.source,
                            &t.collection,
                            attempt,
                            &Value::Object(progress_of.clone()),
                            &Value::Object(counts.clone()),
                        )
                        .await
                        {
                            Ok(written) => {
                                s.imported += written.len() as u64;
                                break;
                            }
                            Err(Refused { at: Some(i), error }) => {
                                s.invalid += 1;
                                report.line(&invalid_line(&t.source, &keys[i], &field_errors(&error)))?;
                                // Built again from the source rows: a record
                                // is consumed by the attempt.
                                records = rows
                                    .iter()
                                    .filter(|r| keys.contains(&r.key) && r.key != keys[i])
                                    .filter_map(|r| record_of(t, r).ok().map(|rec| (r.key.clone(), rec)))
                                    .collect();
                            }
                            Err(Refused { at: None, error }) => {
                                anyhow::bail!("writing a batch of {}: {error}", t.source)
                            }
                        }
                    }
                }
                progress.at(done_here);
                if s.invalid > opts.max_errors {
                    anyhow::bail!(
                        "{} invalid rows, more than --max-errors {}: stopped (see {}); fix the source or the mapping \
                         and run again to go on",
                        s.invalid,
                        opts.max_errors,
                        opts.report.display()
                    );
                }
                Ok(())
                };
                let (next, this) = tokio::join!(next, this);
                this?;
                rows = next?;
            }
            progress.end();
        }
        Ok(())
    }
    .await;
    let state = if result.is_ok() {
        "finished"
    } else {
        "stopped"
    };
    if !opts.dry_run {
        write::save_run(
            svc,
            run,
            &Value::Object(progress_of),
            &Value::Object(counts_of(&s, 0)),
            state,
        )
        .await?;
    }
    report.line(&json!({"summary": s, "state": if opts.dry_run { "dry-run" } else { state }}))?;
    result.map(|()| s)
}

/// The counts to save with a batch: as they will be once it is written.
fn counts_of(s: &Summary, pending: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("read".into(), s.read.into());
    m.insert("imported".into(), (s.imported + pending).into());
    m.insert("skipped".into(), s.skipped.into());
    m.insert("invalid".into(), s.invalid.into());
    m
}

/// What `--verify` found.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// Source rows, and of them those imported (by any run).
    pub source_rows: u64,
    pub imported: u64,
    pub matching: u64,
    /// Source keys whose record differs from the source (no values).
    pub differing: Vec<String>,
}

/// Compares every imported row of the source with its record, opened: a
/// digest of the fields the mapping names, on each side. The records are
/// read with break-glass as `operator:import` (on the record).
pub async fn verify(svc: &Services, opts: &Options, run: Uuid) -> anyhow::Result<Verified> {
    let mapping = Mapping::parse(&opts.mapping_text)?;
    let src = source::connect(&opts.source_url).await?;
    let rows = write::rows_of(svc, run).await?;
    let by_key: HashMap<(String, String), (String, Uuid)> = rows
        .into_iter()
        .map(|(t, k, c, id)| ((t, k), (c, id)))
        .collect();
    let mut v = Verified::default();
    for t in &mapping.tables {
        let sql = source::page_sql(&src, t).await?;
        let mut after: Option<String> = None;
        loop {
            let page =
                source::page(&src, &sql, after.as_deref(), 1000, opts.old_key.as_ref()).await?;
            let Some(last) = page.last().map(|r| r.key.clone()) else {
                break;
            };
            for row in &page {
                v.source_rows += 1;
                let Some((collection, id)) = by_key.get(&(t.source.clone(), row.key.clone()))
                else {
                    continue;
                };
                v.imported += 1;
                let doc = write::read_back(svc, run, collection, *id).await?;
                let src_value = Value::Object(row.fields.clone());
                if digest(&src_value, &src_value) == digest(&src_value, &doc) {
                    v.matching += 1;
                } else {
                    v.differing.push(format!("{}:{}", t.source, row.key));
                }
            }
            after = Some(last);
        }
    }
    Ok(v)
}

/// SHA-256 of `v` cut to the shape of `shape` (the source's fields: a
/// record has more, its id and times), strings trimmed, numbers as floats.
fn digest(shape: &Value, v: &Value) -> String {
    fn cut(shape: &Value, v: &Value) -> Value {
        match (shape, v) {
            (Value::Object(s), Value::Object(o)) => Value::Object(
                s.keys()
                    .map(|k| (k.clone(), cut(&s[k], o.get(k).unwrap_or(&Value::Null))))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            // A list of values is a set to the API (tastes, meridians: kept
            // sorted, once each): compared as one.
            (Value::Array(_), Value::Array(a)) if a.iter().all(|v| !v.is_object()) => {
                let mut items: Vec<String> =
                    a.iter().map(|v| cut(&Value::Null, v).to_string()).collect();
                items.sort();
                items.dedup();
                Value::Array(items.into_iter().map(Value::String).collect())
            }
            (Value::Array(s), Value::Array(a)) if s.len() == a.len() => {
                Value::Array(s.iter().zip(a).map(|(s, v)| cut(s, v)).collect())
            }
            (_, Value::String(t)) => Value::String(t.trim().to_string()),
            (_, Value::Number(n)) => json!(n.as_f64()),
            (_, other) => other.clone(),
        }
    }
    crate::audit::chain::hex::encode(&Sha256::digest(cut(shape, v).to_string().as_bytes()))
}

/// Undoes a run (`service::import::undo`).
pub async fn undo(svc: &Services, run: Uuid) -> anyhow::Result<u64> {
    write::undo(svc, run)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_url_is_shown_without_its_password() {
        assert_eq!(
            masked("postgres://cms:s3cret@db.internal:5432/payload?sslmode=require&password=x"),
            "postgres://cms@db.internal:5432/payload"
        );
        assert_eq!(
            masked("postgres://localhost/payload"),
            "postgres://localhost/payload"
        );
    }

    #[test]
    fn a_digest_compares_what_the_source_has() {
        let src = json!({"notes": "a ", "symptoms": [{"name": "Cough", "severity": 2}]});
        let doc = json!({"id": "x", "notes": "a", "symptoms": [{"name": "Cough", "severity": 2.0, "onset": null}]});
        assert_eq!(digest(&src, &src), digest(&src, &doc));
        let other = json!({"notes": "b", "symptoms": [{"name": "Cough", "severity": 2}]});
        assert_ne!(digest(&src, &src), digest(&src, &other));
    }
}
