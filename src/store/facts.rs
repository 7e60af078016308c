//! SQL for `submission_facts`: the de-identified facts of each submission
//! (week, region, age band, categories), keyed by a blind index of the
//! submission's id, with no owner and no submission id beside them.

use super::{Result, Tx};

/// A submission's facts, ready to store.
pub struct Facts {
    /// The blind index of the submission's id under the active index key.
    pub key: Vec<u8>,
    /// Its blind indexes under every live index key (to replace old rows).
    pub keys: Vec<Vec<u8>>,
    pub region: String,
    pub age_band: String,
    pub categories: Vec<String>,
}

/// Replaces the facts of one submission (written in the week it was
/// created), under whichever live index key they were stored. The new
/// values are set from the parameters, not `EXCLUDED`: reading `EXCLUDED`
/// needs SELECT on those columns, and the service's role reads no facts
/// back (it may update them, migration 0012).
pub async fn replace(
    tx: &mut Tx,
    created_at: chrono::DateTime<chrono::Utc>,
    f: &Facts,
) -> Result<()> {
    tx.q(
        "WITH gone AS (DELETE FROM submission_facts WHERE ref = ANY($1) AND ref <> $2) \
       INSERT INTO submission_facts (ref, week, region, age_band, categories) \
       VALUES ($2, date_trunc('week', $3::timestamptz AT TIME ZONE 'UTC')::date, $4, $5, $6) \
       ON CONFLICT (ref) DO UPDATE SET region = $4, age_band = $5, categories = $6",
    )
    .bind(&f.keys)
    .bind(&f.key)
    .bind(created_at)
    .bind(&f.region)
    .bind(&f.age_band)
    .bind(&f.categories)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
