//! A patient's report of who accessed their records (issue 22): every
//! entry whose subject is the caller (their submissions and consents), by
//! anyone else unless they ask for their own too: when, who (user, roles,
//! the practitioner's name when the user is linked to one), what (the
//! record and the fields), why (the purpose given) and whether it was an
//! emergency (break-glass) access. It reads the log only through
//! `audit.access_report`, which sees the caller's entries and nothing
//! else; the request is itself on the record. And the auditor's
//! accounting of disclosures of one patient's records (45 CFR 164.528),
//! repeated disclosures to one recipient for one purpose summarised.

use chrono::{DateTime, Months, Utc};
use serde::Serialize;

use sha2::{Digest, Sha256};

use super::Services;
use crate::audit::export::{ACCOUNTING_KIND, AccountingManifest, SignedManifest};
use crate::audit::sealer::Sealer;
use crate::audit::{self, Action, Entry};
use crate::error::ApiError;
use crate::identity::Principal;
use crate::schema;

/// How far back a report reaches unless asked: HIPAA's six years
/// (45 CFR 164.528(a)).
pub const DEFAULT_YEARS: u32 = 6;
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub include_own: bool,
    /// The position after which the page starts (`nextAfter` of the last).
    pub after: i64,
    pub limit: u32,
}

/// Who accessed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accessor {
    /// The namespaced user id (`users:7`), or the operator command.
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// The practitioner record linked to that user, when there is one.
    pub practitioner_name: Option<String>,
}

/// One access to one of the caller's records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The entry's position in the log (the page's cursor).
    pub position: i64,
    pub at: DateTime<Utc>,
    pub who: Accessor,
    /// READ, UPDATE, CREATE, DELETE, BREAK_GLASS, ...
    pub action: String,
    /// The collection's slug (`symptom-submissions`, `consents`).
    pub collection: String,
    pub record_id: Option<String>,
    /// The fields shown or changed (names only).
    pub fields: Vec<String>,
    /// The purpose of use the accessor gave (`X-Purpose-Of-Use`).
    pub purpose: Option<String>,
    pub break_glass: bool,
    /// The emergency's stated reason (break-glass only).
    pub reason: Option<String>,
}

/// A page of the report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub docs: Vec<Access>,
    /// Entries dated before this were archived after the retention period
    /// and are not in this answer: the window is covered from this date
    /// on. Absent when the whole window is covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_before: Option<DateTime<Utc>>,
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub next_after: Option<i64>,
}

fn slug(entity_type: &str) -> String {
    schema::ALL
        .iter()
        .find(|c| c.table == entity_type)
        .map(|c| c.slug)
        .unwrap_or(entity_type)
        .to_string()
}

pub async fn my_access_report(
    svc: &Services,
    who: &Principal,
    q: ReportQuery,
) -> Result<AccessReport, ApiError> {
    let me = who.require_user()?.to_string();
    let (from, to) = window(q.from, q.to)?;
    let limit = if q.limit == 0 { DEFAULT_LIMIT } else { q.limit };
    let mut tx = svc.pool.begin(who).await?;
    let mut rows = crate::store::audit::access_report(
        &mut tx,
        from,
        to,
        q.include_own,
        q.after,
        i64::from(limit) + 1,
    )
    .await?;
    let has_next_page = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let archived_before = crate::store::audit::archived_before(&mut tx)
        .await?
        .filter(|b| *b > from);
    audit::record(
        &mut tx,
        who,
        &[Entry::about(Action::Export, "access_report")
            .subject(&me)
            .detail(serde_json::json!({
                "returned": rows.len(),
                "includeOwn": q.include_own,
            }))],
    )
    .await?;
    tx.commit().await?;
    let next_after = rows.last().map(|r| r.seq).filter(|_| has_next_page);
    Ok(AccessReport {
        from,
        to,
        docs: rows
            .into_iter()
            .map(|r| Access {
                position: r.seq,
                at: r.at,
                who: Accessor {
                    user: r.actor_user,
                    roles: roles(r.actor_roles.as_deref()),
                    practitioner_name: r.practitioner_name,
                },
                action: r.action,
                collection: slug(&r.entity_type),
                record_id: r.entity_id,
                fields: r.fields,
                purpose: r.purpose,
                break_glass: r.break_glass,
                reason: r.reason,
            })
            .collect(),
        archived_before,
        has_next_page,
        next_after,
    })
}

/// One CSV record of these cells (each neutralised and quoted as the
/// export's are), with its newline.
fn csv_row(out: &mut String, cells: &[Option<String>]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::audit::export::csv_field(out, c.as_deref());
    }
    out.push('\n');
}

pub const CSV_HEADER: &str = "position,at,user,roles,practitionerName,action,collection,recordId,fields,purpose,breakGlass,reason\n";

/// The page as CSV (fields joined with `;`, roles with `,` inside one
/// quoted cell), each cell neutralised against spreadsheet formulas.
pub fn csv(report: &AccessReport) -> String {
    let mut out = String::from(CSV_HEADER);
    for a in &report.docs {
        let cells = [
            Some(a.position.to_string()),
            Some(a.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            a.who.user.clone(),
            Some(a.who.roles.join(",")),
            a.who.practitioner_name.clone(),
            Some(a.action.clone()),
            Some(a.collection.clone()),
            a.record_id.clone(),
            Some(a.fields.join(";")),
            a.purpose.clone(),
            Some(a.break_glass.to_string()),
            a.reason.clone(),
        ];
        csv_row(&mut out, &cells);
    }
    out
}

/// One recipient's disclosures for one purpose, summarised as 45 CFR
/// 164.528(b)(3) allows: the first and the last, how many, and what they
/// covered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disclosure {
    pub recipient: Accessor,
    pub purpose: Option<String>,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub count: i64,
    /// Every field disclosed, each once.
    pub fields: Vec<String>,
    /// The collections' slugs.
    pub collections: Vec<String>,
    /// Some of them were emergency (break-glass) accesses.
    pub break_glass: bool,
}

/// The accounting of disclosures of one patient's records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accounting {
    pub patient: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Entries dated before this were archived after the retention period
    /// and are not in this answer: the window is covered from this date
    /// on. Absent when the whole window is covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_before: Option<DateTime<Utc>>,
    pub disclosures: Vec<Disclosure>,
}

/// The window of a report or an accounting: `to` now, `from` six years
/// before it, unless given; `from` must come first.
fn window(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to.unwrap_or_else(Utc::now);
    let from = match from {
        Some(f) => f,
        None => to
            .checked_sub_months(Months::new(12 * DEFAULT_YEARS))
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    Ok((from, to))
}

fn roles(csv: Option<&str>) -> Vec<String> {
    csv.unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An accounting as given: the summary (JSON or CSV) or every disclosure
/// (FHIR AuditEvent lines, ending with the signed Provenance when signed),
/// and its signed manifest when this gateway holds the audit signing key.
pub struct SignedAccounting {
    pub body: AccountingBody,
    pub manifest: Option<SignedManifest>,
}

pub enum AccountingBody {
    Json(Accounting),
    Csv(String),
    Fhir(String),
}

/// The accounting of disclosures of `patient`'s records (an auditor's, or
/// an operator's from the command line): every access by anyone else in
/// the window, by recipient and purpose (json, csv), or each disclosure as
/// a FHIR R4 AuditEvent with its chain position and hashes (fhir: sealed
/// entries only; one not in the chain yet waits for the next accounting).
/// With `signer`, the chain's head is sealed and signed first, and the
/// accounting gets a manifest signed like an export's (`audit
/// verify-export` checks it). The request is on the record, about the
/// patient, with the manifest (so it can be fetched by request id).
pub async fn accounting(
    db: &crate::store::Db,
    who: &Principal,
    patient: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    format: AccountingFormat,
    signer: Option<&Sealer>,
) -> Result<SignedAccounting, ApiError> {
    who.require(crate::identity::Role::Auditor)?;
    let (from, to) = window(from, to)?;
    let checkpoint = match signer {
        Some(s) => s
            .checkpoint()
            .await
            .map_err(|e| ApiError::internal("signing the chain's head for an accounting", e))?,
        None => None,
    };
    let (body, rows) = if format == AccountingFormat::Fhir {
        let upto = checkpoint.as_ref().map(|c| c.pos);
        let entries = crate::audit::export::disclosure_entries(&db.pool, patient, from, to, upto)
            .await
            .map_err(crate::store::StoreError::from)?;
        let mut out = String::new();
        for (row, pos, prev, hash) in &entries {
            out.push_str(&crate::audit::export::Format::Fhir.line(row, *pos, prev, hash));
        }
        (AccountingBody::Fhir(out), entries.len())
    } else {
        let mut tx = db.begin(who).await?;
        let rows = crate::store::audit::disclosures(&mut tx, patient, from, to).await?;
        let archived_before = crate::store::audit::archived_before(&mut tx)
            .await?
            .filter(|b| *b > from);
        tx.commit().await?;
        let n = rows.len();
        let a = Accounting {
            patient: patient.to_string(),
            from,
            to,
            archived_before,
            disclosures: rows
                .into_iter()
                .map(|r| Disclosure {
                    recipient: Accessor {
                        user: r.actor_user,
                        roles: roles(r.actor_roles.as_deref()),
                        practitioner_name: r.practitioner_name,
                    },
                    purpose: r.purpose,
                    first: r.first_at,
                    last: r.last_at,
                    count: r.count,
                    fields: r.fields,
                    collections: r.collections.iter().map(|c| slug(c)).collect(),
                    break_glass: r.break_glass,
                })
                .collect(),
        };
        if format == AccountingFormat::Csv {
            (AccountingBody::Csv(disclosures_csv(&a)), n)
        } else {
            (AccountingBody::Json(a), n)
        }
    };
    let manifest = signer.map(|s| {
        let content = match &body {
            AccountingBody::Json(a) => serde_json::to_string(a).expect("plain data"),
            AccountingBody::Csv(t) | AccountingBody::Fhir(t) => t.clone(),
        };
        let m = AccountingManifest {
            kind: ACCOUNTING_KIND.into(),
            patient: patient.to_string(),
            from,
            to,
            format: format.name().into(),
            rows: rows as u64,
            content_sha256: crate::audit::chain::hex::encode(&Sha256::digest(content.as_bytes())),
            checkpoint: checkpoint.clone(),
            made_at: DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now"),
        };
        (SignedManifest::sign_accounting(&m, &s.signing), m.made_at)
    });
    let entry = match &manifest {
        Some((signed, _)) => Entry::new(Action::Export, "disclosures", "manifest")
            .detail(serde_json::to_value(signed).expect("plain data")),
        None => Entry::about(Action::Export, "disclosures")
            .detail(serde_json::json!({"rows": rows, "format": format.name()})),
    };
    let mut tx = db.begin(who).await?;
    audit::record(&mut tx, who, &[entry.subject(patient)]).await?;
    tx.commit().await?;
    let body = match (body, &manifest) {
        (AccountingBody::Fhir(mut lines), Some((signed, at))) => {
            let target = format!("phi-gateway accounting of disclosures of {patient}");
            lines.push_str(
                &(crate::audit::export::provenance_of(signed, *at, target).to_string() + "\n"),
            );
            AccountingBody::Fhir(lines)
        }
        (b, _) => b,
    };
    Ok(SignedAccounting {
        body,
        manifest: manifest.map(|(s, _)| s),
    })
}

/// How an accounting is given: the summary as JSON or CSV, or every
/// disclosure as a FHIR R4 AuditEvent (NDJSON, sealed entries only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountingFormat {
    Json,
    Csv,
    Fhir,
}

impl AccountingFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "fhir" => Some(Self::Fhir),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Fhir => "fhir",
        }
    }
}

pub const DISCLOSURES_CSV_HEADER: &str =
    "recipient,roles,practitionerName,purpose,first,last,count,fields,collections,breakGlass\n";

/// The accounting as CSV.
pub fn disclosures_csv(a: &Accounting) -> String {
    let mut out = String::from(DISCLOSURES_CSV_HEADER);
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for d in &a.disclosures {
        let cells = [
            d.recipient.user.clone(),
            Some(d.recipient.roles.join(",")),
            d.recipient.practitioner_name.clone(),
            d.purpose.clone(),
            Some(time(&d.first)),
            Some(time(&d.last)),
            Some(d.count.to_string()),
            Some(d.fields.join(";")),
            Some(d.collections.join(";")),
            Some(d.break_glass.to_string()),
        ];
        csv_row(&mut out, &cells);
    }
    out
}
