//! Key status and online re-encryption.
//!
//! Both walk every sealed column, so they connect as an operator role that
//! sees every row (the migration URL), never as `phi_app`. Re-encryption opens
//! each value in process and re-seals it under the active key; plaintext never
//! reaches SQL or the log.
//!
//! `reencrypt` walks each table by primary key in batches of `BATCH` rows and
//! updates each column with a compare-and-swap (`SET col = CASE WHEN col IS
//! NOT DISTINCT FROM $old THEN $new ELSE col END`), so it is safe beside live
//! traffic (a column changed meanwhile was written under the active key) and
//! can be interrupted and run again: it only touches values not yet under the
//! active keys.

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::crypto::blind_index::normalise_email;
use crate::crypto::{Keyring, Place, Purpose, SealedField};
use crate::progress::Progress;
use crate::schema::{self, Collection};

pub const BATCH: i64 = 1000;

/// The collections with sealed columns, from their one description.
pub fn sealed_collections() -> impl Iterator<Item = &'static Collection> {
    schema::ALL.iter().copied().filter(|c| !c.sealed.is_empty())
}

/// Rows per key version, per `table.column`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub data: BTreeMap<String, BTreeMap<u32, i64>>,
    pub index: BTreeMap<String, BTreeMap<u32, i64>>,
}

impl KeyUsage {
    /// Values under key `id` of `purpose`, over every column of it.
    pub fn rows_under(&self, purpose: Purpose, id: u32) -> i64 {
        let columns = match purpose {
            Purpose::Data => &self.data,
            Purpose::Index => &self.index,
        };
        columns.values().filter_map(|m| m.get(&id)).sum()
    }
}

/// Retires key version `id` of `purpose` in `keyring` (written back by the
/// caller), once the database says no value uses it: a retired key opens
/// nothing, so retiring one still in use would lose those values. API-key
/// hashes cannot be re-indexed (their secrets are not kept): an index key
/// they use stays until those keys are revoked.
pub async fn retire(
    pool: &PgPool,
    keyring: &mut Keyring,
    purpose: Purpose,
    id: u32,
) -> anyhow::Result<()> {
    let usage = usage(pool).await?;
    let left = usage.rows_under(purpose, id);
    if left > 0 {
        let api_keys = usage
            .index
            .get("api_keys.key_hash")
            .and_then(|m| m.get(&id))
            .copied()
            .unwrap_or(0);
        if purpose == Purpose::Index && api_keys > 0 {
            anyhow::bail!(
                "{left} values still use index key {id}, {api_keys} of them API-key hashes \
                 (which cannot be re-indexed: issue new keys and revoke the old ones first); \
                 run `phi-gateway reencrypt` for the rest"
            );
        }
        anyhow::bail!("{left} values still use version {id}; run `phi-gateway reencrypt` first");
    }
    keyring.retire(purpose, id)
}

fn key_id_of(prefix: &[u8]) -> u32 {
    match prefix {
        [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Values per key version in every sealed and blind-index column the
/// collections declare (API-key hashes and analytics fact keys included:
/// an index key they use cannot be retired).
pub async fn usage(pool: &PgPool) -> anyhow::Result<KeyUsage> {
    let mut out = KeyUsage::default();
    for t in schema::ALL {
        for col in t.sealed {
            // Bytes 3..6 of the envelope are the key id (format, alg first).
            let rows = sqlx::query(&format!(
                "SELECT substring({col} from 3 for 4) AS k, count(*) AS n FROM {table} \
                 WHERE {col} IS NOT NULL GROUP BY 1",
                table = t.table
            ))
            .fetch_all(pool)
            .await
            .with_context(|| format!("counting {}.{col}", t.table))?;
            let m = out.data.entry(format!("{}.{col}", t.table)).or_default();
            for r in rows {
                m.insert(key_id_of(&r.get::<Vec<u8>, _>("k")), r.get("n"));
            }
        }
        for b in t.blind {
            let col = b.column;
            let rows = sqlx::query(&format!(
                "SELECT substring({col} from 1 for 4) AS k, count(*) AS n FROM {table} \
                 WHERE {col} IS NOT NULL GROUP BY 1",
                table = t.table
            ))
            .fetch_all(pool)
            .await
            .with_context(|| format!("counting {}.{col}", t.table))?;
            let m = out.index.entry(format!("{}.{col}", t.table)).or_default();
            for r in rows {
                m.insert(key_id_of(&r.get::<Vec<u8>, _>("k")), r.get("n"));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Rows looked at.
    pub scanned: u64,
    /// Rows whose values were (or, in a dry run, would be) re-sealed.
    pub rewritten: u64,
    /// Rows changed or deleted by someone else between read and write; the
    /// columns they changed keep their new (already current) values.
    pub raced: u64,
    /// Submissions from before migration 0008 given their facts (and their
    /// region sealed).
    pub facts_written: u64,
    /// Of those, free-text regions that are not ISO 3166 codes: left in
    /// `region_legacy` until their owner sets a code.
    pub legacy_regions_kept: u64,
}

/// One column's compare-and-swap: (column, old value, new value).
type Swap = (&'static str, Option<Vec<u8>>, Option<Vec<u8>>);

/// Re-seals every value not under the active data key, and recomputes every
/// blind index not under the active index key.
pub async fn reencrypt(
    pool: &PgPool,
    keyring: &Keyring,
    dry_run: bool,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let active = keyring.active_key_id();
    let active_index = keyring
        .versions(Purpose::Index)
        .into_iter()
        .find(|(_, s)| *s == crate::crypto::KeyState::Active)
        .map(|(id, _)| id)
        .context("no active index key")?;
    let mut total = 0u64;
    for t in sealed_collections() {
        total += sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {}", t.table))
            .fetch_one(pool)
            .await? as u64;
    }
    progress.begin("re-sealing", total);
    for t in sealed_collections() {
        let cols: Vec<&str> = t
            .sealed
            .iter()
            .copied()
            .chain(t.blind.iter().map(|b| b.column))
            .collect();
        let select = format!(
            "SELECT id, {} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
            cols.join(", "),
            t.table
        );
        let mut last = Uuid::nil();
        loop {
            let rows = sqlx::query(&select)
                .bind(last)
                .bind(BATCH)
                .fetch_all(pool)
                .await?;
            let Some(tail) = rows.last() else { break };
            last = tail.get("id");
            let mut tx = pool.begin().await?;
            // The audit triggers record each rewritten row as KEY_ROTATION
            // (app.operation counts only outside the service's role).
            sqlx::query(
                "SELECT set_config('app.user_id', 'operator:reencrypt', true), \
                        set_config('app.operation', 'reencrypt', true)",
            )
            .execute(&mut *tx)
            .await?;
            for row in &rows {
                report.scanned += 1;
                let id: Uuid = row.get("id");
                let mut sets: Vec<Swap> = Vec::new();
                let mut opened: BTreeMap<&str, crate::crypto::Plaintext> = BTreeMap::new();
                for col in t.sealed {
                    let Some(bytes) = row.get::<Option<Vec<u8>>, _>(*col) else {
                        continue;
                    };
                    let sealed = SealedField::from_bytes(bytes.clone());
                    let place = Place::new(t.table, col, id);
                    let needs_reseal = sealed.key_id().map(|k| k != active).unwrap_or(true);
                    let needs_plain = needs_reseal
                        || t.blind.iter().any(|b| {
                            b.source == *col
                                && row
                                    .get::<Option<Vec<u8>>, _>(b.column)
                                    .map(|v| key_id_of(&v[..4.min(v.len())]) != active_index)
                                    .unwrap_or(true)
                        });
                    if !needs_plain {
                        continue;
                    }
                    let plain = keyring.open(&sealed, &place).with_context(|| {
                        format!(
                            "opening {}.{col} of row {id} (the value is left as it is)",
                            t.table
                        )
                    })?;
                    if needs_reseal {
                        let fresh = keyring.seal(&plain, &place)?;
                        sets.push((col, Some(bytes), Some(fresh.into_bytes())));
                    }
                    opened.insert(col, plain);
                }
                for b in t.blind {
                    let (bcol, src) = (b.column, b.source);
                    let Some(plain) = opened.get(src) else {
                        continue;
                    };
                    let old: Option<Vec<u8>> = row.get(bcol);
                    if old.as_deref().map(|v| key_id_of(&v[..4.min(v.len())])) == Some(active_index)
                    {
                        continue;
                    }
                    let text = std::str::from_utf8(plain).context("sealed email is not UTF-8")?;
                    let fresh = keyring
                        .blind_index(t.table, src, &normalise_email(text))
                        .as_bytes()
                        .to_vec();
                    sets.push((bcol, old, Some(fresh)));
                }
                if t.table == schema::SUBMISSIONS.table && !dry_run {
                    rekey_facts(&mut tx, keyring, id, active_index).await?;
                }
                if sets.is_empty() {
                    continue;
                }
                report.rewritten += 1;
                if dry_run {
                    continue;
                }
                // Per-column compare-and-swap: a column changed since it was
                // read keeps its (newer, already current) value, while the
                // row's other columns are still moved. Under READ COMMITTED
                // the SET list is evaluated on the newest row version.
                let mut sql = format!("UPDATE {} SET ", t.table);
                for (i, (col, _, _)) in sets.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "{col} = CASE WHEN {col} IS NOT DISTINCT FROM ${old} THEN ${new} ELSE {col} END",
                        new = i * 2 + 2,
                        old = i * 2 + 3
                    ));
                }
                sql.push_str(" WHERE id = $1 RETURNING ");
                for (i, (col, _, _)) in sets.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(" AND ");
                    }
                    sql.push_str(&format!("{col} IS NOT DISTINCT FROM ${}", i * 2 + 2));
                }
                let mut q = sqlx::query_scalar::<_, bool>(&sql).bind(id);
                for (_, old, new) in &sets {
                    q = q.bind(new.clone()).bind(old.clone());
                }
                // None: the row was deleted meanwhile; false: some column was
                // rewritten meanwhile (under the active key).
                if q.fetch_optional(&mut *tx).await? != Some(true) {
                    report.raced += 1;
                }
            }
            tx.commit().await?;
            progress.at(report.scanned);
        }
    }
    progress.end();
    if !dry_run {
        legacy_facts(pool, keyring, &mut report).await?;
    }
    Ok(report)
}

/// Moves a submission's facts key to the active index key.
async fn rekey_facts(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keyring: &Keyring,
    id: Uuid,
    active_index: u32,
) -> anyhow::Result<()> {
    let s = id.to_string();
    let table = schema::SUBMISSION_FACTS.table;
    let fresh = keyring.blind_index(table, "submission", &s);
    let old: Vec<Vec<u8>> = keyring
        .blind_index_candidates(table, "submission", &s)
        .into_iter()
        .filter(|b| b.key_id() != Some(active_index))
        .map(|b| b.as_bytes().to_vec())
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE submission_facts SET ref = $1 WHERE ref = ANY($2)")
        .bind(fresh.as_bytes())
        .bind(&old)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Submissions written before migration 0008 have no facts, and keep their
/// region in cleartext (`region_legacy`): write their facts, seal the
/// region when it is an ISO 3166 code, and clear the cleartext.
async fn legacy_facts(pool: &PgPool, keyring: &Keyring, report: &mut Report) -> anyhow::Result<()> {
    use crate::domain::region::Region;
    use crate::domain::submission::{Symptom, age_band, categories};
    loop {
        let rows = sqlx::query(
            "SELECT id, created_at, symptoms, date_of_birth, region_legacy FROM symptom_submissions \
             WHERE needs_facts ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "SELECT set_config('app.user_id', 'operator:reencrypt', true), \
                    set_config('app.operation', 'reencrypt', true)",
        )
        .execute(&mut *tx)
        .await?;
        for row in &rows {
            let id: Uuid = row.get("id");
            let created_at: chrono::DateTime<chrono::Utc> = row.get("created_at");
            let place = |c| Place::new("symptom_submissions", c, id);
            let opened = keyring.open(
                &SealedField::from_bytes(row.get("symptoms")),
                &place("symptoms"),
            )?;
            let symptoms: Vec<Symptom> = serde_json::from_slice(&opened)
                .context("sealed symptoms are not the expected JSON")?;
            let dob = row
                .get::<Option<Vec<u8>>, _>("date_of_birth")
                .map(|b| keyring.open(&SealedField::from_bytes(b), &place("date_of_birth")))
                .transpose()?
                .and_then(|p| crate::domain::time::date(std::str::from_utf8(&p).ok()?));
            let legacy: Option<String> = row.get("region_legacy");
            let region = legacy.as_deref().and_then(Region::parse);
            let keep_legacy = legacy.is_some() && region.is_none();
            let sealed_region = region
                .map(|r| keyring.seal(r.as_str().as_bytes(), &place("region")))
                .transpose()?;
            let key = keyring.blind_index("submission_facts", "submission", &id.to_string());
            sqlx::query(
                "WITH f AS (INSERT INTO submission_facts (ref, week, region, age_band, categories) \
                 VALUES ($2, date_trunc('week', $3::timestamptz AT TIME ZONE 'UTC')::date, $4, $5, $6) \
                 ON CONFLICT (ref) DO NOTHING) \
                 UPDATE symptom_submissions SET needs_facts = false, \
                   region = coalesce($7, region), \
                   region_legacy = CASE WHEN $8 THEN region_legacy ELSE NULL END \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(key.as_bytes())
            .bind(created_at)
            .bind(region.map(|r| r.as_str()).unwrap_or("unknown"))
            .bind(
                dob.map(|d| age_band(d, chrono::Utc::now().date_naive()))
                    .unwrap_or_else(|| "unknown".into()),
            )
            .bind(categories(&symptoms))
            .bind(sealed_region.map(SealedField::into_bytes))
            .bind(keep_legacy)
            .execute(&mut *tx)
            .await?;
            report.facts_written += 1;
            report.legacy_regions_kept += keep_legacy as u64;
        }
        tx.commit().await?;
    }
}
