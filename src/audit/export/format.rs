//! The export's line formats: which there are, and NDJSON and CSV lines
//! written and read back (FHIR's are in `fhir`). CSV is written and read
//! here rather than by the `csv` crate: an absent value (an unquoted empty
//! field) and an empty one (`""`) hash differently in the chain, and the
//! crate's reader does not say whether a field was quoted
//! (BurntSushi/rust-csv#307), so it could not give back what was hashed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::fhir;
use crate::audit::chain::{AuditRow, hex};

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

    /// One entry as a line of this format (with its newline).
    pub fn line(self, r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
        match self {
            Format::Ndjson => ndjson_line(r, pos, prev, hash),
            Format::Csv => csv_line(r, pos, prev, hash),
            Format::Fhir => fhir::line(r, pos, prev, hash),
        }
    }

    /// One line of this format read back: the entry, its position and the
    /// hashes before and of it.
    pub fn read_line(self, line: &str) -> anyhow::Result<(AuditRow, i64, Vec<u8>, Vec<u8>)> {
        match self {
            Format::Ndjson => parse_ndjson_line(line),
            Format::Csv => parse_csv_line(line),
            Format::Fhir => fhir::parse_line(line),
        }
    }
}

pub const CSV_HEADER: &str = "seq,at,actor_user,actor_collection,actor_roles,api_key_id,action,entity_type,entity_id,request_id,client_addr,outcome,reason,fields,client_request_id,detail,purpose,subject,pos,prev_hash,hash\n";
const CSV_COLUMNS: usize = 21;
/// The header of exports written before entries had a purpose and a
/// subject (migration 0016): still read, for their verification.
pub const CSV_HEADER_V1: &str = "seq,at,actor_user,actor_collection,actor_roles,api_key_id,action,entity_type,entity_id,request_id,client_addr,outcome,reason,fields,client_request_id,detail,pos,prev_hash,hash\n";
const CSV_COLUMNS_V1: usize = 19;

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

pub fn csv_field(out: &mut String, v: Option<&str>) {
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

pub fn csv_line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
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
        r.purpose.as_deref(),
        r.subject.as_deref(),
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

fn hex_field(v: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(v).ok_or_else(|| anyhow::anyhow!("bad hex"))
}

fn parse_ndjson_line(line: &str) -> anyhow::Result<(AuditRow, i64, Vec<u8>, Vec<u8>)> {
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

fn parse_csv_line(line: &str) -> anyhow::Result<(AuditRow, i64, Vec<u8>, Vec<u8>)> {
    let cols = parse_csv_record(line)?;
    anyhow::ensure!(
        cols.len() == CSV_COLUMNS || cols.len() == CSV_COLUMNS_V1,
        "expected {CSV_COLUMNS} columns, found {}",
        cols.len()
    );
    // After `detail`: `purpose` and `subject`, unless the line is from an
    // export written before them.
    let (purpose, subject, rest) = if cols.len() == CSV_COLUMNS {
        (cols[16].clone(), cols[17].clone(), 18)
    } else {
        (None, None, 16)
    };
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
        purpose: purpose.map(unneutralise),
        subject: subject.map(unneutralise),
    };
    Ok((
        row,
        req(rest)?.parse()?,
        hex_field(&req(rest + 1)?)?,
        hex_field(&req(rest + 2)?)?,
    ))
}

/// One CSV record; an unquoted empty field is absent, a quoted one is "".
fn parse_csv_record(line: &str) -> anyhow::Result<Vec<Option<String>>> {
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
            let parsed = parse_csv_record(&s).unwrap()[0].clone().map(unneutralise);
            assert_eq!(parsed.as_deref(), Some(v), "{s}");
            if v != "plain" {
                assert!(s.trim_start_matches('"').starts_with('\''), "{s}");
            }
        }
    }

    fn entry(reason: Option<&str>, client: Option<&str>) -> AuditRow {
        AuditRow {
            seq: 7,
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            actor_user: Some("users:ann".into()),
            actor_collection: Some("users".into()),
            actor_roles: Some("editor".into()),
            api_key_id: None,
            action: "READ".into(),
            entity_type: "symptom_submissions".into(),
            entity_id: Some("01a2".into()),
            request_id: Some("r-1".into()),
            client_addr: client.map(str::to_string),
            outcome: "success".into(),
            reason: reason.map(str::to_string),
            fields: vec!["notes".into(), "symptoms".into()],
            client_request_id: None,
            detail: Some(r#"{"a":"=1,\"x\""}"#.into()),
            purpose: client.map(|_| "treatment".to_string()),
            subject: client.map(|_| "users:pat".to_string()),
        }
    }

    /// Every format gives back exactly the entry it wrote: an absent value
    /// and an empty one stay apart (they hash differently), commas, quotes
    /// and formula-like text survive.
    #[test]
    fn every_format_reads_back_what_it_wrote() {
        let prev = [1u8; 32];
        for r in [
            entry(None, None),
            entry(Some(""), Some("")),
            entry(
                Some("=cmd|' /C calc'!A0, \"quoted\"\nnext line"),
                Some("-1"),
            ),
        ] {
            let hash = crate::audit::chain::link(&prev, &r);
            for f in [Format::Ndjson, Format::Csv, Format::Fhir] {
                let line = f.line(&r, 42, &prev, &hash);
                let (back, pos, p, h) = f.read_line(line.trim_end_matches('\n')).unwrap();
                assert_eq!((&back, pos), (&r, 42), "{f:?}: {line}");
                assert_eq!(
                    (p.as_slice(), h.as_slice()),
                    (&prev[..], &hash[..]),
                    "{f:?}"
                );
            }
        }
    }
}
