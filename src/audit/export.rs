//! The compliance export: a contiguous range of the chain as NDJSON, CSV or
//! FHIR R4 (AuditEvent NDJSON), streamed in pages of bounded position
//! ranges (constant memory; each page a nested loop on the log's index, so
//! the cost per page is flat from the first page to the last), ending with a
//! manifest signed with the audit signing key.
//!
//! The manifest names the format, the window, the first and last position
//! and sequence, the row count, the hash of the entry before the first (so
//! the range links into the chain), the hash of the last entry, a SHA-256
//! over every exported line, and the chain's head checkpoint signed at
//! export time. Positions must be contiguous, so a dropped line, a cut
//! tail, or a fabricated window does not verify; `verify_file` checks all of
//! it offline, streaming, with the public key alone.
//!
//! Where the manifest goes, so that every line of each format stays valid:
//! NDJSON ends with one JSON object `{"phiGatewayManifest": ..}`; FHIR ends
//! with a `Provenance` resource whose `signature` signs the manifest (kept in
//! an extension); CSV has none inline (every row is a record): the CLI writes
//! `<file>.manifest.json` beside it, and over HTTP it is fetched afterwards
//! from `/api/audit/exports/{requestId}/manifest`.
//!
//! A window selects entries by their own time (when they were written), and
//! an export is the contiguous range of chain positions from the first of
//! them to the last (so the few entries sealed among them that fall just
//! outside the window come along, and the range checks for gaps). Every
//! entry dated in the window, up to a minute before the export began
//! (`complete_before`: transactions still open then may add entries), is in
//! that range, or the export is refused (`plan`): a signed "from X to Y"
//! never leaves out an entry of X to Y that was not yet sealed.

use std::io::{BufRead, Write};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool, Row};
use tokio::sync::mpsc::Sender;

use super::chain::{self, AuditRow, Checkpoint, JOIN_LOG, VerifyKeys, hex, row_columns};
use super::signing::{SigningKeys, VerifyingKeys};

/// An export's format: NDJSON (default), CSV, or FHIR R4 AuditEvent NDJSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ndjson,
    Csv,
    Fhir,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "fhir" => Some(Format::Fhir),
            _ => None,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Fhir => "application/fhir+ndjson",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Fhir => "fhir",
        }
    }
}

const CSV_HEADER: &str = "seq,at,actor_user,actor_collection,actor_roles,api_key_id,action,entity_type,entity_id,request_id,client_addr,outcome,reason,fields,client_request_id,detail,pos,prev_hash,hash\n";
const CSV_COLUMNS: usize = 19;
/// Positions per page.
const PAGE: i64 = 2000;
const MANIFEST_DOMAIN: &[u8] = b"phi-gateway/audit-export-manifest/v1\n";
pub const MANIFEST_KEY: &str = "phiGatewayManifest";
const PROVENANCE_EXT: &str = "urn:phi-gateway:export-manifest";

/// A cell that a spreadsheet would run as a formula (or that starts with
/// the escape itself) gets a leading `'`; readers strip exactly one.
fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn unneutralise(s: String) -> String {
    match s.strip_prefix('\'') {
        Some(rest) => rest.to_string(),
        None => s,
    }
}

fn csv_field(out: &mut String, v: Option<&str>) {
    match v {
        None => {}
        Some(s) => {
            let s = neutralise(s);
            if s.contains([',', '"', '\n', '\r']) || s.is_empty() {
                out.push('"');
                out.push_str(&s.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(&s);
            }
        }
    }
}

fn csv_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut out = String::with_capacity(256);
    let at = r.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let fields = r.fields.join(";");
    let seq = r.seq.to_string();
    let key = r.api_key_id.map(|u| u.to_string());
    let pos = pos.to_string();
    let (prev, hash) = (hex::encode(prev), hex::encode(hash));
    let cols: [Option<&str>; CSV_COLUMNS] = [
        Some(&seq),
        Some(&at),
        r.actor_user.as_deref(),
        r.actor_collection.as_deref(),
        r.actor_roles.as_deref(),
        key.as_deref(),
        Some(&r.action),
        Some(&r.entity_type),
        r.entity_id.as_deref(),
        r.request_id.as_deref(),
        r.client_addr.as_deref(),
        Some(&r.outcome),
        r.reason.as_deref(),
        Some(&fields),
        r.client_request_id.as_deref(),
        r.detail.as_deref(),
        Some(&pos),
        Some(&prev),
        Some(&hash),
    ];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, *c);
    }
    out.push('\n');
    out
}

#[derive(Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct Identifier<'a> {
    system: String,
    value: &'a str,
}

#[derive(Serialize)]
struct Who<'a> {
    identifier: Identifier<'a>,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Network<'a> {
    address: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Agent<'a> {
    who: Who<'a>,
    requestor: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    role: Vec<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network<'a>>,
}

#[derive(Serialize)]
struct Observer {
    display: &'static str,
}

#[derive(Serialize)]
struct Source<'a> {
    observer: Observer,
    #[serde(rename = "type")]
    kind: [Coding<'a>; 1],
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "valueString")]
    value: &'a str,
}

#[derive(Serialize)]
struct Entity<'a> {
    what: Who<'a>,
    #[serde(rename = "type")]
    kind: Coding<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    detail: Vec<Detail<'a>>,
}

#[derive(Serialize)]
struct Extension {
    url: &'static str,
    #[serde(rename = "valueString")]
    value: String,
}

/// A FHIR R4 AuditEvent, serialized straight from the entry (no
/// intermediate JSON value: this is the export's hot loop).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent<'a> {
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: Coding<'a>,
    subtype: [Coding<'a>; 1],
    action: &'static str,
    recorded: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_desc: Option<&'a str>,
    agent: [Agent<'a>; 1],
    source: Source<'a>,
    entity: [Entity<'a>; 1],
    extension: [Extension; 2],
}

fn audit_event<'a>(r: &'a AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> AuditEvent<'a> {
    // Every action there is has its FHIR name (an exhaustive match); a
    // name this build does not know (none: a test holds the database's
    // list to ours) is exported as an event of its own.
    let fhir = super::Action::parse(&r.action)
        .map(super::Action::fhir)
        .unwrap_or(super::FhirAction {
            action: "E",
            subtype: "unknown",
            restful: false,
        });
    let (action, subtype, restful) = (fhir.action, fhir.subtype, fhir.restful);
    let outcome = match (r.outcome.as_str(), r.action.as_str()) {
        ("success", _) => "0",
        ("denied", _) => "4",
        (_, "DECRYPT_FAILURE") => "12",
        _ => "8",
    };
    AuditEvent {
        resource_type: "AuditEvent",
        id: r.seq.to_string(),
        kind: Coding {
            system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
            code: "rest",
            display: Some("RESTful Operation"),
        },
        subtype: [Coding {
            system: if restful {
                "http://hl7.org/fhir/restful-interaction"
            } else {
                "urn:phi-gateway:audit-action"
            },
            code: subtype,
            display: None,
        }],
        action,
        recorded: r.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        outcome,
        outcome_desc: r.reason.as_deref(),
        agent: [Agent {
            who: Who {
                identifier: Identifier {
                    system: format!(
                        "urn:payload:{}",
                        r.actor_collection.as_deref().unwrap_or("anonymous")
                    ),
                    value: r.actor_user.as_deref().unwrap_or("anonymous"),
                },
            },
            requestor: true,
            role: r
                .actor_roles
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|text| Text { text })
                .collect(),
            network: r
                .client_addr
                .as_deref()
                .map(|address| Network { address, kind: "2" }),
        }],
        source: Source {
            observer: Observer {
                display: "phi-gateway",
            },
            kind: [Coding {
                system: "http://terminology.hl7.org/CodeSystem/security-source-type",
                code: "4",
                display: None,
            }],
        },
        entity: [Entity {
            what: Who {
                identifier: Identifier {
                    system: format!("urn:phi-gateway:{}", r.entity_type),
                    value: r.entity_id.as_deref().unwrap_or("(request)"),
                },
            },
            kind: Coding {
                system: "urn:phi-gateway:entity-type",
                code: &r.entity_type,
                display: None,
            },
            detail: r
                .fields
                .iter()
                .map(|f| Detail {
                    kind: "field",
                    value: f,
                })
                .collect(),
        }],
        // The entry itself rides along so the export verifies offline.
        extension: [
            Extension {
                url: "urn:phi-gateway:audit-entry",
                value: serde_json::to_string(r).expect("plain data"),
            },
            Extension {
                url: "urn:phi-gateway:chain",
                value: format!("{pos}:{}:{}", hex::encode(prev), hex::encode(hash)),
            },
        ],
    }
}

/// A FHIR R4 AuditEvent for one entry, as a JSON value.
pub fn fhir_event(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> Value {
    serde_json::to_value(audit_event(r, pos, prev, hash)).expect("plain data")
}

fn fhir_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut s = serde_json::to_string(&audit_event(r, pos, prev, hash)).expect("plain data");
    s.push('\n');
    s
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NdjsonLine<'a> {
    #[serde(flatten)]
    row: &'a AuditRow,
    pos: i64,
    prev_hash: String,
    hash: String,
}

fn ndjson_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut s = serde_json::to_string(&NdjsonLine {
        row: r,
        pos,
        prev_hash: hex::encode(prev),
        hash: hex::encode(hash),
    })
    .expect("plain data");
    s.push('\n');
    s
}

/// What an export covers, signed as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The window asked for (by the entries' own time), if any.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Every entry dated in the window before this time is in the export
    /// (the earlier of `to` and a minute before the export's checkpoint).
    #[serde(default)]
    pub complete_before: Option<DateTime<Utc>>,
    pub rows: u64,
    pub first_pos: Option<i64>,
    pub last_pos: Option<i64>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The hash of the entry before the first exported one (zeros at the
    /// genesis): where the range links into the chain.
    pub first_prev_hash: Option<String>,
    /// The hash of the last exported entry.
    pub head_hash: Option<String>,
    /// SHA-256 over every exported line (the CSV header included), as
    /// written.
    pub lines_sha256: String,
    /// The chain's head, signed when the export began.
    pub checkpoint: Option<Checkpoint>,
    pub exported_at: DateTime<Utc>,
}

/// A manifest's exact text and its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest as JSON text: the signature covers these bytes.
    #[serde(rename = "phiGatewayManifest")]
    pub manifest: String,
    pub alg: String,
    pub key_id: u32,
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
}

impl SignedManifest {
    pub fn sign(m: &Manifest, keys: &SigningKeys) -> Self {
        let text = serde_json::to_string(m).expect("plain data");
        let mut msg = MANIFEST_DOMAIN.to_vec();
        msg.extend_from_slice(text.as_bytes());
        let (key_id, sig) = keys.sign(&msg);
        Self {
            manifest: text,
            alg: chain::ALG_ED25519.into(),
            key_id,
            signature: sig.to_vec(),
        }
    }

    /// The manifest, if the signature holds (by a key that still signed
    /// when the manifest says it was made).
    pub fn open(&self, keys: &VerifyingKeys) -> anyhow::Result<Manifest> {
        anyhow::ensure!(
            self.alg == chain::ALG_ED25519,
            "manifest signed with {:?}, expected ed25519",
            self.alg
        );
        let m: Manifest = serde_json::from_str(&self.manifest)
            .map_err(|_| anyhow::anyhow!("the manifest is not a manifest"))?;
        let mut msg = MANIFEST_DOMAIN.to_vec();
        msg.extend_from_slice(self.manifest.as_bytes());
        anyhow::ensure!(
            keys.verify(self.key_id, &msg, &self.signature, m.exported_at),
            "the manifest's signature is not valid (altered, signed by another key, or by a key \
             that had stopped signing before the date it bears)"
        );
        if let Some(end) = keys.not_after(self.key_id) {
            anyhow::ensure!(
                m.checkpoint.as_ref().is_none_or(|c| c.at <= end),
                "the manifest's checkpoint is dated after its signing key stopped signing"
            );
        }
        Ok(m)
    }

    /// The final line of an NDJSON export.
    pub fn ndjson_line(&self) -> String {
        serde_json::to_string(self).expect("plain data") + "\n"
    }

    /// The final resource of a FHIR export: a Provenance whose signature
    /// signs the manifest (carried in an extension).
    pub fn provenance(&self, m: &Manifest) -> Value {
        let when = m.exported_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        json!({
            "resourceType": "Provenance",
            "target": [{"display": format!("phi-gateway audit export, chain positions {}..{}",
                m.first_pos.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                m.last_pos.map(|p| p.to_string()).unwrap_or_else(|| "-".into()))}],
            "recorded": when,
            "agent": [{"who": {"display": "phi-gateway"}}],
            "signature": [{
                "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.5", "display": "Verification Signature"}],
                "when": when,
                "who": {"display": format!("phi-gateway audit signing key {}", self.key_id)},
                "sigFormat": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(&self.signature),
            }],
            "extension": [{"url": PROVENANCE_EXT, "valueString": self.manifest}],
        })
    }

    fn from_provenance(v: &Value) -> anyhow::Result<Self> {
        anyhow::ensure!(
            v["resourceType"] == "Provenance",
            "the last line is not a Provenance"
        );
        let manifest = v["extension"]
            .as_array()
            .and_then(|e| e.iter().find(|x| x["url"] == PROVENANCE_EXT))
            .and_then(|x| x["valueString"].as_str())
            .ok_or_else(|| anyhow::anyhow!("the Provenance carries no manifest"))?
            .to_string();
        let sig = &v["signature"][0];
        let data = sig["data"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the Provenance has no signature"))?;
        let key_id = sig["who"]["display"]
            .as_str()
            .and_then(|d| d.rsplit(' ').next())
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("the Provenance does not name its signing key"))?;
        Ok(Self {
            manifest,
            alg: chain::ALG_ED25519.into(),
            key_id,
            signature: base64::engine::general_purpose::STANDARD.decode(data)?,
        })
    }
}

/// What an export of a window covers: the positions (after, last] (None:
/// nothing in it), and up to when every entry of the window is in them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub range: Option<(i64, i64)>,
    pub complete_before: Option<DateTime<Utc>>,
}

/// Why an export cannot be made now.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{0} entries dated in the window are not sealed yet (transactions still open, or the sealer \
         behind): retry in a minute"
    )]
    Unsealed(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The positions an export of [from, to) covers, by the entries' own time,
/// against the chain's head signed for it: from the first entry dated in
/// the window to the last (one pass over the window's entries, which the
/// log's monthly partitions bound; the export reads them anyway). Refused
/// while an entry dated in the window, up to a minute before the
/// checkpoint, is not in the chain up to it (quarantined entries aside:
/// `audit verify` reports those).
pub async fn plan(
    pool: &PgPool,
    checkpoint: Option<&Checkpoint>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Plan, PlanError> {
    let Some(c) = checkpoint else {
        return Ok(Plan {
            range: None,
            complete_before: to,
        });
    };
    let settled = c.at - chrono::Duration::seconds(chain::CLOCK_SKEW_SECS);
    let complete_before = to.map_or(settled, |t| t.min(settled));
    let (first, last, left_out): (Option<i64>, Option<i64>, i64) = sqlx::query_as(
        "SELECT min(c.pos), max(c.pos), \
                count(*) FILTER (WHERE c.pos IS NULL AND q.seq IS NULL AND l.at < $3) \
         FROM audit.log l \
         LEFT JOIN audit.chain c ON c.seq = l.seq AND c.txid = l.txid AND c.pos <= $4 \
         LEFT JOIN audit.quarantine q ON q.seq = l.seq AND q.txid = l.txid \
         WHERE ($1::timestamptz IS NULL OR l.at >= $1) AND ($2::timestamptz IS NULL OR l.at < $2)",
    )
    .bind(from)
    .bind(to)
    .bind(complete_before)
    .bind(c.pos)
    .fetch_one(pool)
    .await?;
    if left_out > 0 {
        return Err(PlanError::Unsealed(left_out));
    }
    Ok(Plan {
        range: first.zip(last).map(|(f, l)| (f - 1, l)),
        complete_before: Some(complete_before),
    })
}

/// Streams an export into `out`, one chunk per page, and returns its
/// signed manifest (also sent as the last chunk, for NDJSON and FHIR).
/// `checkpoint` is the chain's head signed just before (so the export
/// covers everything committed before it).
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    pool: &PgPool,
    signing: &SigningKeys,
    checkpoint: Option<Checkpoint>,
    plan: Plan,
    format: Format,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    out: Sender<Result<actix_web::web::Bytes, std::io::Error>>,
    progress: &dyn crate::progress::Progress,
) -> anyhow::Result<SignedManifest> {
    let mut lines = Sha256::new();
    let mut m = Manifest {
        format: format.name().into(),
        from,
        to,
        complete_before: plan.complete_before,
        rows: 0,
        first_pos: None,
        last_pos: None,
        first_seq: None,
        last_seq: None,
        first_prev_hash: None,
        head_hash: None,
        lines_sha256: String::new(),
        checkpoint,
        exported_at: DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now"),
    };
    let send = |chunk: String| {
        let out = out.clone();
        async move {
            out.send(Ok(actix_web::web::Bytes::from(chunk)))
                .await
                .map_err(|_| anyhow::anyhow!("the reader went away"))
        }
    };
    if format == Format::Csv {
        lines.update(CSV_HEADER.as_bytes());
        send(CSV_HEADER.to_string()).await?;
    }
    if let Some((mut after, last)) = plan.range {
        progress.begin("audit export", (last - after).max(0) as u64);
        let cols = row_columns("l.");
        let sql = format!(
            "SELECT c.pos, c.prev_hash, c.hash, {cols} FROM audit.chain c JOIN audit.log l ON {JOIN_LOG} \
             WHERE c.pos > $1 AND c.pos <= $2 ORDER BY c.pos"
        );
        while after < last {
            let upto = (after + PAGE).min(last);
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(upto)
                .fetch_all(pool)
                .await?;
            let mut chunk = String::with_capacity(rows.len() * 420);
            for r in &rows {
                let pos: i64 = r.get("pos");
                anyhow::ensure!(
                    pos == after + 1,
                    "chain position {} is missing or its entry was deleted; run `phi-gateway audit verify`",
                    after + 1
                );
                let prev: Vec<u8> = r.get("prev_hash");
                let hash: Vec<u8> = r.get("hash");
                let row = AuditRow::from_row(r)?;
                let start = chunk.len();
                match format {
                    Format::Ndjson => chunk.push_str(&ndjson_line(&row, pos, &prev, &hash)),
                    Format::Csv => chunk.push_str(&csv_line(&row, pos, &prev, &hash)),
                    Format::Fhir => chunk.push_str(&fhir_line(&row, pos, &prev, &hash)),
                }
                lines.update(&chunk.as_bytes()[start..]);
                if m.first_pos.is_none() {
                    m.first_pos = Some(pos);
                    m.first_seq = Some(row.seq);
                    m.first_prev_hash = Some(hex::encode(&prev));
                }
                m.rows += 1;
                m.last_seq = Some(row.seq);
                m.last_pos = Some(pos);
                m.head_hash = Some(hex::encode(&hash));
                after = pos;
            }
            anyhow::ensure!(
                after == upto,
                "chain position {} is missing or its entry was deleted; run `phi-gateway audit verify`",
                after + 1
            );
            send(chunk).await?;
            progress.at(m.rows);
        }
    }
    progress.end();
    m.lines_sha256 = hex::encode(&lines.finalize());
    let signed = SignedManifest::sign(&m, signing);
    match format {
        Format::Ndjson => send(signed.ndjson_line()).await?,
        Format::Fhir => send(signed.provenance(&m).to_string() + "\n").await?,
        Format::Csv => {}
    }
    Ok(signed)
}

/// Checks an export against its signed manifest, offline, with the public
/// key alone, reading the file once (constant memory): every entry's hash,
/// the links between consecutive positions (contiguous, starting where the
/// manifest says, from the hash it names), the row count, the hash over the
/// lines, the manifest's signature, and the checkpoint's (and, when the
/// export reaches it, that it matches). For CSV the manifest is a separate
/// file.
pub fn verify_file(
    reader: impl BufRead,
    csv_manifest: Option<&SignedManifest>,
    keys: &VerifyingKeys,
) -> anyhow::Result<Manifest> {
    let mut lines = reader.lines();
    let mut sha = Sha256::new();
    let mut count = 0u64;
    let mut last: Option<(i64, Vec<u8>)> = None;
    let mut first: Option<(i64, i64, Vec<u8>)> = None;
    let mut last_seq = None;
    let mut latest: Option<DateTime<Utc>> = None;
    let mut format: Option<Format> = csv_manifest.map(|_| Format::Csv);
    let mut pending = lines.next().transpose()?;
    if format == Some(Format::Csv) {
        let header = pending.take().map(|l| l + "\n");
        anyhow::ensure!(
            header.as_deref() == Some(CSV_HEADER),
            "CSV header missing or changed"
        );
        sha.update(CSV_HEADER.as_bytes());
        pending = lines.next().transpose()?;
    }
    let mut trailer: Option<SignedManifest> = csv_manifest.cloned();
    let mut n = 0usize;
    while let Some(line) = pending.take() {
        n += 1;
        let next = lines.next().transpose()?;
        if next.is_none() && format != Some(Format::Csv) {
            // The last line: the signed manifest (NDJSON) or a Provenance (FHIR).
            let v: Value = serde_json::from_str(&line).map_err(|_| {
                anyhow::anyhow!("line {n}: the export has no manifest (truncated?)")
            })?;
            trailer = Some(if v.get(MANIFEST_KEY).is_some() {
                format.get_or_insert(Format::Ndjson);
                serde_json::from_value(v)?
            } else {
                format.get_or_insert(Format::Fhir);
                SignedManifest::from_provenance(&v)
                    .map_err(|e| anyhow::anyhow!("line {n}: {e} (truncated?)"))?
            });
            break;
        }
        let f = *format.get_or_insert_with(|| {
            if line.contains("\"resourceType\":\"AuditEvent\"") {
                Format::Fhir
            } else {
                Format::Ndjson
            }
        });
        let (row, pos, prev, hash) =
            parse_line(f, &line).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
        sha.update(line.as_bytes());
        sha.update(b"\n");
        anyhow::ensure!(
            chain::link(&prev, &row).as_slice() == hash.as_slice(),
            "line {n}: entry seq {} does not match its hash (altered)",
            row.seq
        );
        match &last {
            Some((lp, lh)) => {
                anyhow::ensure!(
                    pos == lp + 1,
                    "line {n}: position {pos} follows {lp} (lines missing or out of order)"
                );
                anyhow::ensure!(&prev == lh, "line {n}: broken link to the previous entry");
            }
            None => first = Some((pos, row.seq, prev.clone())),
        }
        last_seq = Some(row.seq);
        latest = latest.max(Some(row.at));
        last = Some((pos, hash));
        count += 1;
        pending = next;
    }
    let signed =
        trailer.ok_or_else(|| anyhow::anyhow!("the export has no manifest (truncated?)"))?;
    let m = signed.open(keys)?;
    // An entry cannot be newer than the export that holds it (the date a
    // signature bears is what the key's notAfter is held against).
    anyhow::ensure!(
        latest
            .is_none_or(|t| (t - m.exported_at).num_seconds() <= chain::BACKDATING_TOLERANCE_SECS),
        "the export holds entries dated after it was made (its date was set back?)"
    );
    anyhow::ensure!(
        Some(m.format.as_str()) == format.map(Format::name) || (count == 0 && m.rows == 0),
        "the manifest is for format {}",
        m.format
    );
    anyhow::ensure!(
        count == m.rows,
        "manifest says {} rows, file has {count}",
        m.rows
    );
    anyhow::ensure!(
        hex::encode(&sha.finalize()) == m.lines_sha256,
        "the lines differ from those the manifest signed"
    );
    anyhow::ensure!(
        first.as_ref().map(|f| f.0) == m.first_pos
            && first.as_ref().map(|f| f.1) == m.first_seq
            && first.as_ref().map(|f| hex::encode(&f.2)) == m.first_prev_hash,
        "the first entry differs from the manifest"
    );
    anyhow::ensure!(
        last.as_ref().map(|l| l.0) == m.last_pos && last_seq == m.last_seq,
        "the last entry differs from the manifest"
    );
    anyhow::ensure!(
        last.as_ref().map(|(_, h)| hex::encode(h)) == m.head_hash,
        "head hash differs from the manifest"
    );
    if let Some(c) = &m.checkpoint {
        anyhow::ensure!(
            chain::verify_checkpoint(
                VerifyKeys {
                    public: Some(keys),
                    keyring: None
                },
                c
            ),
            "the checkpoint's signature is not valid"
        );
        if Some(c.pos) == m.last_pos {
            anyhow::ensure!(
                m.head_hash.as_deref() == Some(hex::encode(&c.hash).as_str()),
                "the checkpoint does not match the last entry"
            );
        }
        anyhow::ensure!(
            m.last_pos.is_none_or(|p| p <= c.pos),
            "the export reaches past its checkpoint"
        );
    }
    Ok(m)
}

fn hex_field(v: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(v).ok_or_else(|| anyhow::anyhow!("bad hex"))
}

fn parse_line(format: Format, line: &str) -> anyhow::Result<(AuditRow, i64, Vec<u8>, Vec<u8>)> {
    match format {
        Format::Ndjson => {
            let mut v: Value = serde_json::from_str(line)?;
            let obj = v
                .as_object_mut()
                .ok_or_else(|| anyhow::anyhow!("not an object"))?;
            let pos = obj
                .remove("pos")
                .and_then(|p| p.as_i64())
                .ok_or_else(|| anyhow::anyhow!("no pos"))?;
            let take = |obj: &mut serde_json::Map<String, Value>, k: &str| {
                obj.remove(k)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let prev = hex_field(&take(obj, "prevHash"))?;
            let hash = hex_field(&take(obj, "hash"))?;
            let row: AuditRow = serde_json::from_value(v)?;
            Ok((row, pos, prev, hash))
        }
        Format::Fhir => {
            let v: Value = serde_json::from_str(line)?;
            let ext = v["extension"]
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("no extension"))?;
            let find = |url: &str| {
                ext.iter()
                    .find(|e| e["url"] == url)
                    .and_then(|e| e["valueString"].as_str())
                    .ok_or_else(|| anyhow::anyhow!("missing {url}"))
            };
            let row: AuditRow = serde_json::from_str(find("urn:phi-gateway:audit-entry")?)?;
            let mut parts = find("urn:phi-gateway:chain")?.split(':');
            let pos = parts.next().unwrap_or("").parse()?;
            let prev = hex_field(parts.next().unwrap_or(""))?;
            let hash = hex_field(parts.next().unwrap_or(""))?;
            // What a reader sees must be what was hashed.
            anyhow::ensure!(
                fhir_event(&row, pos, &prev, &hash) == v,
                "AuditEvent {} does not match its sealed entry (altered)",
                row.seq
            );
            Ok((row, pos, prev, hash))
        }
        Format::Csv => {
            let cols = parse_csv_line(line)?;
            anyhow::ensure!(
                cols.len() == CSV_COLUMNS,
                "expected {CSV_COLUMNS} columns, found {}",
                cols.len()
            );
            let opt = |i: usize| cols[i].clone().map(unneutralise);
            let req = |i: usize| opt(i).ok_or_else(|| anyhow::anyhow!("column {i} is empty"));
            let row = AuditRow {
                seq: req(0)?.parse()?,
                at: DateTime::parse_from_rfc3339(&req(1)?)?.with_timezone(&Utc),
                actor_user: opt(2),
                actor_collection: opt(3),
                actor_roles: opt(4),
                api_key_id: opt(5).map(|s| s.parse()).transpose()?,
                action: req(6)?,
                entity_type: req(7)?,
                entity_id: opt(8),
                request_id: opt(9),
                client_addr: opt(10),
                outcome: req(11)?,
                reason: opt(12),
                fields: opt(13)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split(';').map(str::to_string).collect())
                    .unwrap_or_default(),
                client_request_id: opt(14),
                detail: opt(15),
            };
            Ok((
                row,
                req(16)?.parse()?,
                hex_field(&req(17)?)?,
                hex_field(&req(18)?)?,
            ))
        }
    }
}

/// One CSV record; an unquoted empty field is absent, a quoted one is "".
fn parse_csv_line(line: &str) -> anyhow::Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => anyhow::bail!("unterminated quote"),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        out.push(if quoted || !field.is_empty() {
            Some(field)
        } else {
            None
        });
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => anyhow::bail!("characters after a quoted field"),
        }
    }
    Ok(out)
}

/// Writes a file export (the CLI), with the CSV manifest beside it.
pub fn write_csv_manifest(path: &std::path::Path, signed: &SignedManifest) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(signed.ndjson_line().as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_formulas_are_neutralised_and_restored() {
        for v in [
            "=HYPERLINK(\"x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "'quoted",
            "plain",
        ] {
            let mut s = String::new();
            csv_field(&mut s, Some(v));
            let parsed = parse_csv_line(&s).unwrap()[0].clone().map(unneutralise);
            assert_eq!(parsed.as_deref(), Some(v), "{s}");
            if v != "plain" {
                assert!(s.trim_start_matches('"').starts_with('\''), "{s}");
            }
        }
    }
}
