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
use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::Context;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::crypto::blind_index::normalise_email;
use crate::crypto::{Keyring, Place, SealedField};

pub const BATCH: i64 = 1000;

/// A table's sealed columns, and its blind-index columns with the sealed
/// column each indexes.
pub struct SealedTable {
    pub table: &'static str,
    pub sealed: &'static [&'static str],
    pub blind: &'static [(&'static str, &'static str)],
}

pub const SEALED_TABLES: &[SealedTable] = &[
    SealedTable {
        table: "practitioners",
        sealed: &["email", "phone", "licence_number"],
        blind: &[("email_bidx", "email")],
    },
    SealedTable {
        table: "symptom_submissions",
        sealed: &["symptoms", "notes", "contact_email", "date_of_birth"],
        blind: &[("contact_email_bidx", "contact_email")],
    },
];

/// Rows per key version, per `table.column`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub data: BTreeMap<String, BTreeMap<u32, i64>>,
    pub index: BTreeMap<String, BTreeMap<u32, i64>>,
}

impl KeyUsage {
    /// Rows under data key `id`, over every sealed column.
    pub fn rows_under_data_key(&self, id: u32) -> i64 {
        self.data.values().filter_map(|m| m.get(&id)).sum()
    }
    pub fn rows_under_index_key(&self, id: u32) -> i64 {
        self.index.values().filter_map(|m| m.get(&id)).sum()
    }
}

fn key_id_of(prefix: &[u8]) -> u32 {
    match prefix {
        [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

pub async fn usage(pool: &PgPool) -> anyhow::Result<KeyUsage> {
    let mut out = KeyUsage::default();
    for t in SEALED_TABLES {
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
        for (col, _) in t.blind {
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
}

/// One column's compare-and-swap: (column, old value, new value).
type Swap = (&'static str, Option<Vec<u8>>, Option<Vec<u8>>);

/// Reports progress: a bar on a terminal, log lines otherwise.
pub struct Progress {
    started: Instant,
    total: u64,
    tty: bool,
}

impl Progress {
    pub fn new(total: u64) -> Self {
        Self {
            started: Instant::now(),
            total,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&self, what: &str, done: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total.saturating_sub(done)) as f64 / rate
        } else {
            0.0
        };
        if self.tty {
            let width = 30usize;
            let filled = if self.total == 0 {
                width
            } else {
                (done as usize * width / self.total as usize).min(width)
            };
            eprint!(
                "\r{what:<22} [{}{}] {done}/{} rows  {rate:>8.0}/s  ETA {eta:>5.0}s",
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!(
                what,
                done,
                total = self.total,
                rate = rate.round(),
                eta_secs = eta.round(),
                "progress"
            );
        }
    }

    pub fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Re-seals every value not under the active data key, and recomputes every
/// blind index not under the active index key.
pub async fn reencrypt(pool: &PgPool, keyring: &Keyring, dry_run: bool) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let active = keyring.active_key_id();
    let active_index = keyring
        .index_keys()
        .into_iter()
        .find(|(_, s)| *s == crate::crypto::KeyState::Active)
        .map(|(id, _)| id)
        .context("no active index key")?;
    let mut total = 0u64;
    for t in SEALED_TABLES {
        total += sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {}", t.table))
            .fetch_one(pool)
            .await? as u64;
    }
    let progress = Progress::new(total);
    for t in SEALED_TABLES {
        let cols: Vec<&str> = t
            .sealed
            .iter()
            .copied()
            .chain(t.blind.iter().map(|(b, _)| *b))
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
            // The audit triggers record each rewritten row as KEY_ROTATION.
            sqlx::query(
                "SELECT set_config('app.user_id', 'operator:reencrypt', true), \
                        set_config('app.reason', 'reencrypt', true)",
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
                        || t.blind.iter().any(|(b, src)| {
                            src == col
                                && row
                                    .get::<Option<Vec<u8>>, _>(*b)
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
                for (bcol, src) in t.blind {
                    let Some(plain) = opened.get(src) else {
                        continue;
                    };
                    let old: Option<Vec<u8>> = row.get(*bcol);
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
            progress.update(t.table, report.scanned);
        }
    }
    progress.finish();
    Ok(report)
}
