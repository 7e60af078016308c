//! The audit signing key: Ed25519 (ed25519-dalek), held apart from the data
//! keyring in a file of its own, versioned so it can be rotated. Checkpoints
//! and export manifests are signed with it; anyone holding only the public
//! half (`keys signing public`) can verify them, and nobody can make one
//! without the private half. The data keyring plays no part.
//!
//! Files (JSON, mode 0600 for the private one):
//! `{"format": "phi-gateway-audit-signing/v1", "keys": [{"id": 1, "state":
//! "active", "created_at": "..", "secret": "<base64 of 32 bytes>"}]}` and
//! `{"format": "phi-gateway-audit-verify/v1", "keys": [{"id": 1, "public":
//! "<base64 of 32 bytes>"}]}`.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const SIGNING_FORMAT: &str = "phi-gateway-audit-signing/v1";
pub const VERIFY_FORMAT: &str = "phi-gateway-audit-verify/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigningState {
    /// Signs new checkpoints and manifests.
    Active,
    /// Kept so that its public half stays in the verify file; signs nothing.
    Retired,
}

struct Key {
    id: u32,
    state: SigningState,
    created_at: String,
    key: SigningKey,
}

/// The private signing keys.
pub struct SigningKeys {
    keys: Vec<Key>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<(u32, SigningState)> = self.keys.iter().map(|k| (k.id, k.state)).collect();
        f.debug_struct("SigningKeys").field("keys", &v).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFile {
    format: String,
    keys: Vec<SigningFileKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFileKey {
    id: u32,
    state: SigningState,
    #[serde(default)]
    created_at: String,
    secret: SecretString,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fresh() -> anyhow::Result<SigningKey> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|_| anyhow::anyhow!("the OS RNG failed"))?;
    Ok(SigningKey::from_bytes(&seed))
}

impl SigningKeys {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            keys: vec![Key {
                id: 1,
                state: SigningState::Active,
                created_at: now(),
                key: fresh()?,
            }],
        })
    }

    pub fn from_file_text(text: &str) -> anyhow::Result<Self> {
        let f: SigningFile = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "signing key file is not valid (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        ensure!(
            f.format == SIGNING_FORMAT,
            "signing key format {:?} is not {SIGNING_FORMAT:?}",
            f.format
        );
        let mut keys = Vec::new();
        for k in f.keys {
            let raw = Zeroizing::new(
                B64.decode(k.secret.expose_secret().trim())
                    .map_err(|_| anyhow::anyhow!("signing key {}: not valid base64", k.id))?,
            );
            let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("signing key {}: must be 32 bytes", k.id))?,
            );
            keys.push(Key {
                id: k.id,
                state: k.state,
                created_at: k.created_at,
                key: SigningKey::from_bytes(&seed),
            });
        }
        let ring = Self { keys };
        ensure!(
            ring.keys
                .iter()
                .filter(|k| k.state == SigningState::Active)
                .count()
                == 1,
            "the signing key file must have exactly one active key"
        );
        let mut ids: Vec<u32> = ring.keys.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ensure!(ids.len() == ring.keys.len(), "duplicate signing key ids");
        Ok(ring)
    }

    /// Reads the file; refused when group or others may read it (always:
    /// whoever reads it can sign checkpoints).
    pub fn load_file(path: &Path) -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading signing key {}", path.display()))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "signing key {} is readable by group or others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading signing key {}", path.display()))?,
        );
        Self::from_file_text(&text)
            .with_context(|| format!("loading signing key {}", path.display()))
    }

    fn to_file_text(&self) -> Zeroizing<String> {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id, "state": k.state, "created_at": k.created_at,
                    "secret": B64.encode(k.key.to_bytes()),
                })
            })
            .collect();
        let v = serde_json::json!({"format": SIGNING_FORMAT, "keys": keys});
        Zeroizing::new(serde_json::to_string_pretty(&v).expect("JSON of strings") + "\n")
    }

    /// Writes the file with mode 0600, atomically; refuses to replace one
    /// unless `replace`.
    pub fn write_file(&self, path: &Path, replace: bool) -> anyhow::Result<()> {
        write_private(path, self.to_file_text().as_bytes(), replace)
    }

    /// A new active key; the previous one is retired (its public half stays
    /// in `public()`). Returns the new id.
    pub fn rotate(&mut self) -> anyhow::Result<u32> {
        let id = self.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        for k in &mut self.keys {
            k.state = SigningState::Retired;
        }
        self.keys.push(Key {
            id,
            state: SigningState::Active,
            created_at: now(),
            key: fresh()?,
        });
        Ok(id)
    }

    fn active(&self) -> &Key {
        self.keys
            .iter()
            .find(|k| k.state == SigningState::Active)
            .expect("checked: one active key")
    }

    pub fn active_id(&self) -> u32 {
        self.active().id
    }

    /// Signs under the active key: (key id, signature).
    pub fn sign(&self, message: &[u8]) -> (u32, [u8; 64]) {
        let k = self.active();
        (k.id, k.key.sign(message).to_bytes())
    }

    /// The public halves of every key, for auditors.
    pub fn public(&self) -> VerifyingKeys {
        VerifyingKeys {
            keys: self
                .keys
                .iter()
                .map(|k| (k.id, k.key.verifying_key()))
                .collect(),
        }
    }

    pub fn states(&self) -> Vec<(u32, SigningState, String)> {
        self.keys
            .iter()
            .map(|k| (k.id, k.state, k.created_at.clone()))
            .collect()
    }
}

/// Public keys: verify checkpoints and manifests, sign nothing.
#[derive(Debug, Clone)]
pub struct VerifyingKeys {
    keys: Vec<(u32, VerifyingKey)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyFile {
    format: String,
    keys: Vec<VerifyFileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyFileKey {
    id: u32,
    public: String,
}

impl VerifyingKeys {
    pub fn from_file_text(text: &str) -> anyhow::Result<Self> {
        let f: VerifyFile =
            serde_json::from_str(text).context("the public key file is not valid")?;
        ensure!(
            f.format == VERIFY_FORMAT,
            "public key format {:?} is not {VERIFY_FORMAT:?} (was a private key file given?)",
            f.format
        );
        let mut keys = Vec::new();
        for k in f.keys {
            let raw = B64
                .decode(k.public.trim())
                .map_err(|_| anyhow::anyhow!("public key {}: not valid base64", k.id))?;
            let bytes: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("public key {}: must be 32 bytes", k.id))?;
            keys.push((
                k.id,
                VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| anyhow::anyhow!("public key {}: not a valid Ed25519 key", k.id))?,
            ));
        }
        Ok(Self { keys })
    }

    pub fn load_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading public key {}", path.display()))?;
        Self::from_file_text(&text)
            .with_context(|| format!("loading public key {}", path.display()))
    }

    pub fn to_file_text(&self) -> String {
        let f = VerifyFile {
            format: VERIFY_FORMAT.into(),
            keys: self
                .keys
                .iter()
                .map(|(id, k)| VerifyFileKey {
                    id: *id,
                    public: B64.encode(k.to_bytes()),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&f).expect("JSON of strings") + "\n"
    }

    pub fn verify(&self, key_id: u32, message: &[u8], signature: &[u8]) -> bool {
        let Some((_, key)) = self.keys.iter().find(|(id, _)| *id == key_id) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

pub use crate::crypto::keyring::write_private;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_verify_and_cannot_sign() {
        let mut ring = SigningKeys::generate().unwrap();
        let (id, sig) = ring.sign(b"checkpoint");
        let public = VerifyingKeys::from_file_text(&ring.public().to_file_text()).unwrap();
        assert!(public.verify(id, b"checkpoint", &sig));
        assert!(!public.verify(id, b"checkpoinT", &sig));
        assert!(!public.verify(id + 1, b"checkpoint", &sig));
        let text = public.to_file_text();
        assert!(!text.contains("secret"));
        // Rotation keeps old signatures verifiable.
        let v2 = ring.rotate().unwrap();
        assert_eq!(ring.active_id(), v2);
        assert!(ring.public().verify(id, b"checkpoint", &sig));
        let back = SigningKeys::from_file_text(&ring.to_file_text()).unwrap();
        assert_eq!(back.active_id(), v2);
        assert!(!format!("{back:?}").contains(&B64.encode(back.active().key.to_bytes())));
        // A private file is not a public one.
        assert!(VerifyingKeys::from_file_text(&ring.to_file_text()).is_err());
    }
}
