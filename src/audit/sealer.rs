//! The sealer: links committed audit entries into the chain (as
//! `phi_sealer`, the only role that writes it), quarantines what cannot be
//! sealed, signs checkpoints of the head and appends them to the anchor.
//! An operator subsystem: its SQL lives here (ARCHITECTURE.md).
//!
//! Entries are sealed in commit order: an entry is sealed once every
//! transaction older than its own has finished. One sealer runs at a time
//! across all gateways: each round takes a transaction-level advisory
//! lock, so the request path never waits on the chain.

use std::sync::Arc;

use sqlx::{FromRow, PgPool, Row};

use super::anchor::Anchor;
use super::chain::{AuditRow, Checkpoint, GENESIS, link, row_columns, sign_checkpoint};
use super::signing::SigningKeys;

const SEALER_LOCK: i64 = 0x7068_695f_6175_6474; // "phi_audt"

// Every statement here is prepared unnamed (`persistent(false)`), inside a
// transaction: a sealer behind a transaction-mode pooler (PgBouncer before
// 1.21) would find its statements prepared by name gone once the pooler
// handed it another server connection (a failover, a restarted server),
// and every round after would fail ("prepared statement sqlx_s_1 does not
// exist"). Outside a transaction the pooler may even switch servers between
// a statement's parse and its execution. A round parses a handful of
// statements: nothing beside its work.

/// Seals up to `batch` committed entries, if no other sealer holds the lock.
/// Returns how many were sealed.
///
/// Entries are sealed once every transaction that could still add an entry
/// before them has finished: those whose `txid` is below the snapshot's
/// `xmin`. Each round takes the range `[lo, hi)` of transaction ids (`hi`
/// fixed when the range opens, so that it holds at most `batch` entries or
/// one transaction's: a backlog of millions is sealed at the same cost per
/// entry as a quiet day's) and walks it in `seq` order; its progress is
/// saved in `audit.sealer_state` in the same transaction as the links. An
/// entry whose sequence number is already in the chain (only a superuser
/// can insert one) can never be sealed: it is quarantined, reported, and
/// passed over, and sealing goes on.
pub async fn seal_pending(pool: &PgPool, batch: i32) -> Result<usize, sqlx::Error> {
    match seal_round(pool, batch, false).await {
        // A sequence number already in the chain: only now look for which
        // entries cannot be sealed, and quarantine them (the fast path
        // pays nothing for a check that almost never finds anything).
        Err(e) if crate::store::StoreError::is_unique(&e) => seal_round(pool, batch, true).await,
        other => other,
    }
}

async fn seal_round(pool: &PgPool, batch: i32, careful: bool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .persistent(false)
        .bind(SEALER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(0);
    }
    let (lo, hi, after_seq): (i64, Option<i64>, i64) =
        sqlx::query_as("SELECT lo, hi, after_seq FROM audit.sealer_state")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
    let (lo, hi) = match hi {
        Some(h) => (lo, h),
        None => {
            let xmin: i64 =
                sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .persistent(false)
                    .fetch_one(&mut *tx)
                    .await?;
            if xmin <= lo {
                tx.commit().await?;
                return Ok(0);
            }
            // A window of at most `batch` entries (or one transaction's),
            // so that a page costs its own size however far behind the
            // sealer is: the first `batch + 1` finished entries in index
            // order say where it ends.
            let (n, first, last): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT count(*), min(txid), max(txid) FROM (SELECT txid FROM audit.log \
                 WHERE txid >= $1 AND txid < $2 ORDER BY txid, seq LIMIT $3) w",
            )
            .persistent(false)
            .bind(lo)
            .bind(xmin)
            .bind(batch as i64 + 1)
            .fetch_one(&mut *tx)
            .await?;
            match (first, last) {
                (Some(first), Some(last)) => {
                    // Nothing was written by the finished transactions in
                    // [lo, first): the window may start at `first`.
                    if n <= batch as i64 {
                        (first, xmin)
                    } else if first == last {
                        (first, first + 1)
                    } else {
                        (first, last)
                    }
                }
                _ => {
                    sqlx::query("UPDATE audit.sealer_state SET lo = $1, hi = NULL, after_seq = 0")
                        .persistent(false)
                        .bind(xmin)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    return Ok(0);
                }
            }
        }
    };
    // One transaction's entries are in the index in `seq` order: read them
    // by equality, which the index serves without a sort.
    let window = if hi == lo + 1 {
        "txid = $1 AND $2::bigint IS NOT NULL"
    } else {
        "txid >= $1 AND txid < $2"
    };
    let rows: Vec<(i64, AuditRow)> = sqlx::query(&format!(
        "SELECT txid, {} FROM audit.log WHERE {window} AND seq > $3 ORDER BY seq LIMIT $4",
        row_columns("")
    ))
    .persistent(false)
    .bind(lo)
    .bind(hi)
    .bind(after_seq)
    .bind(batch as i64)
    .try_map(|r: sqlx::postgres::PgRow| Ok((r.try_get("txid")?, AuditRow::from_row(&r)?)))
    .fetch_all(&mut *tx)
    .await?;
    if (rows.len() as i32) < batch {
        sqlx::query("UPDATE audit.sealer_state SET lo = $1, hi = NULL, after_seq = 0")
            .persistent(false)
            .bind(hi)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query("UPDATE audit.sealer_state SET lo = $1, hi = $2, after_seq = $3")
            .persistent(false)
            .bind(lo)
            .bind(hi)
            .bind(rows.last().map(|(_, r)| r.seq).unwrap_or(after_seq))
            .execute(&mut *tx)
            .await?;
    }
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    // Sequence numbers already chained (or twice in this batch) cannot be
    // sealed again; looked up only once an insert has tripped on one.
    let mut taken: std::collections::HashSet<i64> = if careful {
        let seqs: Vec<i64> = rows.iter().map(|(_, r)| r.seq).collect();
        sqlx::query_scalar("SELECT seq FROM audit.chain WHERE seq = ANY($1)")
            .persistent(false)
            .bind(&seqs)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    } else {
        std::collections::HashSet::new()
    };
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT pos, hash FROM audit.chain ORDER BY pos DESC LIMIT 1")
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await?;
    let (mut pos, mut prev) = head.unwrap_or((0, GENESIS.to_vec()));
    let (mut positions, mut chain_seqs, mut txids, mut prevs, mut hashes) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut q_seqs, mut q_txids) = (vec![], vec![]);
    for (txid, r) in &rows {
        if !taken.insert(r.seq) {
            q_seqs.push(r.seq);
            q_txids.push(*txid);
            continue;
        }
        pos += 1;
        let h = link(&prev, r);
        positions.push(pos);
        chain_seqs.push(r.seq);
        txids.push(*txid);
        prevs.push(prev.clone());
        hashes.push(h.to_vec());
        prev = h.to_vec();
    }
    if !q_seqs.is_empty() {
        tracing::error!(
            count = q_seqs.len(),
            first_seq = q_seqs[0],
            "audit entries reuse sealed sequence numbers: quarantined (inserted behind the log's back?)"
        );
        sqlx::query(
            "INSERT INTO audit.quarantine (seq, txid, reason) \
             SELECT s, t, 'sequence number already sealed' FROM UNNEST($1::bigint[], $2::bigint[]) AS x(s, t) \
             ON CONFLICT DO NOTHING",
        )
        .persistent(false)
        .bind(&q_seqs)
        .bind(&q_txids)
        .execute(&mut *tx)
        .await?;
    }
    let sealed = positions.len();
    sqlx::query(
        "INSERT INTO audit.chain (pos, seq, txid, prev_hash, hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[])",
    )
    .persistent(false)
    .bind(positions)
    .bind(chain_seqs)
    .bind(txids)
    .bind(prevs)
    .bind(hashes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sealed)
}

/// Seals until every committed entry is in the chain, waiting (up to 10 s)
/// for older transactions elsewhere to finish: for checkpoints, exports and
/// verification, which must cover everything committed before them.
pub async fn seal_all(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut total = 0;
    loop {
        total += seal_available(pool).await?;
        // The horizon as a literal: a parameter (or a subquery) is planned
        // for any value, as a scan of the whole log (a second at 10 million).
        let mut tx = pool.begin().await?;
        let lo: i64 = sqlx::query_scalar("SELECT lo FROM audit.sealer_state")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        let unsealed: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM audit.log l WHERE l.txid >= {lo} \
             AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq) \
             AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid))"
        ))
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if !unsealed || std::time::Instant::now() > deadline {
            return Ok(total);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Seals what can be sealed now (it may take a few ranges: one opened while
/// others were still running ends early), in at most a few rounds that are
/// not full: under steady writes every round finds a few new entries, and
/// a loop that waited for two empty rounds ran without pause, sealing a
/// handful of entries a round (a sixth of the gateway's CPU at 2,000 reads
/// a second, BENCHMARKS.md). What comes in after waits for the next tick.
/// A full round (a backlog) does not count.
pub async fn seal_available(pool: &PgPool) -> Result<usize, sqlx::Error> {
    const BATCH: i32 = 5000;
    const ROUNDS: u32 = 4;
    let mut total = 0;
    let mut idle_rounds = 0;
    let mut rounds = 0;
    loop {
        let n = seal_pending(pool, BATCH).await?;
        total += n;
        if n == BATCH as usize {
            continue;
        }
        rounds += 1;
        if n == 0 {
            idle_rounds += 1;
        } else {
            idle_rounds = 0;
        }
        if idle_rounds >= 2 || rounds >= ROUNDS {
            return Ok(total);
        }
    }
}

/// The chain's last position (0 while empty).
pub async fn head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let head = sqlx::query_scalar("SELECT coalesce(max(pos), 0) FROM audit.chain")
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(head)
}

/// Keeps the audit log's monthly partitions three months ahead.
async fn upkeep(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT audit.ensure_partitions(3)")
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The sealer's means: its pool (as `phi_sealer`), the signing key, and the
/// anchor.
#[derive(Clone)]
pub struct Sealer {
    pub pool: PgPool,
    pub signing: Arc<SigningKeys>,
    pub anchor: Option<Anchor>,
}

impl Sealer {
    /// Seals everything committed, then signs the head (stored, and appended
    /// to the anchor). None while the chain is empty.
    pub async fn checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        seal_all(&self.pool).await?;
        let mut tx = self.pool.begin().await?;
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT pos, hash FROM audit.chain ORDER BY pos DESC LIMIT 1")
                .persistent(false)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let Some((pos, hash)) = head else {
            return Ok(None);
        };
        Ok(Some(self.sign_at(pos, hash).await?.1))
    }

    /// Signs the chain's hash at `pos` as a checkpoint: stored (its id is
    /// returned) and appended to the anchor.
    pub async fn sign_at(&self, pos: i64, hash: Vec<u8>) -> anyhow::Result<(i64, Checkpoint)> {
        let c = sign_checkpoint(&self.signing, pos, hash);
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit.checkpoints (pos, hash, at, alg, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id",
        ).persistent(false)
        .bind(c.pos)
        .bind(&c.hash)
        .bind(c.at)
        .bind(&c.alg)
        .bind(c.key_id as i32)
        .bind(&c.signature)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(a) = &self.anchor {
            a.append(&c)?;
        }
        Ok((id, c))
    }

    /// The background sealer: seals every `interval`, signs a checkpoint
    /// every `checkpoint_every` rounds when the head moved, and keeps
    /// monthly partitions three months ahead.
    pub fn spawn(
        self,
        interval: std::time::Duration,
        checkpoint_every: u64,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks: u64 = 0;
            let mut last_signed = 0i64;
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = seal_available(&self.pool).await {
                    tracing::warn!(error = %e, "audit sealer round failed");
                    continue;
                }
                ticks += 1;
                if ticks % checkpoint_every.max(1) == 1 || checkpoint_every <= 1 {
                    if let Err(e) = upkeep(&self.pool).await {
                        tracing::warn!(error = %e, "audit partition upkeep failed");
                    }
                    let head = head(&self.pool).await.unwrap_or(0);
                    if head > last_signed {
                        match self.checkpoint().await {
                            Ok(Some(c)) => last_signed = c.pos,
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed"),
                        }
                    }
                }
            }
        })
    }
}
