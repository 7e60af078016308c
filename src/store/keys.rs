//! SQL for `key_checks`: each key version's check value, recorded the
//! first time the database meets it (migration 0013). Values that identify
//! keys, never keys.

use super::{Result, Tx};

/// Records the values not yet recorded (a value recorded already is kept,
/// whatever this keyring says) and returns every recorded one:
/// (purpose, key id, check value).
pub async fn record_and_read(
    tx: &mut Tx,
    checks: &[(&'static str, u32, String)],
) -> Result<Vec<(String, i32, String)>> {
    let purposes: Vec<&str> = checks.iter().map(|c| c.0).collect();
    let ids: Vec<i32> = checks.iter().map(|c| c.1 as i32).collect();
    let values: Vec<&str> = checks.iter().map(|c| c.2.as_str()).collect();
    tx.q("INSERT INTO key_checks (purpose, key_id, check_value) \
       SELECT * FROM UNNEST($1::text[], $2::int[], $3::text[]) ON CONFLICT DO NOTHING")
        .bind(&purposes)
        .bind(&ids)
        .bind(&values)
        .execute(&mut **tx)
        .await?;
    Ok(tx
        .q_as("SELECT purpose, key_id, check_value FROM key_checks ORDER BY 1, 2")
        .fetch_all(&mut **tx)
        .await?)
}
