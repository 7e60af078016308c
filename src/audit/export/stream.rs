//! Making an export: `plan` finds the positions a window covers (refusing
//! while entries dated in it are unsealed), `stream` writes them page by
//! page and signs the manifest.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool, Row};
use tokio::sync::mpsc::Sender;

use super::fhir;
use super::format::{CSV_HEADER, Format};
use super::manifest::{Manifest, SignedManifest};
use crate::audit::chain::{self, AuditRow, Checkpoint, JOIN_LOG, hex, row_columns};
use crate::audit::signing::SigningKeys;

/// Positions per page.
const PAGE: i64 = 2000;

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
    // Unnamed statements in a transaction, as the sealer's (its pool): they
    // hold behind a transaction-mode pooler.
    let mut tx = pool.begin().await?;
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
    .persistent(false)
    .fetch_one(&mut *tx)
    .await?;
    if left_out > 0 {
        return Err(PlanError::Unsealed(left_out));
    }
    // Positions up to the newest archive's end are in its file, not here
    // (the few entries of a later month sealed among them stay in the log,
    // but their neighbours do not).
    let archived: i64 = sqlx::query_scalar("SELECT coalesce(max(last_pos), 0) FROM audit.archives")
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Plan {
        range: first
            .zip(last)
            .map(|(f, l)| ((f - 1).max(archived), l))
            .filter(|(f, l)| f < l),
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
            // A transaction a page (one over the whole export would hold
            // back the sealer's horizon), its statement unnamed: behind a
            // transaction-mode pooler a page may meet another server.
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(upto)
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
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
                chunk.push_str(&format.line(&row, pos, &prev, &hash));
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
        Format::Fhir => send(fhir::provenance(&signed, &m).to_string() + "\n").await?,
        Format::Csv => {}
    }
    Ok(signed)
}

/// The sealed entries about `patient` by anyone else in [from, to), in
/// chain order, each with its position and the hashes before and of it:
/// the accounting of disclosures entry by entry, as FHIR AuditEvent lines
/// carry them (each line's link can be recomputed from what it carries).
/// Entries not sealed yet (or sealed after position `upto`) are not among
/// them.
pub async fn disclosure_entries(
    pool: &PgPool,
    patient: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    upto: Option<i64>,
) -> Result<Vec<(AuditRow, i64, Vec<u8>, Vec<u8>)>, sqlx::Error> {
    // Unnamed, in a transaction: it holds behind a transaction-mode pooler.
    let mut tx = pool.begin().await?;
    let entries = sqlx::query(&format!(
        "SELECT c.pos, c.prev_hash, c.hash, {} \
         FROM audit.log l JOIN audit.chain c ON c.seq = l.seq AND c.txid = l.txid \
         WHERE l.subject = $1 AND l.at >= $2 AND l.at < $3 \
           AND l.actor_user IS DISTINCT FROM l.subject AND l.action IN {} \
           AND ($4::bigint IS NULL OR c.pos <= $4) \
         ORDER BY c.pos",
        row_columns("l."),
        crate::store::audit::DISCLOSING_ACTIONS
    ))
    .bind(patient)
    .bind(from)
    .bind(to)
    .bind(upto)
    .persistent(false)
    .try_map(|r: sqlx::postgres::PgRow| {
        Ok((
            AuditRow::from_row(&r)?,
            r.try_get("pos")?,
            r.try_get("prev_hash")?,
            r.try_get("hash")?,
        ))
    })
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(entries)
}
