//! The hash chain over audit entries, its sealer, signed checkpoints, and
//! verification. An operator subsystem: its SQL lives here (ARCHITECTURE.md).
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(entry n))`, in sealing order
//! (which follows commit order: an entry is sealed once every transaction
//! older than its own has finished). One sealer runs at a time across all
//! gateways: each round takes a transaction-level advisory lock, so the
//! request path never waits on the chain. The sealer connects as
//! `phi_sealer`, the only role that writes the chain, the checkpoints and
//! the quarantine.
//!
//! Checkpoints sign (position, hash, time) with the audit signing key
//! (Ed25519, `signing`): verifiable with the public key alone, and appended
//! to the anchor file when one is configured. Checkpoints made before
//! migration 0009 are HMACs under a key derived from the keyring's index
//! key (`hmac-sha256`), still verifiable by an operator holding the keyring.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgPool, Row};
use uuid::Uuid;

use super::anchor::Anchor;
use super::signing::{SigningKeys, VerifyingKeys};
use crate::crypto::Keyring;

const SEALER_LOCK: i64 = 0x7068_695f_6175_6474; // "phi_audt"
pub const GENESIS: [u8; 32] = [0u8; 32];
/// An entry sealed after one more than this much older than an entry
/// sealed before it was probably inserted with a false time.
pub const BACKDATING_TOLERANCE_SECS: i64 = 300;
/// How far apart two machines' clocks may be (the sealer's, which dates a
/// checkpoint, and the database's, which dates an entry).
pub const CLOCK_SKEW_SECS: i64 = 60;
pub const ALG_ED25519: &str = "ed25519";
pub const ALG_HMAC: &str = "hmac-sha256";

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_user: Option<String>,
    pub actor_collection: Option<String>,
    pub actor_roles: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// JSON text the service or a trigger wrote; exported as the JSON
    /// object it holds (`detail_json`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "detail_json")]
    pub detail: Option<String>,
}

/// An entry's `detail` in an export: the JSON object its text holds, when
/// the text is that object's canonical form (keys in byte order, no
/// spaces: what the service and, since migration 0015, the triggers write),
/// so a reader gets an object and a verifier gets the exact text back for
/// the hash. Text in any other form (entries written before 0015) is
/// exported as the string it is.
pub mod detail_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(d: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        let Some(text) = d else {
            return s.serialize_none();
        };
        match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Object(_) | Value::Array(_)))
                if serde_json::to_string(&v).is_ok_and(|c| c == *text) =>
            {
                v.serialize(s)
            }
            _ => s.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(v) => Some(serde_json::to_string(&v).map_err(serde::de::Error::custom)?),
        })
    }
}

const ROW_COLUMNS: [&str; 16] = [
    "seq",
    "at",
    "actor_user",
    "actor_collection",
    "actor_roles",
    "api_key_id",
    "action",
    "entity_type",
    "entity_id",
    "request_id",
    "client_addr",
    "outcome",
    "reason",
    "fields",
    "client_request_id",
    "detail",
];

/// The select list of an `AuditRow`, each column qualified with `table`
/// (e.g. "l."), `action` (an enum) read as its text.
pub fn row_columns(table: &str) -> String {
    ROW_COLUMNS
        .iter()
        .map(|c| match *c {
            "action" => format!("{table}action::text AS action"),
            c => format!("{table}{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the chain finds an entry: both keys of the log's one index.
pub const JOIN_LOG: &str = "l.txid = c.txid AND l.seq = c.seq";

fn put(out: &mut Vec<u8>, tag: u8, value: Option<&[u8]>) {
    out.push(tag);
    match value {
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        Some(v) => {
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
    }
}

/// A canonical, unambiguous encoding: every field tagged and length-prefixed
/// (absent distinct from empty), times in UTC microseconds. Fields added
/// after v1 (16, 17) are encoded only when present, so entries written
/// before them hash as they always did.
pub fn canonical(r: &AuditRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"phi-gateway/audit/v1");
    put(&mut out, 1, Some(&r.seq.to_be_bytes()));
    put(
        &mut out,
        2,
        Some(r.at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes()),
    );
    put(&mut out, 3, r.actor_user.as_deref().map(str::as_bytes));
    put(
        &mut out,
        4,
        r.actor_collection.as_deref().map(str::as_bytes),
    );
    put(&mut out, 5, r.actor_roles.as_deref().map(str::as_bytes));
    put(
        &mut out,
        6,
        r.api_key_id.as_ref().map(|u| u.as_bytes().as_slice()),
    );
    put(&mut out, 7, Some(r.action.as_bytes()));
    put(&mut out, 8, Some(r.entity_type.as_bytes()));
    put(&mut out, 9, r.entity_id.as_deref().map(str::as_bytes));
    put(&mut out, 10, r.request_id.as_deref().map(str::as_bytes));
    put(&mut out, 11, r.client_addr.as_deref().map(str::as_bytes));
    put(&mut out, 12, Some(r.outcome.as_bytes()));
    put(&mut out, 13, r.reason.as_deref().map(str::as_bytes));
    out.push(14);
    out.extend_from_slice(&(r.fields.len() as u32).to_be_bytes());
    for f in &r.fields {
        put(&mut out, 15, Some(f.as_bytes()));
    }
    if let Some(c) = &r.client_request_id {
        put(&mut out, 16, Some(c.as_bytes()));
    }
    if let Some(d) = &r.detail {
        put(&mut out, 17, Some(d.as_bytes()));
    }
    out
}

pub fn link(prev: &[u8], r: &AuditRow) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(r));
    h.finalize().into()
}

/// Seals up to `batch` committed entries, if no other sealer holds the lock.
/// Returns how many were sealed.
///
/// Entries are sealed once every transaction that could still add an entry
/// before them has finished: those whose `txid` is below the snapshot's
/// `xmin`. Each round takes the range `[lo, hi)` of transaction ids (`hi`
/// fixed when the range opens) and walks it in `seq` order; its progress is
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
        .bind(SEALER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(0);
    }
    let (lo, hi, after_seq): (i64, Option<i64>, i64) =
        sqlx::query_as("SELECT lo, hi, after_seq FROM audit.sealer_state")
            .fetch_one(&mut *tx)
            .await?;
    let hi = match hi {
        Some(h) => h,
        None => {
            let h: i64 =
                sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(&mut *tx)
                    .await?;
            if h <= lo {
                tx.commit().await?;
                return Ok(0);
            }
            h
        }
    };
    let rows: Vec<(i64, AuditRow)> = sqlx::query(&format!(
        "SELECT txid, {} FROM audit.log WHERE txid >= $1 AND txid < $2 AND seq > $3 ORDER BY seq LIMIT $4",
        row_columns("")
    ))
    .bind(lo)
    .bind(hi)
    .bind(after_seq)
    .bind(batch as i64)
    .try_map(|r: sqlx::postgres::PgRow| Ok((r.try_get("txid")?, AuditRow::from_row(&r)?)))
    .fetch_all(&mut *tx)
    .await?;
    if (rows.len() as i32) < batch {
        sqlx::query("UPDATE audit.sealer_state SET lo = $1, hi = NULL, after_seq = 0")
            .bind(hi)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query("UPDATE audit.sealer_state SET hi = $1, after_seq = $2")
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
        let unsealed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM audit.log l WHERE l.txid >= (SELECT lo FROM audit.sealer_state) \
             AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq) \
             AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid))",
        )
        .fetch_one(pool)
        .await?;
        if !unsealed || std::time::Instant::now() > deadline {
            return Ok(total);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Seals what can be sealed now (it may take a few ranges: one opened while
/// others were still running ends early).
pub async fn seal_available(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let mut total = 0;
    let mut idle_rounds = 0;
    loop {
        let n = seal_pending(pool, 5000).await?;
        total += n;
        if n == 0 {
            idle_rounds += 1;
            if idle_rounds >= 2 {
                return Ok(total);
            }
        } else {
            idle_rounds = 0;
        }
    }
}

/// The chain's last position (0 while empty).
pub async fn head(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(pos), 0) FROM audit.chain")
        .fetch_one(pool)
        .await
}

/// A signed head of the chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub pos: i64,
    #[serde(with = "hex")]
    pub hash: Vec<u8>,
    pub at: DateTime<Utc>,
    #[serde(default = "legacy_alg")]
    pub alg: String,
    pub key_id: u32,
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
}

fn legacy_alg() -> String {
    ALG_HMAC.into()
}

pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 15) as usize] as char);
        }
        s
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

/// What a checkpoint signs: (position, hash, time), domain-separated by
/// scheme.
pub fn checkpoint_message(alg: &str, pos: i64, hash: &[u8], at: &DateTime<Utc>) -> Vec<u8> {
    let mut m = if alg == ALG_HMAC {
        b"phi-gateway/audit-checkpoint/v1".to_vec()
    } else {
        b"phi-gateway/audit-checkpoint/v2/ed25519".to_vec()
    };
    m.extend_from_slice(&pos.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
    m
}

/// The keys a verification may use: the public signing keys (what an
/// auditor holds) and, for checkpoints made before 0009, the keyring.
#[derive(Clone, Copy, Default)]
pub struct VerifyKeys<'a> {
    pub public: Option<&'a VerifyingKeys>,
    pub keyring: Option<&'a Keyring>,
}

pub fn verify_checkpoint(keys: VerifyKeys<'_>, c: &Checkpoint) -> bool {
    let msg = checkpoint_message(&c.alg, c.pos, &c.hash, &c.at);
    match c.alg.as_str() {
        ALG_ED25519 => keys
            .public
            .is_some_and(|p| p.verify(c.key_id, &msg, &c.signature, c.at)),
        ALG_HMAC => keys.keyring.is_some_and(|ring| {
            ring.checkpoint_key(c.key_id).is_some_and(|key| {
                let mut mac =
                    <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref()).expect("any length");
                mac.update(&msg);
                mac.verify_slice(&c.signature).is_ok()
            })
        }),
        _ => false,
    }
}

/// Signs a checkpoint of (pos, hash) now.
pub fn sign_checkpoint(signing: &SigningKeys, pos: i64, hash: Vec<u8>) -> Checkpoint {
    // Microsecond precision, as stored.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let (key_id, sig) = signing.sign(&checkpoint_message(ALG_ED25519, pos, &hash, &at));
    Checkpoint {
        pos,
        hash,
        at,
        alg: ALG_ED25519.into(),
        key_id,
        signature: sig.to_vec(),
    }
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
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT pos, hash FROM audit.chain ORDER BY pos DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        let Some((pos, hash)) = head else {
            return Ok(None);
        };
        let c = sign_checkpoint(&self.signing, pos, hash);
        sqlx::query(
            "INSERT INTO audit.checkpoints (pos, hash, at, alg, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.pos)
        .bind(&c.hash)
        .bind(c.at)
        .bind(&c.alg)
        .bind(c.key_id as i32)
        .bind(&c.signature)
        .execute(&self.pool)
        .await?;
        if let Some(a) = &self.anchor {
            a.append(&c)?;
        }
        Ok(Some(c))
    }

    /// The background sealer: seals every `interval`, signs a checkpoint
    /// every `checkpoint_every` rounds when the head moved, and keeps
    /// monthly partitions three months ahead.
    pub fn spawn(self, interval: std::time::Duration, checkpoint_every: u64) {
        tokio::spawn(crate::store::with_prepared(async move {
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
                    if let Err(e) = sqlx::query("SELECT audit.ensure_partitions(3)")
                        .execute(&self.pool)
                        .await
                    {
                        tracing::warn!(error = %e, "audit partition upkeep failed");
                    }
                    let head: Option<i64> = sqlx::query_scalar("SELECT max(pos) FROM audit.chain")
                        .fetch_one(&self.pool)
                        .await
                        .unwrap_or(None);
                    if head.is_some_and(|h| h > last_signed) {
                        match self.checkpoint().await {
                            Ok(Some(c)) => last_signed = c.pos,
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "audit checkpoint failed"),
                        }
                    }
                }
            }
        }));
    }
}

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
    let mut v = Verification::default();
    let mut last_pos: Option<i64> = None;
    let mut prev_hash: Option<Vec<u8>> = None;
    let mut latest_at: Option<DateTime<Utc>> = None;
    // Small enough that the planner joins by the log's index, never by a
    // hash of the whole remaining log.
    let page = 2_000i64;
    let mut after = 0i64;
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
    while after < head {
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
    // Entries the sealer has passed (txid below its horizon) but that are not
    // in the chain: inserted behind the log's back.
    let orphans: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT l.seq, l.at FROM audit.log l, audit.sealer_state s \
         WHERE (l.txid < s.lo OR (s.hi IS NOT NULL AND l.txid < s.hi AND l.seq <= s.after_seq)) \
           AND NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq AND c.txid = l.txid) \
           AND NOT EXISTS (SELECT 1 FROM audit.quarantine q WHERE q.seq = l.seq AND q.txid = l.txid) \
           AND ($1::timestamptz IS NULL OR l.at >= $1) AND ($2::timestamptz IS NULL OR l.at < $2) \
         ORDER BY l.seq LIMIT 10",
    )
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
    let checkpoints: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT pos, hash, at, alg, key_id, signature FROM audit.checkpoints ORDER BY id",
    )
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
    let first_signed = stored
        .iter()
        .filter(|c| c.alg == ALG_ED25519)
        .map(|c| c.pos)
        .min();
    for c in &stored {
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
    for c in anchor.unwrap_or_default() {
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
