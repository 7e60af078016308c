//! The compliance export: sealed entries in chain order as NDJSON, CSV or
//! FHIR R4 AuditEvent NDJSON, streamed in pages (constant memory), ending in
//! a manifest (row count, first/last sequence and position, head hash, and a
//! checkpoint signed at export time). `verify_file` checks an export against
//! its manifest offline, with the keyring.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{FromRow, PgPool, Row};
use tokio::sync::mpsc::Sender;

use super::chain::{self, AuditRow, Checkpoint, JOIN_LOG, hex, row_columns};
use crate::crypto::Keyring;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Fhir => "fhir",
        }
    }
}

const CSV_HEADER: &str = "seq,at,actor_user,actor_collection,actor_roles,api_key_id,action,entity_type,entity_id,request_id,client_addr,outcome,reason,fields,pos,prev_hash,hash\n";
pub const MANIFEST_PREFIX: &str = "#manifest ";
const PAGE: i64 = 1000;

fn csv_field(out: &mut String, v: Option<&str>) {
    match v {
        None => {}
        Some(s) if s.contains([',', '"', '\n', '\r']) || s.is_empty() => {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        }
        Some(s) => out.push_str(s),
    }
}

fn csv_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut out = String::with_capacity(256);
    let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let fields = r.fields.join(";");
    let cols: [Option<String>; 17] = [
        Some(r.seq.to_string()),
        Some(at),
        r.actor_user.clone(),
        r.actor_collection.clone(),
        r.actor_roles.clone(),
        r.api_key_id.map(|u| u.to_string()),
        Some(r.action.clone()),
        Some(r.entity_type.clone()),
        r.entity_id.clone(),
        r.request_id.clone(),
        r.client_addr.clone(),
        Some(r.outcome.clone()),
        r.reason.clone(),
        Some(fields),
        Some(pos.to_string()),
        Some(hex::encode(prev)),
        Some(hex::encode(hash)),
    ];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, c.as_deref());
    }
    out.push('\n');
    out
}

/// A FHIR R4 AuditEvent for one entry. The entry itself rides along in an
/// extension so the export can be verified offline.
pub fn fhir_event(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> Value {
    let (action, subtype) = match r.action.as_str() {
        "CREATE" => ("C", "create"),
        "READ" => ("R", "read"),
        "UPDATE" => ("U", "update"),
        "DELETE" => ("D", "delete"),
        "EXPORT" => ("E", "export"),
        "ACCESS_DENIED" => ("E", "access-denied"),
        "BREAK_GLASS" => ("E", "break-glass"),
        "DECRYPT_FAILURE" => ("E", "decrypt-failure"),
        "KEY_ROTATION" => ("E", "key-rotation"),
        _ => ("E", "login"),
    };
    let outcome = match (r.outcome.as_str(), r.action.as_str()) {
        ("success", _) => "0",
        ("denied", _) => "4",
        (_, "DECRYPT_FAILURE") => "12",
        _ => "8",
    };
    let restful = matches!(subtype, "create" | "read" | "update" | "delete");
    json!({
        "resourceType": "AuditEvent",
        "id": r.seq.to_string(),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{
            "system": if restful { "http://hl7.org/fhir/restful-interaction" } else { "urn:phi-gateway:audit-action" },
            "code": subtype
        }],
        "action": action,
        "recorded": r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "outcome": outcome,
        "outcomeDesc": r.reason,
        "agent": [{
            "who": {"identifier": {"system": format!("urn:payload:{}", r.actor_collection.as_deref().unwrap_or("anonymous")), "value": r.actor_user}},
            "requestor": true,
            "role": r.actor_roles.as_deref().unwrap_or("").split(',').filter(|s| !s.is_empty()).map(|role| json!({"text": role})).collect::<Vec<_>>(),
            "network": r.client_addr.as_ref().map(|a| json!({"address": a, "type": "2"})),
        }],
        "source": {"observer": {"display": "phi-gateway"}, "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": [{
            "what": {"identifier": {"system": format!("urn:phi-gateway:{}", r.entity_type), "value": r.entity_id}},
            "type": {"system": "urn:phi-gateway:entity-type", "code": r.entity_type},
            "detail": r.fields.iter().map(|f| json!({"type": "changed-field", "valueString": f})).collect::<Vec<_>>(),
        }],
        "extension": [
            {"url": "urn:phi-gateway:audit-entry", "valueString": serde_json::to_string(r).expect("plain data")},
            {"url": "urn:phi-gateway:chain", "valueString": format!("{pos}:{}:{}", hex::encode(prev), hex::encode(hash))}
        ]
    })
}

fn ndjson_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut v = serde_json::to_value(r).expect("plain data");
    v["pos"] = json!(pos);
    v["prevHash"] = json!(hex::encode(prev));
    v["hash"] = json!(hex::encode(hash));
    v.to_string() + "\n"
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub rows: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub first_pos: Option<i64>,
    pub last_pos: Option<i64>,
    /// The hash of the last exported entry.
    pub head_hash: Option<String>,
    /// The chain's head, signed when the export began.
    pub checkpoint: Option<Checkpoint>,
}

/// Streams an export into `out`, one chunk per page. Seals and signs a
/// checkpoint first, so the export covers everything committed before it.
pub async fn stream(
    pool: &PgPool,
    keyring: &Keyring,
    format: Format,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    out: Sender<Result<actix_web::web::Bytes, std::io::Error>>,
    progress: Option<&crate::rekey::Progress>,
) -> anyhow::Result<Manifest> {
    let checkpoint = chain::checkpoint(pool, keyring).await?;
    let head_pos = checkpoint.as_ref().map(|c| c.pos).unwrap_or(0);
    let mut m = Manifest {
        format: format.name().into(),
        from,
        to,
        rows: 0,
        first_seq: None,
        last_seq: None,
        first_pos: None,
        last_pos: None,
        head_hash: None,
        checkpoint: checkpoint.clone(),
    };
    if format == Format::Csv
        && out
            .send(Ok(actix_web::web::Bytes::from_static(
                CSV_HEADER.as_bytes(),
            )))
            .await
            .is_err()
    {
        anyhow::bail!("the reader went away");
    }
    let cols = row_columns("l.");
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT c.pos, c.prev_hash, c.hash, {cols} FROM audit.chain c JOIN audit.log l ON {JOIN_LOG} \
             WHERE c.pos > $1 AND c.pos <= $2 \
               AND ($3::timestamptz IS NULL OR l.at >= $3) AND ($4::timestamptz IS NULL OR l.at < $4) \
             ORDER BY c.pos LIMIT $5"
        ))
        .bind(after)
        .bind(head_pos)
        .bind(from)
        .bind(to)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        let mut chunk = String::with_capacity(rows.len() * 400);
        for r in &rows {
            let pos: i64 = r.get("pos");
            let prev: Vec<u8> = r.get("prev_hash");
            let hash: Vec<u8> = r.get("hash");
            let row = AuditRow::from_row(r)?;
            match format {
                Format::Ndjson => chunk.push_str(&ndjson_line(&row, pos, &prev, &hash)),
                Format::Csv => chunk.push_str(&csv_line(&row, pos, &prev, &hash)),
                Format::Fhir => {
                    chunk.push_str(&fhir_event(&row, pos, &prev, &hash).to_string());
                    chunk.push('\n');
                }
            }
            m.rows += 1;
            m.first_seq.get_or_insert(row.seq);
            m.first_pos.get_or_insert(pos);
            m.last_seq = Some(row.seq);
            m.last_pos = Some(pos);
            m.head_hash = Some(hex::encode(&hash));
            after = pos;
        }
        if out
            .send(Ok(actix_web::web::Bytes::from(chunk)))
            .await
            .is_err()
        {
            anyhow::bail!("the reader went away");
        }
        if let Some(p) = progress {
            p.update("audit export", m.rows);
        }
    }
    let line = format!("{MANIFEST_PREFIX}{}\n", serde_json::to_string(&m)?);
    let _ = out.send(Ok(actix_web::web::Bytes::from(line))).await;
    Ok(m)
}

/// Checks an export file against its manifest: row count, first and last
/// sequence, each entry's hash, the links between consecutive positions, and
/// the checkpoint's signature (and, when the export reaches it, its hash).
pub fn verify_file(text: &str, keyring: &Keyring) -> anyhow::Result<Manifest> {
    let mut lines: Vec<&str> = text.lines().collect();
    let manifest_line = lines.pop().ok_or_else(|| anyhow::anyhow!("empty export"))?;
    let manifest: Manifest = serde_json::from_str(
        manifest_line
            .strip_prefix(MANIFEST_PREFIX)
            .ok_or_else(|| anyhow::anyhow!("the export has no manifest (truncated?)"))?,
    )?;
    let format = Format::parse(&manifest.format)
        .ok_or_else(|| anyhow::anyhow!("unknown format in manifest"))?;
    if format == Format::Csv {
        anyhow::ensure!(
            lines.first().map(|l| format!("{l}\n")) == Some(CSV_HEADER.to_string()),
            "CSV header missing or changed"
        );
        lines.remove(0);
    }
    let mut count = 0u64;
    let mut last: Option<(i64, Vec<u8>)> = None;
    let (mut first_seq, mut last_seq) = (None, None);
    for (n, line) in lines.iter().enumerate() {
        let (row, pos, prev, hash) =
            parse_line(format, line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        anyhow::ensure!(
            chain::link(&prev, &row).as_slice() == hash.as_slice(),
            "line {}: entry seq {} does not match its hash (altered)",
            n + 1,
            row.seq
        );
        if let Some((lp, lh)) = &last {
            anyhow::ensure!(pos > *lp, "line {}: positions out of order", n + 1);
            if pos == lp + 1 {
                anyhow::ensure!(
                    &prev == lh,
                    "line {}: broken link to the previous entry",
                    n + 1
                );
            }
        }
        first_seq.get_or_insert(row.seq);
        last_seq = Some(row.seq);
        if let Some(c) = &manifest.checkpoint
            && c.pos == pos
        {
            anyhow::ensure!(
                c.hash == hash,
                "the checkpoint does not match entry at position {pos}"
            );
        }
        last = Some((pos, hash));
        count += 1;
    }
    anyhow::ensure!(
        count == manifest.rows,
        "manifest says {} rows, file has {count}",
        manifest.rows
    );
    anyhow::ensure!(
        first_seq == manifest.first_seq && last_seq == manifest.last_seq,
        "first/last sequence differ from the manifest"
    );
    anyhow::ensure!(
        last.as_ref().map(|(_, h)| hex::encode(h)) == manifest.head_hash,
        "head hash differs from the manifest"
    );
    if let Some(c) = &manifest.checkpoint {
        anyhow::ensure!(
            chain::verify_checkpoint(keyring, c),
            "the checkpoint's signature is not valid"
        );
    }
    Ok(manifest)
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
            let prev = hex_field(
                obj.remove("prevHash")
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )?;
            let hash = hex_field(
                obj.remove("hash")
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )?;
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
                cols.len() == 17,
                "expected 17 columns, found {}",
                cols.len()
            );
            let opt = |i: usize| cols[i].clone();
            let req = |i: usize| {
                cols[i]
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("column {i} is empty"))
            };
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
            };
            Ok((
                row,
                req(14)?.parse()?,
                hex_field(&req(15)?)?,
                hex_field(&req(16)?)?,
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
            None => return Ok(out),
            Some(_) => anyhow::bail!("garbage after a quoted field"),
        }
    }
}
