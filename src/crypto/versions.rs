//! One purpose's key versions. The keyring holds two sets (data keys, which
//! seal values, and index keys, which compute blind indexes and checkpoint
//! keys); their states and lifecycle (stage, activate, rotate, retire, the
//! one-active rule, wrapping, the file form) are written here once for both.

use aes_gcm::{Aes256Gcm, KeyInit};
use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use super::error::CryptoError;
use super::kek::{self, Kek, KeyBytes, Wrapped};

/// What a key version may still do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Seals new values (or computes new indexes) and opens old ones.
    /// Exactly one key of each purpose is active.
    Active,
    /// Opens values sealed under it (or finds rows indexed under it);
    /// seals nothing new.
    DecryptOnly,
    /// Does nothing; kept only so an old backup's rows fail with a clear error.
    Retired,
}

/// Which set of keys: its name is part of each key's KEK binding, its check
/// value and the file's field names, so it is spelled here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Data,
    Index,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Data => "data",
            Purpose::Index => "index",
        }
    }
}

/// What a purpose derives from its key bytes once, at load: the data keys'
/// cipher; nothing for index keys (HMAC and HKDF take the bytes).
pub(super) trait Material: Sized {
    fn derive(bytes: &KeyBytes) -> Self;
}

impl Material for Aes256Gcm {
    fn derive(bytes: &KeyBytes) -> Self {
        Aes256Gcm::new_from_slice(bytes.expose_secret()).expect("32-byte key")
    }
}

impl Material for () {
    fn derive(_: &KeyBytes) -> Self {}
}

pub(super) struct Key<M> {
    pub id: u32,
    pub state: KeyState,
    pub created_at: String,
    pub bytes: KeyBytes,
    pub material: M,
    pub wrapped: Option<Wrapped>,
}

pub(super) fn new_key_bytes() -> Result<KeyBytes, CryptoError> {
    let mut bytes = Box::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Rng)?;
    Ok(SecretBox::new(bytes))
}

/// A key's check value: 16 bytes of HKDF-SHA256 of the key under a label
/// of its own (and its slot), in hex. It identifies the key without saying
/// anything of it: kept in the keyring file beside each key and once in
/// the database (`key_checks`), so that a keyring whose ids match but
/// whose keys differ is refused before it seals or opens anything.
pub fn check_value(purpose: &str, id: u32, key: &KeyBytes) -> String {
    let mut out = [0u8; 16];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"phi-gateway/key-check/v1"), key.expose_secret())
        .expand(format!("{purpose}/{id}").as_bytes(), &mut out)
        .expect("16 bytes is a valid HKDF-SHA256 length");
    out.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A purpose's versions, in the order they were added.
pub(super) struct Versions<M> {
    purpose: Purpose,
    keys: Vec<Key<M>>,
}

impl<M: Material> Versions<M> {
    pub fn new(purpose: Purpose) -> Self {
        Self {
            purpose,
            keys: Vec::new(),
        }
    }

    /// One version, active, with `bytes`.
    pub fn single(purpose: Purpose, bytes: KeyBytes, created_at: String) -> Self {
        let mut v = Self::new(purpose);
        v.push(1, KeyState::Active, created_at, bytes, None);
        v
    }

    pub fn push(
        &mut self,
        id: u32,
        state: KeyState,
        created_at: String,
        bytes: KeyBytes,
        wrapped: Option<Wrapped>,
    ) {
        let material = M::derive(&bytes);
        self.keys.push(Key {
            id,
            state,
            created_at,
            bytes,
            material,
            wrapped,
        });
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    pub fn iter(&self) -> impl Iterator<Item = &Key<M>> {
        self.keys.iter()
    }

    pub fn get(&self, id: u32) -> Option<&Key<M>> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The one active version (`check` holds it to one).
    pub fn active(&self) -> &Key<M> {
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .expect("checked: one active key of each purpose")
    }

    /// Every version and its state, oldest first.
    pub fn states(&self) -> Vec<(u32, KeyState)> {
        let mut v: Vec<_> = self.keys.iter().map(|k| (k.id, k.state)).collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v
    }

    /// Exactly one active version; ids unique and never 0.
    pub fn check(&self) -> anyhow::Result<()> {
        let what = self.purpose.as_str();
        let active = self
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count();
        ensure!(
            active == 1,
            "the keyring must have exactly one active {what} key, has {active}"
        );
        let ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        ensure!(
            sorted.len() == ids.len(),
            "duplicate {what} key ids in the keyring"
        );
        ensure!(!ids.contains(&0), "{what} key id 0 is not allowed");
        Ok(())
    }

    /// Adds a version that opens but does not seal yet (the first step of a
    /// rotation across several gateways). Returns the new version.
    pub fn stage(&mut self) -> Result<u32, CryptoError> {
        let id = self.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        self.push(id, KeyState::DecryptOnly, now(), new_key_bytes()?, None);
        Ok(id)
    }

    /// Makes decrypt-only version `id` the active one; the active one
    /// becomes decrypt-only.
    pub fn activate(&mut self, id: u32) -> anyhow::Result<()> {
        let what = self.purpose.as_str();
        let k = self
            .get(id)
            .with_context(|| format!("no {what} key {id}"))?;
        ensure!(
            k.state == KeyState::DecryptOnly,
            "{what} key {id} is {:?}; only a decrypt-only key can become active",
            k.state
        );
        for k in &mut self.keys {
            if k.state == KeyState::Active {
                k.state = KeyState::DecryptOnly;
            }
            if k.id == id {
                k.state = KeyState::Active;
            }
        }
        Ok(())
    }

    /// A new active version; the previous one decrypt-only.
    pub fn rotate(&mut self) -> Result<u32, CryptoError> {
        let id = self.stage()?;
        self.activate(id)
            .expect("a key just staged is decrypt-only");
        Ok(id)
    }

    /// Retires a decrypt-only version. Whether values still use it is the
    /// database's to say: `rekey::retire` asks it before calling this.
    pub fn retire(&mut self, id: u32) -> anyhow::Result<()> {
        let what = self.purpose.as_str();
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .with_context(|| format!("no {what} key {id}"))?;
        if k.state == KeyState::Active {
            bail!("{what} key {id} is active; rotate it first");
        }
        k.state = KeyState::Retired;
        Ok(())
    }

    /// Wraps each version by `kek` (all anew if `fresh`, else only those not
    /// wrapped yet).
    pub async fn wrap_with(&mut self, kek: &Kek, fresh: bool) -> anyhow::Result<()> {
        let what = self.purpose.as_str();
        for k in &mut self.keys {
            if fresh || k.wrapped.is_none() {
                k.wrapped = Some(kek.wrap(&kek::binding(what, k.id), &k.bytes).await?);
            }
        }
        Ok(())
    }

    /// The file's entries: each key in the clear (no KEK) or wrapped (and
    /// an error if one is not wrapped yet), with its check value.
    pub fn to_file(&self, kek: Option<&str>) -> anyhow::Result<Vec<serde_json::Value>> {
        let what = self.purpose.as_str();
        self.keys
            .iter()
            .map(|k| {
                let check = check_value(what, k.id, &k.bytes);
                Ok(match (kek, &k.wrapped) {
                    (None, _) => serde_json::json!({
                        "id": k.id,
                        "state": k.state,
                        "created_at": k.created_at,
                        "key": B64.encode(k.bytes.expose_secret()),
                        "check": check,
                    }),
                    (Some(_), Some(w)) => serde_json::json!({
                        "id": k.id,
                        "state": k.state,
                        "created_at": k.created_at,
                        "wrapped": w.ciphertext,
                        "kek_version": w.version,
                        "check": check,
                    }),
                    (Some(uri), None) => bail!("{what} key {} is not wrapped by {uri} yet", k.id),
                })
            })
            .collect()
    }
}
