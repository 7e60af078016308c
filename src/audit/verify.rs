//! Verifying the chain in the database: every link recomputed, every
//! checkpoint (in the database and anchored outside it) checked against its
//! signature and the chain, and the log searched for entries that were
//! never chained or were quarantined. An operator subsystem: its SQL lives
//! here (ARCHITECTURE.md).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool, Row};

use super::chain::{
    ALG_ED25519, ALG_HMAC, AuditRow, BACKDATING_TOLERANCE_SECS, CLOCK_SKEW_SECS, Checkpoint,
    GENESIS, JOIN_LOG, VerifyKeys, link, row_columns, verify_checkpoint,
};

/// (pos, hash, at, alg, key id, signature) as stored.
type CheckpointRow = (i64, Vec<u8>, DateTime<Utc>, String, i32, Vec<u8>);

/// What `verify` found.
#[derive(Debug, Default, PartialEq)]
pub struct Verification {
    pub entries_checked: u64,
    pub checkpoints_checked: u64,
    pub anchored_checked: u64,
    /// The first broken link, in words, with its position and sequence.
    pub first_problem: Option<String>,
    pub problems: u64,
    /// Positions up to this one are archived (`audit archive`): the walk
    /// started from the archive's signed checkpoint.
    pub archived_through: Option<i64>,
}

impl Verification {
    fn problem(&mut self, p: String) {
        self.problems += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(p);
        }
    }
}

/// Recomputes the chain (entries whose time is in [from, to)) and every
/// checkpoint, requires the chain to start at position 1 and to reach every
/// checkpoint (those in the database and, with `anchor`, those anchored
/// outside it), and looks for entries in the log that were never chained,
/// or quarantined.
pub async fn verify(
    pool: &PgPool,
    keys: VerifyKeys<'_>,
    anchor: Option<&[Checkpoint]>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> anyhow::Result<Verification> {
    verify_with(
        pool,
        keys,
        Options {
            anchor,
            from,
            to,
            since: None,
            progress: &crate::progress::Quiet,
        },
    )
    .await
}

/// What a verification covers.
pub struct Options<'a> {
    /// Checkpoints anchored outside the database, each to be reached.
    pub anchor: Option<&'a [Checkpoint]>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Verify incrementally from this checkpoint (anchored, so trusted once
    /// its signature and the chain's hash at its position agree): only the
    /// entries after it are recomputed, and only the checkpoints after it
    /// checked. What is before it was verified when it was the head; a
    /// full verification (`None`) recomputes everything.
    pub since: Option<&'a Checkpoint>,
    pub progress: &'a dyn crate::progress::Progress,
}

/// The newest anchored checkpoint whose signature verifies: where an
/// incremental verification starts.
pub fn newest_trusted<'a>(
    keys: VerifyKeys<'_>,
    anchored: &'a [Checkpoint],
) -> Option<&'a Checkpoint> {
    anchored
        .iter()
        .filter(|c| verify_checkpoint(keys, c))
        .max_by_key(|c| c.pos)
}

/// `verify`, with what it covers spelled out (`Options`).
pub async fn verify_with(
    pool: &PgPool,
    keys: VerifyKeys<'_>,
    opts: Options<'_>,
) -> anyhow::Result<Verification> {
    let Options {
        anchor,
        from,
        to,
        since,
        progress,
    } = opts;
    let mut v = Verification::default();
    let mut last_pos: Option<i64> = None;
    let mut prev_hash: Option<Vec<u8>> = None;
    let mut latest_at: Option<DateTime<Utc>> = None;
    // Small enough that the planner joins by the log's index, never by a
    // hash of the whole remaining log.
    let page = 2_000i64;
    let mut after = 0i64;
    // From a trusted checkpoint: it must match the chain, and the walk
    // starts after it with its hash as the previous one.
    if let Some(c) = since {
        let before = v.problems;
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(pos), 0) FROM audit.chain")
            .fetch_one(pool)
            .await?;
        check_against_chain(pool, keys, c, head, "starting checkpoint", &mut v).await?;
        if v.problems > before {
            return Ok(v);
        }
        v.anchored_checked += 1;
        after = c.pos;
        last_pos = Some(c.pos);
        prev_hash = Some(c.hash.clone());
        latest_at = Some(c.at);
    }
    // Archived positions are no longer in the log: the walk starts from the
    // newest archive's checkpoint, signed at its last position (each
    // archive is checked offline with `audit verify-export`).
    if let Some(cut) = super::archive::newest_cut(pool).await?
        && cut.pos > after
    {
        let before = v.problems;
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(pos), 0) FROM audit.chain")
            .fetch_one(pool)
            .await?;
        check_against_chain(pool, keys, &cut, head, "archive cut", &mut v).await?;
        if v.problems > before {
            return Ok(v);
        }
        after = cut.pos;
        last_pos = Some(cut.pos);
        prev_hash = Some(cut.hash.clone());
        latest_at = None;
        v.archived_through = Some(cut.pos);
    }
    let first: Option<i64> = sqlx::query_scalar("SELECT min(pos) FROM audit.chain")
        .fetch_one(pool)
        .await?;
    if let Some(f) = first
        && f != 1
    {
        v.problem(format!(
            "the chain starts at position {f}: positions 1 to {} are missing (its head was cut)",
            f - 1
        ));
    }
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(pos), 0) FROM audit.chain")
        .fetch_one(pool)
        .await?;
    progress.begin("entries", (head - after).max(0) as u64);
    let start = after;
    while after < head {
        progress.at((after - start) as u64);
        // A bounded range of positions: the plan stays a nested loop on the
        // log's index, whatever the log's size.
        let rows = sqlx::query(&format!(
            "SELECT c.pos, c.seq AS chain_seq, c.prev_hash, c.hash, l.seq IS NOT NULL AS present, {} \
             FROM audit.chain c LEFT JOIN audit.log l ON {JOIN_LOG} \
             WHERE c.pos > $1 AND c.pos <= $2 ORDER BY c.pos",
            row_columns("l.")
        ))
        .bind(after)
        .bind(after + page)
        .fetch_all(pool)
        .await?;
        after += page;
        for r in &rows {
            let pos: i64 = r.get("pos");
            let chain_seq: i64 = r.get("chain_seq");
            let stored_prev: Vec<u8> = r.get("prev_hash");
            let stored_hash: Vec<u8> = r.get("hash");
            if let Some(lp) = last_pos
                && pos != lp + 1
            {
                v.problem(format!(
                    "chain positions {} to {} are missing",
                    lp + 1,
                    pos - 1
                ));
            }
            last_pos = Some(pos);
            let expected_prev = prev_hash.clone().unwrap_or_else(|| {
                if pos == 1 {
                    GENESIS.to_vec()
                } else {
                    stored_prev.clone()
                }
            });
            prev_hash = Some(stored_hash.clone());
            if stored_prev != expected_prev {
                v.problem(format!(
                    "position {pos} (seq {chain_seq}): link to the previous entry is broken"
                ));
            }
            if !r.get::<bool, _>("present") {
                v.problem(format!(
                    "position {pos}: entry seq {chain_seq} was deleted from the log"
                ));
                continue;
            }
            let row = AuditRow::from_row(r)?;
            let in_window = from.is_none_or(|f| row.at >= f) && to.is_none_or(|t| row.at < t);
            if in_window {
                v.entries_checked += 1;
                if link(&stored_prev, &row).as_slice() != stored_hash.as_slice() {
                    v.problem(format!("position {pos}: entry seq {} was altered", row.seq));
                }
                if let Some(latest) = latest_at
                    && (latest - row.at).num_seconds() > BACKDATING_TOLERANCE_SECS
                {
                    v.problem(format!(
                        "position {pos}: entry seq {} is dated {} but was sealed after entries of {} (backdated?)",
                        row.seq, row.at, latest
                    ));
                }
            }
            latest_at = Some(latest_at.map_or(row.at, |l| l.max(row.at)));
        }
    }
    progress.end();
    // Entries the sealer has passed (txid below its horizon) but that are not
    // in the chain: inserted behind the log's back. Incrementally, those of
    // transactions since the starting checkpoint's last entry's (by the
    // log's index: a day's entries, not the month's partition; an entry
    // given an old transaction id by hand is the full verification's to
    // find).
    let since_txid: Option<i64> = match since {
        Some(c) => {
            sqlx::query_scalar("SELECT txid FROM audit.chain WHERE pos = $1")
                .bind(c.pos)
                .fetch_optional(pool)
                .await?
        }
        None => None,
    };
    let recent = since_txid.map_or(String::new(), |t| format!("AND l.txid >= {t} "));
    let orphans: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(&format!(
        "SELECT l.seq, l.at FROM audit.log l, audit.sealer_state s \
         WHERE (l.txid < s.lo OR (s.hi IS NOT NULL AND l.txid < s.hi AND l.seq <= s.after_seq)) {recent}\
           AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq AND c.txid = l.txid) \
           AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid) \
           AND ($1::timestamptz IS NULL OR l.at >= $1) AND ($2::timestamptz IS NULL OR l.at < $2) \
         ORDER BY l.seq LIMIT 10"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    for (seq, at) in orphans {
        v.problem(format!(
            "entry seq {seq} ({at}) is in the log but not in the chain (inserted behind its back?)"
        ));
    }
    let quarantined: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, reason FROM audit.quarantine ORDER BY found_at LIMIT 10")
            .fetch_all(pool)
            .await?;
    for (seq, reason) in quarantined {
        v.problem(format!(
            "entry seq {seq} is quarantined ({reason}): inserted behind the log's back?"
        ));
    }
    // Incrementally, only the checkpoints after the starting one (there
    // is one per sealing round: years of them).
    let since_pos = since.map_or(0, |c| c.pos);
    let checkpoints: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT pos, hash, at, alg, key_id, signature FROM audit.checkpoints WHERE pos > $1 ORDER BY id",
    )
    .bind(since_pos)
    .fetch_all(pool)
    .await?;
    let mut stored = Vec::with_capacity(checkpoints.len());
    for (pos, hash, at, alg, key_id, signature) in checkpoints {
        v.checkpoints_checked += 1;
        stored.push(Checkpoint {
            pos,
            hash,
            at,
            alg,
            key_id: key_id as u32,
            signature,
        });
    }
    // HMAC checkpoints (under the keyring) predate migration 0009's Ed25519
    // ones. One after the first Ed25519 checkpoint was made by whoever holds
    // the keyring, not by the sealer: refused, whatever its MAC says.
    let first_signed: Option<i64> =
        sqlx::query_scalar("SELECT min(pos) FROM audit.checkpoints WHERE alg = $1")
            .bind(ALG_ED25519)
            .fetch_one(pool)
            .await?;
    for c in stored.iter().filter(|c| c.pos > since_pos) {
        if c.alg == ALG_HMAC && first_signed.is_some_and(|p| c.pos >= p) {
            v.problem(format!(
                "checkpoint at position {} is an HMAC checkpoint made after the Ed25519 ones began \
                 (at position {}): only the keyring's holder could have made it",
                c.pos,
                first_signed.unwrap_or_default()
            ));
            continue;
        }
        check_against_chain(pool, keys, c, head, "checkpoint", &mut v).await?;
    }
    for c in anchor
        .unwrap_or_default()
        .iter()
        .filter(|c| c.pos > since_pos)
    {
        v.anchored_checked += 1;
        check_against_chain(pool, keys, c, head, "anchored checkpoint", &mut v).await?;
    }
    Ok(v)
}

async fn check_against_chain(
    pool: &PgPool,
    keys: VerifyKeys<'_>,
    c: &Checkpoint,
    head: i64,
    what: &str,
    v: &mut Verification,
) -> anyhow::Result<()> {
    let pos = c.pos;
    if !verify_checkpoint(keys, c) {
        if c.alg == ALG_HMAC && keys.keyring.is_none() {
            v.problem(format!(
                "{what} at position {pos} is an HMAC checkpoint (before migration 0009): verifying it needs the keyring"
            ));
        } else {
            v.problem(format!("{what} at position {pos} has a bad signature"));
        }
        return Ok(());
    }
    if pos > head {
        v.problem(format!(
            "{what} at position {pos} is past the chain's end at {head} (its tail was cut)"
        ));
        return Ok(());
    }
    let chained: Option<(Vec<u8>, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
        "SELECT c.hash, l.at FROM audit.chain c LEFT JOIN audit.log l ON {JOIN_LOG} WHERE c.pos = $1"
    ))
    .bind(pos)
    .fetch_optional(pool)
    .await?;
    match chained {
        Some((hash, _)) if hash != c.hash => {
            v.problem(format!("{what} at position {pos} does not match the chain"));
        }
        // Signed before the entry it covers was written: dated back, to
        // pass under a key that had stopped signing by then?
        Some((_, Some(entry_at))) if (entry_at - c.at).num_seconds() > CLOCK_SKEW_SECS => {
            v.problem(format!(
                "{what} at position {pos} is dated {} but covers an entry of {entry_at} (backdated?)",
                c.at
            ));
        }
        None => v.problem(format!("{what} at position {pos} does not match the chain")),
        _ => {}
    }
    Ok(())
}
