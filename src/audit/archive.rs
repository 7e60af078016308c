//! Retention: legal holds, and archiving the oldest monthly partitions of
//! the log to a signed export file, with a verifiable cut. An operator
//! subsystem: its SQL lives here (ARCHITECTURE.md).
//!
//! An archive is the chain's positions from the end of the previous one to
//! the last position of an entry in the partitions archived: a contiguous
//! range (a few entries of the next month sealed among them come along,
//! and stay in the log too), written as the NDJSON export with its signed
//! manifest, whose checkpoint is signed at exactly the archive's last
//! position. The file is verified (`audit verify-export`) before anything
//! is dropped; `audit.archive_cut` then checks again, in the database, the
//! six-year floor, the holds, that every entry of the partitions is in the
//! range, and that the checkpoint is the chain's hash there; records the
//! archive and drops the partitions in one transaction. The live chain's
//! verification starts from that checkpoint.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::chain::{Checkpoint, hex};
use super::export::{self, Format, Plan};
use super::sealer::{self, Sealer};

pub use crate::config::MIN_RETENTION_YEARS;

/// A monthly partition, and what keeps it in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The legal hold in force that covers it.
    pub held_by: Option<i64>,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub id: i64,
    pub subject: Option<String>,
    pub from_at: Option<DateTime<Utc>>,
    pub to_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    pub released_by: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
}

/// Places a hold on one patient's entries (`subject`), on a range of time,
/// or on one patient's entries in a range.
pub async fn place_hold(
    pool: &PgPool,
    subject: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    reason: &str,
    by: &str,
) -> anyhow::Result<i64> {
    anyhow::ensure!(
        subject.is_some() || from.is_some() || to.is_some(),
        "a hold names a patient (--patient), a range (--from, --to), or both"
    );
    anyhow::ensure!(
        !reason.trim().is_empty(),
        "a hold needs its reason (--reason)"
    );
    Ok(sqlx::query_scalar(
        "INSERT INTO audit.legal_holds (subject, from_at, to_at, reason, placed_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(subject)
    .bind(from)
    .bind(to)
    .bind(reason)
    .bind(by)
    .fetch_one(pool)
    .await?)
}

/// Releases a hold (recorded on it; a hold is never deleted).
pub async fn release_hold(pool: &PgPool, id: i64, by: &str) -> anyhow::Result<()> {
    let n = sqlx::query(
        "UPDATE audit.legal_holds SET released_by = $2, released_at = clock_timestamp() \
         WHERE id = $1 AND released_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(pool)
    .await?
    .rows_affected();
    anyhow::ensure!(n == 1, "no hold {id} in force");
    Ok(())
}

/// Every hold, in force or released, oldest first.
pub async fn holds(pool: &PgPool) -> anyhow::Result<Vec<Hold>> {
    Ok(
        sqlx::query_as("SELECT * FROM audit.legal_holds ORDER BY id")
            .fetch_all(pool)
            .await?,
    )
}

/// The monthly partitions, oldest first, each with the hold that keeps it.
pub async fn partitions(pool: &PgPool) -> anyhow::Result<Vec<Partition>> {
    type Row = (String, DateTime<Utc>, DateTime<Utc>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT name, from_at, to_at, audit.hold_on(name, from_at, to_at) FROM audit.monthly_partitions()",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, from, to, held_by)| Partition {
            name,
            from,
            to,
            held_by,
        })
        .collect())
}

/// What archiving would take now: the oldest partitions that end before
/// the retention, up to the first one held (or too young), and why it
/// stops there.
pub fn eligible(
    parts: &[Partition],
    retention_years: u32,
    now: DateTime<Utc>,
) -> (Vec<Partition>, Option<String>) {
    let horizon = now
        .checked_sub_months(chrono::Months::new(
            12 * retention_years.max(MIN_RETENTION_YEARS),
        ))
        .expect("a date six years ago");
    let mut take = Vec::new();
    for p in parts {
        if p.to > horizon {
            let why = format!(
                "{} ends on {}, within the retention of {} years",
                p.name,
                p.to.date_naive(),
                retention_years
            );
            return (take, Some(why));
        }
        if let Some(h) = p.held_by {
            return (take, Some(format!("{} is under legal hold {h}", p.name)));
        }
        take.push(p.clone());
    }
    (take, None)
}

/// What an archiving run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub id: i64,
    pub partitions: Vec<String>,
    pub first_pos: i64,
    pub last_pos: i64,
    pub rows: u64,
    pub file: PathBuf,
    pub checkpoint: Checkpoint,
}

/// Archives `parts` (from `eligible`) into a file in `dir`, verifies it,
/// and drops them. Entries still unsealed are sealed first.
pub async fn archive(
    sealer: &Sealer,
    parts: &[Partition],
    retention_years: u32,
    dir: &Path,
    by: &str,
) -> anyhow::Result<Archived> {
    anyhow::ensure!(
        retention_years >= MIN_RETENTION_YEARS,
        "the retention ({retention_years} years) is below six years"
    );
    anyhow::ensure!(!parts.is_empty(), "nothing to archive");
    let pool = &sealer.pool;
    sealer::seal_all(pool).await?;
    let prev_last: i64 =
        sqlx::query_scalar("SELECT coalesce(max(last_pos), 0) FROM audit.archives")
            .fetch_one(pool)
            .await?;
    let mut last = prev_last;
    for p in parts {
        let (max, unchained): (Option<i64>, i64) = sqlx::query_as(&format!(
            "SELECT max(c.pos), count(*) FILTER (WHERE c.pos IS NULL) FROM audit.{} l \
             LEFT JOIN audit.chain c ON c.seq = l.seq AND c.txid = l.txid",
            quote_partition(&p.name)?
        ))
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(
            unchained == 0,
            "{unchained} entries of {} are not in the chain (quarantined, or unsealed): \
             run `phi-gateway audit verify` first",
            p.name
        );
        last = last.max(max.unwrap_or(0));
    }
    anyhow::ensure!(
        last > prev_last,
        "the partitions hold no entry after the previous archive"
    );
    let hash: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit.chain WHERE pos = $1")
        .bind(last)
        .fetch_one(pool)
        .await?;
    let (checkpoint_id, checkpoint) = sealer.sign_at(last, hash).await?;
    let before = parts.last().map(|p| p.to);

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!(
        "audit-archive-{:012}-{:012}.ndjson",
        prev_last + 1,
        last
    ));
    anyhow::ensure!(
        !file.exists(),
        "{} exists already: an archive is never overwritten",
        file.display()
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let writer = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create_new(&file)
                    .with_context(|| format!("creating {}", file.display()))?,
            );
            while let Some(chunk) = rx.blocking_recv() {
                let chunk: actix_web::web::Bytes = chunk?;
                f.write_all(&chunk)?;
            }
            f.flush()?;
            f.get_ref().sync_all()?;
            Ok(())
        })
    };
    let signed = export::stream(
        pool,
        &sealer.signing,
        Some(checkpoint.clone()),
        Plan {
            range: Some((prev_last, last)),
            complete_before: before,
        },
        Format::Ndjson,
        None,
        before,
        tx,
        &crate::progress::Quiet,
    )
    .await?;
    writer.await??;
    // Read back from the disk and checked as an auditor would, before
    // anything is dropped.
    let public = sealer.signing.public();
    let m = export::verify_file(BufReader::new(std::fs::File::open(&file)?), None, &public)
        .with_context(|| format!("the archive {} does not verify", file.display()))?;
    anyhow::ensure!(
        m.last_pos == Some(last) && m.first_pos == Some(prev_last + 1),
        "the archive covers {:?}..{:?}, not {}..{last}",
        m.first_pos,
        m.last_pos,
        prev_last + 1
    );
    drop(signed);
    let sha = file_sha256(&file)?;
    let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    let id: i64 = sqlx::query_scalar(
        "SELECT audit.archive_cut($1, make_interval(years => $2), $3, $4, $5, $6, $7, $8)",
    )
    .bind(&names)
    .bind(retention_years as i32)
    .bind(last)
    .bind(checkpoint_id)
    .bind(
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default(),
    )
    .bind(&sha)
    .bind(m.rows as i64)
    .bind(by)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        // The file stays: it verifies, and holds entries still in the log.
        anyhow::anyhow!(
            "the database refused the cut ({e}); the partitions are kept, {} may be removed",
            file.display()
        )
    })?;
    Ok(Archived {
        id,
        partitions: names,
        first_pos: prev_last + 1,
        last_pos: last,
        rows: m.rows,
        file,
        checkpoint,
    })
}

/// The newest archive's cut: its last position and its checkpoint (where
/// the live chain's verification starts).
pub async fn newest_cut(pool: &PgPool) -> anyhow::Result<Option<Checkpoint>> {
    type Row = (i64, Vec<u8>, DateTime<Utc>, String, i32, Vec<u8>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT k.pos, k.hash, k.at, k.alg, k.key_id, k.signature \
         FROM audit.archives a JOIN audit.checkpoints k ON k.id = a.checkpoint_id \
         ORDER BY a.id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(
        row.map(|(pos, hash, at, alg, key_id, signature)| Checkpoint {
            pos,
            hash,
            at,
            alg,
            key_id: key_id as u32,
            signature,
        }),
    )
}

fn quote_partition(name: &str) -> anyhow::Result<String> {
    let ok = name.len() == 11
        && name.starts_with("log_")
        && name[4..]
            .chars()
            .enumerate()
            .all(|(i, c)| if i == 4 { c == '_' } else { c.is_ascii_digit() });
    anyhow::ensure!(ok, "{name:?} is not a monthly partition of the log");
    Ok(name.to_string())
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(hex::encode(&sha.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, y: i32, m: u32, held: Option<i64>) -> Partition {
        use chrono::TimeZone;
        let from = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap();
        Partition {
            name: name.into(),
            from,
            to: from.checked_add_months(chrono::Months::new(1)).unwrap(),
            held_by: held,
        }
    }

    #[test]
    fn archiving_takes_the_oldest_months_up_to_a_hold_or_the_retention() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        let parts = [
            part("log_2020_10", 2020, 10, None),
            part("log_2020_11", 2020, 11, None),
            part("log_2020_12", 2020, 12, None),
        ];
        let (take, why) = eligible(&parts, 6, now);
        assert_eq!(take.len(), 2, "December 2020 ends inside six years");
        assert!(why.unwrap().contains("log_2020_12"));
        // Never below six years, whatever is asked.
        assert_eq!(eligible(&parts, 1, now).0.len(), 2);
        assert_eq!(eligible(&parts, 7, now).0.len(), 0);
        let held = [
            part("log_2020_10", 2020, 10, None),
            part("log_2020_11", 2020, 11, Some(3)),
        ];
        let (take, why) = eligible(&held, 6, now);
        assert_eq!(take.len(), 1);
        assert_eq!(why.unwrap(), "log_2020_11 is under legal hold 3");
    }

    #[test]
    fn only_a_monthly_partition_is_named_in_sql() {
        assert!(quote_partition("log_2019_01").is_ok());
        for bad in [
            "log_default",
            "log_2019_1",
            "log_2019_01; DROP",
            "chain",
            "log_201a_01",
        ] {
            assert!(quote_partition(bad).is_err(), "{bad}");
        }
    }
}
