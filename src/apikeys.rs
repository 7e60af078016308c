//! Service API keys: made and revoked by operators (`phi-gateway apikeys`),
//! presented by machines as `Authorization: <collection> API-Key <key>`.
//!
//! A key is 32 random bytes shown once (`phk_` + base64url). Only its keyed
//! hash is stored: the blind-index construction over ("api_keys", "key"), so
//! it is never an encryption key and lookups work across index key
//! rotations (`keys retire --index` refuses while a live key needs the old
//! index key). Creation and revocation are audited.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::audit::{self, Action, Entry};
use crate::crypto::Keyring;
use crate::identity::{Principal, Role};
use crate::store::{Db, StoreError, api_keys};

pub use crate::store::api_keys::ApiKeyRow as ApiKey;

const PREFIX: &str = "phk_";

/// The request path's lookup, as its own piece of app state.
pub struct ApiKeys {
    db: Db,
    keyring: Arc<crate::crypto::KeyringHandle>,
}

impl ApiKeys {
    pub fn new(db: Db, keyring: Arc<crate::crypto::KeyringHandle>) -> Self {
        Self { db, keyring }
    }

    /// The live key a secret belongs to: (id, role). Expired, revoked and
    /// unknown keys are all `None`.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(Uuid, Role)>, StoreError> {
        if !secret.starts_with(PREFIX) || secret.len() > 100 {
            return Ok(None);
        }
        let candidates: Vec<Vec<u8>> = self
            .keyring
            .current()
            .blind_index_candidates("api_keys", "key", secret)
            .into_iter()
            .map(|b| b.as_bytes().to_vec())
            .collect();
        let mut tx = self.db.begin(&Principal::anonymous()).await?;
        let found = api_keys::lookup(&mut tx, &candidates).await?;
        tx.commit().await?;
        Ok(found.and_then(|(id, role)| {
            let role = match role.as_str() {
                "auditor" => Role::Auditor,
                "service" => Role::Service,
                _ => return None,
            };
            Some((id, role))
        }))
    }
}

fn operator() -> Principal {
    Principal::operator("apikeys", &[Role::Admin])
}

/// Makes a key; returns its id and the secret, which is not kept.
pub async fn create(
    db: &Db,
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
        !name.trim().is_empty() && name.len() <= 100 && crate::domain::json::clean_text(name),
        "a name of 1 to 100 characters, without control characters"
    );
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|_| anyhow::anyhow!("the OS RNG failed"))?;
    let secret = Zeroizing::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw.as_ref())));
    let hash = keyring.blind_index("api_keys", "key", &secret);
    let id = Uuid::now_v7();
    let mut tx = db.begin_plain().await?;
    api_keys::insert(
        &mut tx,
        id,
        name.trim(),
        role.as_str(),
        hash.as_bytes(),
        expires_at,
    )
    .await?;
    audit::record(
        &mut tx,
        &operator(),
        &[Entry::new(Action::Create, "api_keys", id).fields(vec!["role", "expiresAt"])],
    )
    .await?;
    tx.commit().await?;
    Ok((id, secret))
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<ApiKey>> {
    let mut tx = db.begin_plain().await?;
    let keys = api_keys::list(&mut tx).await?;
    tx.commit().await?;
    Ok(keys)
}

pub async fn revoke(db: &Db, id: Uuid) -> anyhow::Result<bool> {
    let mut tx = db.begin_plain().await?;
    let done = api_keys::revoke(&mut tx, id).await?;
    if done {
        audit::record(
            &mut tx,
            &operator(),
            &[Entry::new(Action::Update, "api_keys", id).fields(vec!["revokedAt"])],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}
