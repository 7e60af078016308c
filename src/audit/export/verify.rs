//! Checking an export offline, with the public key alone.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fhir;
use super::format::{CSV_HEADER, CSV_HEADER_V1, Format};
use super::manifest::{AccountingManifest, MANIFEST_KEY, Manifest, SignedManifest};
use crate::audit::chain::{self, VerifyKeys, hex};
use crate::audit::signing::VerifyingKeys;

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
        let header = header
            .as_deref()
            .filter(|h| *h == CSV_HEADER || *h == CSV_HEADER_V1)
            .ok_or_else(|| anyhow::anyhow!("CSV header missing or changed"))?;
        sha.update(header.as_bytes());
        pending = lines.next().transpose()?;
    }
    let mut trailer: Option<SignedManifest> = csv_manifest.cloned();
    let mut n = 0usize;
    while let Some(mut line) = pending.take() {
        n += 1;
        // A CSV record may span lines (a quoted field holding a newline):
        // an odd number of quotes so far means it goes on.
        if format == Some(Format::Csv) {
            while line.matches('"').count() % 2 == 1 {
                let Some(more) = lines.next().transpose()? else {
                    anyhow::bail!("line {n}: unterminated quote (truncated?)");
                };
                line.push('\n');
                line.push_str(&more);
            }
        }
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
                fhir::from_provenance(&v)
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
        let (row, pos, prev, hash) = f
            .read_line(&line)
            .map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
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

/// Whether `text` ends with a FHIR accounting's Provenance (the last line
/// of a file, read by `verify-export` to choose the check).
pub fn ends_with_accounting(last_line: &str) -> bool {
    serde_json::from_str::<Value>(last_line)
        .ok()
        .and_then(|v| fhir::from_provenance(&v).ok())
        .is_some_and(|s| s.is_accounting())
}

/// Checks a signed accounting of disclosures offline, with the public key
/// alone: the manifest's signature (and its checkpoint's), the content's
/// hash and its count; for FHIR also every AuditEvent against the hashes
/// it carries (altered, it does not match), each about the patient, dated
/// in the window, in chain order and sealed before the signed head. The
/// manifest is detached (`FILE.manifest.json`) for JSON and CSV, and the
/// final Provenance for FHIR.
pub fn verify_accounting(
    content: &str,
    detached: Option<&SignedManifest>,
    keys: &VerifyingKeys,
) -> anyhow::Result<AccountingManifest> {
    let (body, signed) = match detached {
        Some(s) => (content, s.clone()),
        None => {
            let trimmed = content.strip_suffix('\n').unwrap_or(content);
            let (body, last) = match trimmed.rfind('\n') {
                Some(i) => (&content[..=i], &trimmed[i + 1..]),
                None => ("", trimmed),
            };
            let v: Value = serde_json::from_str(last).map_err(|_| {
                anyhow::anyhow!("the accounting has no signed Provenance (truncated?)")
            })?;
            (body, fhir::from_provenance(&v)?)
        }
    };
    let m = signed.open_accounting(keys)?;
    anyhow::ensure!(
        hex::encode(&Sha256::digest(body.as_bytes())) == m.content_sha256,
        "the content differs from what the manifest signed"
    );
    let rows = match m.format.as_str() {
        "json" => {
            let v: Value = serde_json::from_str(body)
                .map_err(|_| anyhow::anyhow!("the accounting is not JSON"))?;
            anyhow::ensure!(
                v["patient"] == m.patient.as_str(),
                "the accounting is about another patient than its manifest says"
            );
            v["disclosures"].as_array().map_or(0, |d| d.len()) as u64
        }
        "csv" => (body.lines().count() as u64).saturating_sub(1),
        "fhir" => {
            let mut last: Option<i64> = None;
            let mut n = 0u64;
            for (i, line) in body.lines().enumerate() {
                let (row, pos, prev, hash) = Format::Fhir
                    .read_line(line)
                    .map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
                anyhow::ensure!(
                    chain::link(&prev, &row).as_slice() == hash.as_slice(),
                    "line {}: entry seq {} does not match its hash (altered)",
                    i + 1,
                    row.seq
                );
                anyhow::ensure!(
                    row.subject.as_deref() == Some(m.patient.as_str()),
                    "line {}: an entry about someone else",
                    i + 1
                );
                anyhow::ensure!(
                    row.at >= m.from && row.at < m.to,
                    "line {}: an entry dated outside the window",
                    i + 1
                );
                anyhow::ensure!(
                    last.is_none_or(|l| pos > l),
                    "line {}: out of chain order",
                    i + 1
                );
                anyhow::ensure!(
                    m.checkpoint.as_ref().is_none_or(|c| pos <= c.pos),
                    "line {}: sealed after the signed head",
                    i + 1
                );
                last = Some(pos);
                n += 1;
            }
            n
        }
        f => anyhow::bail!("the manifest is for format {f}"),
    };
    anyhow::ensure!(
        rows == m.rows,
        "manifest says {} rows, the content has {rows}",
        m.rows
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
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::AuditRow;
    use crate::audit::signing::SigningKeys;

    /// A CSV record whose field holds a newline spans two lines of the
    /// file; it verifies as the one record it is.
    #[test]
    fn a_csv_record_spanning_lines_verifies() {
        let keys = SigningKeys::generate().unwrap();
        let mut text = CSV_HEADER.to_string();
        let mut prev = vec![0u8; 32];
        let mut hashes = Vec::new();
        for (pos, reason) in [(1, Some("first\nsecond, \"third\"")), (2, None)] {
            let row: AuditRow = serde_json::from_value(serde_json::json!({
                "seq": pos, "at": "2026-01-02T03:04:05Z", "actorUser": "users:ann",
                "actorCollection": "users", "actorRoles": null, "apiKeyId": null,
                "action": "READ", "entityType": "herbs", "entityId": null, "requestId": null,
                "clientAddr": null, "outcome": "success", "reason": reason, "fields": []
            }))
            .unwrap();
            let hash = chain::link(&prev, &row);
            text.push_str(&Format::Csv.line(&row, pos, &prev, &hash));
            hashes.push((prev.clone(), hash.to_vec()));
            prev = hash.to_vec();
        }
        let m = Manifest {
            format: "csv".into(),
            from: None,
            to: None,
            complete_before: None,
            rows: 2,
            first_pos: Some(1),
            last_pos: Some(2),
            first_seq: Some(1),
            last_seq: Some(2),
            first_prev_hash: Some(hex::encode(&hashes[0].0)),
            head_hash: Some(hex::encode(&hashes[1].1)),
            lines_sha256: hex::encode(&Sha256::digest(text.as_bytes())),
            checkpoint: None,
            exported_at: Utc::now(),
        };
        let signed = SignedManifest::sign(&m, &keys);
        assert_eq!(
            text.lines().count(),
            4,
            "the header, a record on two lines, a record"
        );
        let got = verify_file(text.as_bytes(), Some(&signed), &keys.public()).unwrap();
        assert_eq!(got.rows, 2);
        let cut = &text[..text.find("second").unwrap()];
        assert!(verify_file(cut.as_bytes(), Some(&signed), &keys.public()).is_err());
    }
}
