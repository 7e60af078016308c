//! SQL for `api_keys`: the request path's lookup (through a SECURITY
//! DEFINER function: the service's role cannot read the table), and the
//! operator's create, list and revoke.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx};

/// A key's record, never its secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The live key whose hash is one of `hashes`: (id, role).
pub async fn lookup(tx: &mut Tx, hashes: &[Vec<u8>]) -> Result<Option<(Uuid, String)>> {
    let row: Option<(Uuid, String, String)> = tx
        .q_as("SELECT id, name, role FROM api_key_lookup($1)")
        .bind(hashes)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|(id, _, role)| (id, role)))
}

pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    name: &str,
    role: &str,
    hash: &[u8],
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    tx.q("INSERT INTO api_keys (id, name, role, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(name)
        .bind(role)
        .bind(hash)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn list(tx: &mut Tx) -> Result<Vec<ApiKeyRow>> {
    Ok(tx.q_as(
        "SELECT id, name, role, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at",
    )
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn revoke(tx: &mut Tx, id: Uuid) -> Result<bool> {
    let done = tx
        .q("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}
