//! The audit signing key: Ed25519 (ed25519-dalek), held apart from the data
//! keyring in a file of its own, versioned so it can be rotated. Checkpoints
//! and export manifests are signed with it; anyone holding only the public
//! half (`keys signing public`) can verify them, and nobody can make one
//! without the private half. The data keyring plays no part.
//!
//! Files (JSON, mode 0600 for the private one):
//! `{"format": "phi-gateway-audit-signing/v1", "keys": [{"id": 1, "state":
//! "retired", "created_at": "..", "not_after": "..", "public": ".."}, {"id":
//! 2, "state": "active", "created_at": "..", "secret": "<base64 of 32
//! bytes>"}]}` and `{"format": "phi-gateway-audit-verify/v1", "keys":
//! [{"id": 1, "public": "<base64 of 32 bytes>", "notAfter": ".."}, ..]}`.
//!
//! Rotation keeps only the new key's private half: a retired key's is
//! dropped from the file, and its `notAfter` (when it stopped signing) is
//! recorded, in the private file and in the public one. Verification
//! refuses a signature by a key on anything dated after its `notAfter`, so
//! an old private key that leaked (from a backup of the file, say) signs no
//! checkpoint or manifest that verifies for a time after it was retired.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
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
    /// The private half: the active key's only (a file from before
    /// rotation dropped them may still hold retired ones; they sign nothing
    /// and are not written back).
    key: Option<SigningKey>,
    public: VerifyingKey,
    /// When it stopped signing (retired keys).
    not_after: Option<DateTime<Utc>>,
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
    #[serde(default)]
    not_after: Option<DateTime<Utc>>,
    #[serde(default)]
    secret: Option<SecretString>,
    #[serde(default)]
    public: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn decode_public(id: u32, text: &str) -> anyhow::Result<VerifyingKey> {
    let raw = B64
        .decode(text.trim())
        .map_err(|_| anyhow::anyhow!("public key {id}: not valid base64"))?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("public key {id}: must be 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| anyhow::anyhow!("public key {id}: not a valid Ed25519 key"))
}

fn fresh() -> anyhow::Result<SigningKey> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|_| anyhow::anyhow!("the OS RNG failed"))?;
    Ok(SigningKey::from_bytes(&seed))
}

impl SigningKeys {
    pub fn generate() -> anyhow::Result<Self> {
        let key = fresh()?;
        Ok(Self {
            keys: vec![Key {
                id: 1,
                state: SigningState::Active,
                created_at: now(),
                public: key.verifying_key(),
                key: Some(key),
                not_after: None,
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
            let key = match &k.secret {
                Some(secret) => {
                    let raw =
                        Zeroizing::new(B64.decode(secret.expose_secret().trim()).map_err(
                            |_| anyhow::anyhow!("signing key {}: not valid base64", k.id),
                        )?);
                    let seed: Zeroizing<[u8; 32]> =
                        Zeroizing::new(raw.as_slice().try_into().map_err(|_| {
                            anyhow::anyhow!("signing key {}: must be 32 bytes", k.id)
                        })?);
                    Some(SigningKey::from_bytes(&seed))
                }
                None => None,
            };
            let public = match (&key, &k.public) {
                (Some(key), Some(p)) => {
                    let p = decode_public(k.id, p)?;
                    ensure!(
                        p == key.verifying_key(),
                        "signing key {}: its public key is not the private key's",
                        k.id
                    );
                    p
                }
                (Some(key), None) => key.verifying_key(),
                (None, Some(p)) => decode_public(k.id, p)?,
                (None, None) => bail!("signing key {}: neither a private nor a public key", k.id),
            };
            ensure!(
                k.state == SigningState::Retired || key.is_some(),
                "signing key {}: the active key needs its private half",
                k.id
            );
            keys.push(Key {
                id: k.id,
                state: k.state,
                created_at: k.created_at,
                key,
                public,
                not_after: k.not_after,
            });
        }
        // Retired keys from before `not_after` was recorded stopped when
        // the next key began.
        keys.sort_by_key(|k| k.id);
        for i in 0..keys.len() {
            if keys[i].state == SigningState::Retired && keys[i].not_after.is_none() {
                keys[i].not_after = keys
                    .get(i + 1)
                    .and_then(|n| DateTime::parse_from_rfc3339(&n.created_at).ok())
                    .map(|t| t.with_timezone(&Utc));
            }
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
            .map(|k| match (k.state, &k.key) {
                (SigningState::Active, Some(key)) => serde_json::json!({
                    "id": k.id, "state": k.state, "created_at": k.created_at,
                    "secret": B64.encode(key.to_bytes()),
                }),
                // A retired key's private half is never written again.
                _ => serde_json::json!({
                    "id": k.id, "state": k.state, "created_at": k.created_at,
                    "not_after": k.not_after.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                    "public": B64.encode(k.public.to_bytes()),
                }),
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

    /// A new active key; the previous one is retired: its private half is
    /// dropped (it signs nothing again, and a copy of it that leaked signs
    /// nothing dated after now that verifies), its public half stays in
    /// `public()` with `notAfter` = now. Returns the new id.
    pub fn rotate(&mut self) -> anyhow::Result<u32> {
        let id = self.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        let at = Utc::now();
        for k in &mut self.keys {
            if k.state == SigningState::Active {
                k.state = SigningState::Retired;
                k.not_after = Some(at);
            }
            k.key = None;
        }
        let key = fresh()?;
        self.keys.push(Key {
            id,
            state: SigningState::Active,
            created_at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            public: key.verifying_key(),
            key: Some(key),
            not_after: None,
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
        let key = k
            .key
            .as_ref()
            .expect("checked: the active key has its private half");
        (k.id, key.sign(message).to_bytes())
    }

    /// The public halves of every key, with when each stopped signing, for
    /// auditors.
    pub fn public(&self) -> VerifyingKeys {
        VerifyingKeys {
            keys: self
                .keys
                .iter()
                .map(|k| PublicKey {
                    id: k.id,
                    key: k.public,
                    not_after: k.not_after,
                })
                .collect(),
        }
    }

    /// Whether the file holds a retired key's private half (one written
    /// before rotation dropped them): `keys signing status` says so.
    pub fn holds_retired_private_keys(&self) -> bool {
        self.keys
            .iter()
            .any(|k| k.state == SigningState::Retired && k.key.is_some())
    }

    pub fn states(&self) -> Vec<(u32, SigningState, String)> {
        self.keys
            .iter()
            .map(|k| (k.id, k.state, k.created_at.clone()))
            .collect()
    }
}

/// One public key, and when it stopped signing.
#[derive(Debug, Clone)]
struct PublicKey {
    id: u32,
    key: VerifyingKey,
    not_after: Option<DateTime<Utc>>,
}

/// Public keys: verify checkpoints and manifests, sign nothing.
#[derive(Debug, Clone)]
pub struct VerifyingKeys {
    keys: Vec<PublicKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyFile {
    format: String,
    keys: Vec<VerifyFileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerifyFileKey {
    id: u32,
    public: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<DateTime<Utc>>,
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
            keys.push(PublicKey {
                id: k.id,
                key: decode_public(k.id, &k.public)?,
                not_after: k.not_after,
            });
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
                .map(|k| VerifyFileKey {
                    id: k.id,
                    public: B64.encode(k.key.to_bytes()),
                    not_after: k.not_after,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&f).expect("JSON of strings") + "\n"
    }

    /// Whether `signature` by key `key_id` signs `message`, which is dated
    /// `at`: a key signs nothing dated after it stopped signing.
    pub fn verify(&self, key_id: u32, message: &[u8], signature: &[u8], at: DateTime<Utc>) -> bool {
        let Some(k) = self.keys.iter().find(|k| k.id == key_id) else {
            return false;
        };
        if k.not_after.is_some_and(|end| at > end) {
            return false;
        }
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        k.key
            .verify_strict(message, &Signature::from_bytes(&sig))
            .is_ok()
    }

    /// When key `key_id` stopped signing, if it has.
    pub fn not_after(&self, key_id: u32) -> Option<DateTime<Utc>> {
        self.keys.iter().find(|k| k.id == key_id)?.not_after
    }
}

pub use crate::crypto::keyring::write_private;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_verify_and_cannot_sign() {
        let now = Utc::now();
        let mut ring = SigningKeys::generate().unwrap();
        let (id, sig) = ring.sign(b"checkpoint");
        let public = VerifyingKeys::from_file_text(&ring.public().to_file_text()).unwrap();
        assert!(public.verify(id, b"checkpoint", &sig, now));
        assert!(!public.verify(id, b"checkpoinT", &sig, now));
        assert!(!public.verify(id + 1, b"checkpoint", &sig, now));
        let text = public.to_file_text();
        assert!(!text.contains("secret"));
        // Rotation keeps old signatures verifiable.
        let v2 = ring.rotate().unwrap();
        assert_eq!(ring.active_id(), v2);
        assert!(ring.public().verify(id, b"checkpoint", &sig, now));
        let back = SigningKeys::from_file_text(&ring.to_file_text()).unwrap();
        assert_eq!(back.active_id(), v2);
        let active = back.active().key.as_ref().unwrap().to_bytes();
        assert!(!format!("{back:?}").contains(&B64.encode(active)));
        // A private file is not a public one.
        assert!(VerifyingKeys::from_file_text(&ring.to_file_text()).is_err());
    }

    #[test]
    fn a_retired_key_loses_its_private_half_and_signs_nothing_after_it_retired() {
        let mut ring = SigningKeys::generate().unwrap();
        let stolen = ring.to_file_text();
        let before = Utc::now();
        let (v1, old_sig) = ring.sign(b"old checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(5));
        ring.rotate().unwrap();
        let after = Utc::now() + chrono::Duration::seconds(1);
        // The file keeps key 1's public half and when it stopped, not its
        // private half.
        let file = ring.to_file_text();
        let v: serde_json::Value = serde_json::from_str(&file).unwrap();
        assert!(v["keys"][0].get("secret").is_none(), "{v}");
        assert!(v["keys"][0]["public"].is_string() && v["keys"][0]["not_after"].is_string());
        assert!(v["keys"][1]["secret"].is_string());
        let public = VerifyingKeys::from_file_text(&ring.public().to_file_text()).unwrap();
        assert!(public.not_after(v1).is_some_and(|t| t > before));
        // What key 1 signed while it was active still verifies.
        assert!(public.verify(v1, b"old checkpoint", &old_sig, before));
        // A copy of the old private key signs something dated now: refused.
        let thief = SigningKeys::from_file_text(&stolen).unwrap();
        let (id, forged) = thief.sign(b"forged checkpoint");
        assert_eq!(id, v1);
        assert!(!public.verify(v1, b"forged checkpoint", &forged, after));
        // An old file that still holds a retired private half loads; its
        // retired key's notAfter is when the next key began; writing it
        // again drops the private half.
        let legacy = serde_json::json!({"format": SIGNING_FORMAT, "keys": [
            {"id": 1, "state": "retired", "created_at": "2026-01-01T00:00:00Z",
             "secret": B64.encode([7u8; 32])},
            {"id": 2, "state": "active", "created_at": "2026-06-01T00:00:00Z",
             "secret": B64.encode([8u8; 32])},
        ]});
        let old = SigningKeys::from_file_text(&legacy.to_string()).unwrap();
        assert!(old.holds_retired_private_keys());
        assert_eq!(
            old.public().not_after(1).unwrap().to_rfc3339(),
            "2026-06-01T00:00:00+00:00"
        );
        let rewritten = old.to_file_text();
        assert!(!rewritten.contains(&B64.encode([7u8; 32])));
        assert!(
            !SigningKeys::from_file_text(&rewritten)
                .unwrap()
                .holds_retired_private_keys()
        );
    }
}
