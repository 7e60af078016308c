//! Service API keys: made and revoked by operators (`phi-gateway apikeys`),
//! presented by machines as `Authorization: <collection> API-Key <key>`.
//!
//! A key is 32 random bytes shown once (`phk_` + base64url). Only its keyed
//! hash is stored: the blind-index construction over ("api_keys", "key"), so
//! it is never an encryption key and lookups work across index key
//! rotations (until the old index key is retired: then re-issue keys).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::auth::Role;
use crate::crypto::Keyring;

const PREFIX: &str = "phk_";

/// A key's record, never its secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Makes a key; returns its record and the secret, which is not kept.
pub async fn create(
    pool: &PgPool,
    keyring: &Keyring,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> anyhow::Result<(Uuid, Zeroizing<String>)> {
    anyhow::ensure!(
        matches!(role, Role::Service | Role::Auditor),
        "API keys are for the service and auditor roles"
    );
    anyhow::ensure!(
        !name.trim().is_empty() && name.len() <= 100,
        "a name of 1 to 100 characters"
    );
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|_| anyhow::anyhow!("the OS RNG failed"))?;
    let secret = Zeroizing::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw.as_ref())));
    let hash = keyring
        .blind_index("api_keys", "key", &secret)
        .as_bytes()
        .to_vec();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_keys (id, name, role, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name.trim())
    .bind(role.as_str())
    .bind(hash)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok((id, secret))
}

pub async fn list(pool: &PgPool) -> anyhow::Result<Vec<ApiKey>> {
    Ok(sqlx::query_as("SELECT id, name, role, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at")
        .fetch_all(pool)
        .await?)
}

pub async fn revoke(pool: &PgPool, id: Uuid) -> anyhow::Result<bool> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The live key a secret belongs to: (id, role). Expired, revoked and
/// unknown keys are all `None`.
pub async fn authenticate(
    pool: &PgPool,
    keyring: &Keyring,
    secret: &str,
) -> Result<Option<(Uuid, Role)>, sqlx::Error> {
    if !secret.starts_with(PREFIX) || secret.len() > 100 {
        return Ok(None);
    }
    let candidates: Vec<Vec<u8>> = keyring
        .blind_index_candidates("api_keys", "key", secret)
        .into_iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, name, role FROM api_key_lookup($1)")
            .bind(candidates)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(id, _, role)| {
        let role = match role.as_str() {
            "auditor" => Role::Auditor,
            "service" => Role::Service,
            _ => return None,
        };
        Some((id, role))
    }))
}
