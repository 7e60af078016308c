//! SQL for `import_runs` and `import_rows` (migration 0018): what an import
//! wrote, by source table and key, on the records' own transactions.

use serde_json::Value;
use uuid::Uuid;

use super::{Result, Tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub mapping_sha256: String,
    pub source: String,
    pub state: String,
    pub progress: Value,
    pub counts: Value,
}

/// The newest run of this mapping from this source not finished.
pub async fn unfinished(tx: &mut Tx, mapping_sha256: &str, source: &str) -> Result<Option<RunRow>> {
    Ok(tx
        .q_as(
            "SELECT id, mapping_sha256, source, state, progress, counts FROM import_runs \
             WHERE mapping_sha256 = $1 AND source = $2 AND state IN ('running', 'stopped') \
             ORDER BY started_at DESC LIMIT 1",
        )
        .bind(mapping_sha256)
        .bind(source)
        .fetch_optional(&mut **tx)
        .await?)
}

pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<RunRow>> {
    Ok(tx
        .q_as("SELECT id, mapping_sha256, source, state, progress, counts FROM import_runs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

pub async fn start(tx: &mut Tx, id: Uuid, mapping_sha256: &str, source: &str) -> Result<()> {
    tx.q("INSERT INTO import_runs (id, mapping_sha256, source) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(mapping_sha256)
        .bind(source)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Saves how far a table has got and the counts, and the run's state.
pub async fn save(
    tx: &mut Tx,
    id: Uuid,
    progress: &Value,
    counts: &Value,
    state: &str,
) -> Result<()> {
    tx.q("UPDATE import_runs SET progress = $2, counts = $3, state = $4, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(progress)
        .bind(counts)
        .bind(state)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Which of these source keys were imported already (by any run).
pub async fn present(tx: &mut Tx, source_table: &str, keys: &[String]) -> Result<Vec<String>> {
    Ok(tx
        .q_scalar(
            "SELECT source_key FROM import_rows WHERE source_table = $1 AND source_key = ANY($2)",
        )
        .bind(source_table)
        .bind(keys)
        .fetch_all(&mut **tx)
        .await?)
}

/// Records what a batch wrote (one statement).
pub async fn record(
    tx: &mut Tx,
    run: Uuid,
    source_table: &str,
    collection: &str,
    rows: &[(String, Uuid)],
) -> Result<()> {
    let (keys, ids): (Vec<String>, Vec<Uuid>) = rows.iter().cloned().unzip();
    tx.q(
        "INSERT INTO import_rows (run_id, source_table, source_key, collection, target_id) \
         SELECT $1, $2, k, $3, i FROM unnest($4::text[], $5::uuid[]) AS x(k, i)",
    )
    .bind(run)
    .bind(source_table)
    .bind(collection)
    .bind(&keys)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A run's records: (source table, source key, collection, id).
pub async fn rows_of(tx: &mut Tx, run: Uuid) -> Result<Vec<(String, String, String, Uuid)>> {
    Ok(tx
        .q_as(
            "SELECT source_table, source_key, collection, target_id FROM import_rows \
             WHERE run_id = $1 ORDER BY source_table, source_key",
        )
        .bind(run)
        .fetch_all(&mut **tx)
        .await?)
}

/// The ids of a run's records in `table` changed since they were imported
/// (updated, or shared by a consent), at most 10.
pub async fn changed_since(tx: &mut Tx, run: Uuid, table: &str) -> Result<Vec<Uuid>> {
    let consents = if table == "symptom_submissions" {
        " OR EXISTS (SELECT 1 FROM consents k WHERE k.submission_id = t.id)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT t.id FROM import_rows r JOIN {table} t ON t.id = r.target_id \
         WHERE r.run_id = $1 AND (t.updated_at > r.imported_at{consents}) LIMIT 10"
    );
    Ok(tx.q_scalar(&sql).bind(run).fetch_all(&mut **tx).await?)
}

/// Forgets a run's import rows (once its records are deleted).
pub async fn forget(tx: &mut Tx, run: Uuid) -> Result<u64> {
    Ok(tx
        .q("DELETE FROM import_rows WHERE run_id = $1")
        .bind(run)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}
