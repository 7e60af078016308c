//! The versioned keyring: data keys (AES-256-GCM) with states, and blind-index
//! root keys, loaded from a JSON file (mode 0600, git-ignored, under `keys/`)
//! or from environment variables.
//!
//! Key bytes live in `SecretBox`es, are zeroized on drop, and this module has
//! no `Clone`, `Serialize` or revealing `Debug` for them. The only place key
//! bytes are encoded is `Keyring::to_file_text`, which writes the file.

use std::fmt;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::blind_index::{self, BlindIndex};
use super::envelope::{self, Place, Plaintext, SealedField};
use super::error::CryptoError;
use super::kek::{self, Kek, Wrapped};
pub use super::versions::{KeyState, Purpose, check_value};
use super::versions::{Material, Versions, new_key_bytes, now};
use crate::config::KeySettings;
use std::collections::HashMap;

pub const FILE_FORMAT: &str = "phi-gateway-keyring/v1";

use super::kek::KeyBytes;

fn decode_key(text: &SecretString, what: &str) -> anyhow::Result<KeyBytes> {
    let raw = Zeroizing::new(
        B64.decode(text.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("{what}: not valid base64"))?,
    );
    ensure!(
        raw.len() == 32,
        "{what}: must be 32 bytes (base64 of 32 random bytes), got {}",
        raw.len()
    );
    let mut bytes = Box::new([0u8; 32]);
    bytes.copy_from_slice(&raw);
    Ok(SecretBox::new(bytes))
}

pub struct Keyring {
    development: bool,
    /// The URI of the KEK the file's keys are wrapped by; `None`: the file
    /// holds them in the clear (refused in production).
    kek: Option<String>,
    data: Versions<Aes256Gcm>,
    index: Versions<()>,
    /// What the caller should tell an operator about how it was loaded
    /// (this module logs nothing itself).
    warnings: Vec<String>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("development", &self.development)
            .field("kek", &self.kek)
            .field("data_keys", &self.data.states())
            .field("index_keys", &self.index.states())
            .finish()
    }
}

/// The file's shape. Key strings are secrets from the moment they are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    format: String,
    #[serde(default)]
    development: bool,
    #[serde(default)]
    kek: Option<String>,
    data_keys: Vec<FileKey>,
    index_keys: Vec<FileKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    id: u32,
    state: KeyState,
    #[serde(default)]
    created_at: String,
    /// The key in the clear (base64), in a keyring without a KEK.
    #[serde(default)]
    key: Option<SecretString>,
    /// The key wrapped by the keyring's KEK, and the KEK version.
    #[serde(default)]
    wrapped: Option<String>,
    #[serde(default)]
    kek_version: Option<String>,
    /// The key's check value (`check_value`): written with every key, and
    /// compared when it is read (files from before it have none).
    #[serde(default)]
    check: Option<String>,
}

fn parse(text: &str) -> anyhow::Result<FileRepr> {
    let repr: FileRepr = serde_json::from_str(text).map_err(|e| {
        // serde_json errors quote no input for these types, but say only
        // where, to be sure.
        anyhow::anyhow!(
            "keyring file is not valid (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    ensure!(
        repr.format == FILE_FORMAT,
        "keyring format {:?} is not {FILE_FORMAT:?}",
        repr.format
    );
    Ok(repr)
}

/// Reads a key file; in production it must not be readable by group or
/// others (elsewhere that is a warning, returned for the caller to tell).
fn read_private(
    path: &Path,
    production: bool,
) -> anyhow::Result<(Zeroizing<String>, Option<String>)> {
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading keyring {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            if production {
                bail!(
                    "keyring {} is readable by group or others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
            warning = Some(format!(
                "keyring {} is readable by group or others (mode {mode:o}); production refuses that",
                path.display()
            ));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading keyring {}", path.display()))?,
    );
    Ok((text, warning))
}

/// Writes a secret file with mode 0600, atomically (temp file, then
/// rename); refuses to replace one unless `replace` is set.
pub fn write_private(path: &Path, bytes: &[u8], replace: bool) -> anyhow::Result<()> {
    use std::io::Write;
    if !replace && path.exists() {
        bail!(
            "{} exists; refusing to overwrite a key file (its keys may be the only way to read your data)",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

impl Keyring {
    /// Every key's check value: (purpose, id, value), data keys first.
    pub fn check_values(&self) -> Vec<(&'static str, u32, String)> {
        fn of<M: Material>(v: &Versions<M>) -> impl Iterator<Item = (&'static str, u32, String)> {
            let what = v.purpose().as_str();
            v.iter()
                .map(move |k| (what, k.id, check_value(what, k.id, &k.bytes)))
        }
        of(&self.data).chain(of(&self.index)).collect()
    }

    /// A new keyring with one active data key and one active index key.
    pub fn generate(development: bool) -> Result<Self, CryptoError> {
        Ok(Self {
            development,
            kek: None,
            data: Versions::single(Purpose::Data, new_key_bytes()?, now()),
            index: Versions::single(Purpose::Index, new_key_bytes()?, now()),
            warnings: Vec::new(),
        })
    }

    /// One data key and one index key from base64 text (the environment form:
    /// `DATABASE_ENCRYPTION_KEY`, `DATABASE_BLIND_INDEX_KEY`).
    pub fn from_single_keys(
        data_key: &SecretString,
        index_key: &SecretString,
    ) -> anyhow::Result<Self> {
        let bytes = decode_key(data_key, "DATABASE_ENCRYPTION_KEY")?;
        let index = decode_key(index_key, "DATABASE_BLIND_INDEX_KEY")?;
        ensure!(
            bytes.expose_secret() != index.expose_secret(),
            "DATABASE_BLIND_INDEX_KEY must differ from DATABASE_ENCRYPTION_KEY"
        );
        Ok(Self {
            development: false,
            kek: None,
            data: Versions::single(Purpose::Data, bytes, String::new()),
            index: Versions::single(Purpose::Index, index, String::new()),
            warnings: Vec::new(),
        })
    }

    /// Parses a keyring file's text and checks its invariants: a keyring in
    /// the clear only (a wrapped one needs its KEK: `from_file_text_with`).
    pub fn from_file_text(text: &str) -> anyhow::Result<Self> {
        Self::assemble(parse(text)?, HashMap::new())
    }

    /// Parses a keyring file's text, unwrapping its keys with `kek` (which
    /// must be the KEK the file names).
    pub async fn from_file_text_with(text: &str, kek: &Kek) -> anyhow::Result<Self> {
        let repr = parse(text)?;
        let named = repr
            .kek
            .as_deref()
            .context("the keyring is not wrapped (it holds its keys in the clear)")?;
        ensure!(
            named == kek.uri(),
            "the keyring is wrapped by {named}, not by {}",
            kek.uri()
        );
        let mut opened = HashMap::new();
        for (purpose, keys) in [("data", &repr.data_keys), ("index", &repr.index_keys)] {
            for k in keys {
                if let Some(w) = &k.wrapped {
                    opened.insert(
                        (purpose, k.id),
                        kek.unwrap(&kek::binding(purpose, k.id), w).await?,
                    );
                }
            }
        }
        Self::assemble(repr, opened)
    }

    fn assemble(
        repr: FileRepr,
        mut opened: HashMap<(&'static str, u32), KeyBytes>,
    ) -> anyhow::Result<Self> {
        let mut take = |purpose: &'static str,
                        k: &FileKey|
         -> anyhow::Result<(KeyBytes, Option<Wrapped>)> {
            match (&repr.kek, &k.key, &k.wrapped) {
                (None, Some(key), None) => {
                    Ok((decode_key(key, &format!("{purpose} key {}", k.id))?, None))
                }
                (Some(uri), None, Some(w)) => {
                    let bytes = opened.remove(&(purpose, k.id)).with_context(|| {
                        format!("{purpose} key {} is wrapped by {uri}; the keyring must be opened with that KEK", k.id)
                    })?;
                    Ok((
                        bytes,
                        Some(Wrapped {
                            ciphertext: w.clone(),
                            version: k.kek_version.clone().unwrap_or_default(),
                        }),
                    ))
                }
                (Some(_), Some(_), _) => bail!(
                    "{purpose} key {} is in the clear in a wrapped keyring; refusing it",
                    k.id
                ),
                (None, _, Some(_)) => bail!(
                    "{purpose} key {} is wrapped but the keyring names no KEK",
                    k.id
                ),
                _ => bail!("{purpose} key {} has no key", k.id),
            }
        };
        let checked = |purpose: &str, k: &FileKey, bytes: &KeyBytes| -> anyhow::Result<()> {
            if let Some(c) = &k.check {
                ensure!(
                    *c == check_value(purpose, k.id, bytes),
                    "{purpose} key {}: its check value does not match the key (the file was altered, \
                     or a key was moved between keyrings)",
                    k.id
                );
            }
            Ok(())
        };
        let mut data = Versions::new(Purpose::Data);
        for k in &repr.data_keys {
            let (bytes, wrapped) = take("data", k)?;
            checked("data", k, &bytes)?;
            data.push(k.id, k.state, k.created_at.clone(), bytes, wrapped);
        }
        let mut index = Versions::new(Purpose::Index);
        for k in &repr.index_keys {
            let (bytes, wrapped) = take("index", k)?;
            checked("index", k, &bytes)?;
            index.push(k.id, k.state, k.created_at.clone(), bytes, wrapped);
        }
        let ring = Self {
            development: repr.development,
            kek: repr.kek.clone(),
            data,
            index,
            warnings: Vec::new(),
        };
        ring.check()?;
        Ok(ring)
    }

    fn check(&self) -> anyhow::Result<()> {
        self.data.check()?;
        self.index.check()?;
        for d in self.data.iter() {
            for i in self.index.iter() {
                ensure!(
                    d.bytes.expose_secret() != i.bytes.expose_secret(),
                    "index key {} reuses data key {}: blind-index keys are never encryption keys",
                    i.id,
                    d.id
                );
            }
        }
        Ok(())
    }

    /// Reads a keyring file in the clear (tools and tests; the service uses
    /// `load`). Production refuses it: its keys must be wrapped by a KEK.
    pub fn load_file(path: &Path, production: bool) -> anyhow::Result<Self> {
        let (text, warning) = read_private(path, production)?;
        let mut ring = Self::from_file_text(&text)
            .with_context(|| format!("loading keyring {}", path.display()))?;
        ring.check_environment(path, production)?;
        ring.warnings.extend(warning);
        Ok(ring)
    }

    /// Reads a keyring file, unwrapping its keys with the KEK it names (the
    /// settings' `kek`, when set, must be that one). Returns the connected
    /// KEK too, for commands that write the keyring back.
    pub async fn open_file(
        path: &Path,
        settings: &KeySettings,
        production: bool,
    ) -> anyhow::Result<(Self, Option<Kek>)> {
        let (text, warning) = read_private(path, production)?;
        let named = parse(&text)
            .with_context(|| format!("loading keyring {}", path.display()))?
            .kek;
        let (ring, kek) = match named {
            None => (
                Self::from_file_text(&text)
                    .with_context(|| format!("loading keyring {}", path.display()))?,
                None,
            ),
            Some(uri) => {
                // The file would otherwise choose which host receives the
                // key service's token or AppRole secret: in production the
                // settings name it, and a file naming another is refused.
                if production && settings.kek.is_none() {
                    bail!(
                        "keyring {} is wrapped by {uri}, but PHI_KEK is not set: production requires \
                         PHI_KEK to name the key-encryption key (the keyring file does not choose \
                         where the key service's credentials are sent)",
                        path.display()
                    );
                }
                if let Some(want) = &settings.kek {
                    ensure!(
                        *want == uri,
                        "keyring {} is wrapped by {uri}, but the settings name {want} (PHI_KEK): \
                         rewrap it (`phi-gateway keys rewrap --kek {want}`) or correct the setting",
                        path.display()
                    );
                }
                let kek = Kek::connect(&uri, &settings.kek_auth, production)
                    .await
                    .with_context(|| format!("opening keyring {}", path.display()))?;
                let ring = Self::from_file_text_with(&text, &kek)
                    .await
                    .with_context(|| format!("opening keyring {}", path.display()))?;
                (ring, Some(kek))
            }
        };
        ring.check_environment(path, production)?;
        let mut ring = ring;
        ring.warnings.extend(warning);
        Ok((ring, kek))
    }

    fn check_environment(&self, path: &Path, production: bool) -> anyhow::Result<()> {
        if production && self.development {
            bail!(
                "keyring {} is a development keyring; production needs one made with `phi-gateway keys generate`",
                path.display()
            );
        }
        if production && self.kek.is_none() {
            bail!(
                "keyring {} holds its keys in the clear; production needs them wrapped by a key-encryption key: \
                 `phi-gateway keys wrap --kek transit://HOST:PORT/KEY` (keys/README.md)",
                path.display()
            );
        }
        Ok(())
    }

    /// The service's keyring: the environment's single keys when set
    /// (development only), else the keyring file, unwrapped with its KEK.
    /// No key at all is an error, in every environment.
    pub async fn load(settings: &KeySettings, production: bool) -> anyhow::Result<Self> {
        match (&settings.data_key, &settings.index_key) {
            (Some(_), Some(_)) if production => bail!(
                "DATABASE_ENCRYPTION_KEY and DATABASE_BLIND_INDEX_KEY hold keys in the clear; production refuses them: \
                 use a keyring file wrapped by a key-encryption key (`phi-gateway keys generate --kek URI`)"
            ),
            (Some(d), Some(i)) => Self::from_single_keys(d, i),
            (Some(_), None) => bail!(
                "DATABASE_ENCRYPTION_KEY is set but DATABASE_BLIND_INDEX_KEY is not: blind indexes need their own key \
                 (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
            ),
            (None, Some(_)) => {
                bail!("DATABASE_BLIND_INDEX_KEY is set but DATABASE_ENCRYPTION_KEY is not")
            }
            (None, None) if settings.keyring_file.exists() => {
                Ok(
                    Self::open_file(&settings.keyring_file, settings, production)
                        .await?
                        .0,
                )
            }
            (None, None) => bail!(
                "no encryption keys: {} does not exist. Create one with `phi-gateway keys generate --out {}` \
                 or set DATABASE_ENCRYPTION_KEY and DATABASE_BLIND_INDEX_KEY",
                settings.keyring_file.display(),
                settings.keyring_file.display()
            ),
        }
    }

    /// The file's text. Key bytes are base64-encoded here and nowhere else,
    /// and only in a keyring without a KEK; a wrapped keyring writes each
    /// key's wrapped form and fails if one is missing (`wrap_with` first).
    pub fn to_file_text(&self) -> anyhow::Result<Zeroizing<String>> {
        let data = self.data.to_file(self.kek.as_deref())?;
        let index = self.index.to_file(self.kek.as_deref())?;
        let mut value = serde_json::json!({
            "format": FILE_FORMAT,
            "development": self.development,
        });
        if let Some(uri) = &self.kek {
            value["kek"] = serde_json::json!(uri);
        }
        value["data_keys"] = serde_json::Value::Array(data);
        value["index_keys"] = serde_json::Value::Array(index);
        // The JSON value holds the base64 of clear keys (no KEK) until it
        // is dropped; the text written is wiped.
        Ok(Zeroizing::new(
            serde_json::to_string_pretty(&value).expect("JSON of strings") + "\n",
        ))
    }

    /// Wraps every key by `kek` and records it as the keyring's KEK. Keys
    /// already wrapped by it stay as they are unless `rewrap` is set (a new
    /// transit key version, or another KEK: then every key is wrapped anew).
    pub async fn wrap_with(&mut self, kek: &Kek, rewrap: bool) -> anyhow::Result<()> {
        let fresh = rewrap || self.kek.as_deref() != Some(kek.uri());
        self.data.wrap_with(kek, fresh).await?;
        self.index.wrap_with(kek, fresh).await?;
        self.kek = Some(kek.uri().to_string());
        Ok(())
    }

    /// What an operator should be told about how the keyring was loaded.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The KEK the keys are wrapped by, if any.
    pub fn kek(&self) -> Option<&str> {
        self.kek.as_deref()
    }

    /// The KEK version wrapping a key.
    pub fn kek_version(&self, purpose: Purpose, id: u32) -> Option<&str> {
        let w = match purpose {
            Purpose::Data => self.data.get(id)?.wrapped.as_ref(),
            Purpose::Index => self.index.get(id)?.wrapped.as_ref(),
        };
        w.map(|w| w.version.as_str())
    }

    /// Writes the file with mode 0600, atomically (temp file, then rename).
    /// Refuses to replace a file unless `replace` is set.
    pub fn write_file(&self, path: &Path, replace: bool) -> anyhow::Result<()> {
        let text = self.to_file_text()?;
        write_private(path, text.as_bytes(), replace)
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The data key new values are sealed under.
    pub fn active_key_id(&self) -> u32 {
        self.data.active().id
    }

    /// The index key new blind indexes (and checkpoints) are computed under.
    pub fn active_index_key_id(&self) -> u32 {
        self.index.active().id
    }

    /// The audit checkpoint key of index key version `id` (retired versions
    /// included, so old checkpoints stay verifiable): HKDF-SHA256 of the
    /// index root key with its own label, never the root key itself.
    pub fn checkpoint_key(&self, id: u32) -> Option<Zeroizing<[u8; 32]>> {
        let k = self.index.get(id)?;
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(
            Some(b"phi-gateway/audit-checkpoint/v1"),
            k.bytes.expose_secret(),
        )
        .expand(b"checkpoint", out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
        Some(out)
    }

    /// Every version of `purpose` and its state, oldest first.
    pub fn versions(&self, purpose: Purpose) -> Vec<(u32, KeyState)> {
        match purpose {
            Purpose::Data => self.data.states(),
            Purpose::Index => self.index.states(),
        }
    }

    /// Adds a version of `purpose` and makes it active; the previous active
    /// one becomes decrypt-only. Returns the new version.
    pub fn rotate(&mut self, purpose: Purpose) -> Result<u32, CryptoError> {
        match purpose {
            Purpose::Data => self.data.rotate(),
            Purpose::Index => self.index.rotate(),
        }
    }

    /// Adds a data key version that opens but does not seal yet (the first
    /// step of a rotation across several gateways: roll it to every one,
    /// then `activate` it, then roll again). Returns the new version.
    pub fn stage(&mut self) -> Result<u32, CryptoError> {
        self.data.stage()
    }

    /// Makes decrypt-only data key `id` the active one; the active key
    /// becomes decrypt-only.
    pub fn activate(&mut self, id: u32) -> anyhow::Result<()> {
        self.data.activate(id)
    }

    /// Retires a decrypt-only version of `purpose`. Whether values still
    /// use it is the database's to say: `rekey::retire` asks it first.
    pub(crate) fn retire(&mut self, purpose: Purpose, id: u32) -> anyhow::Result<()> {
        match purpose {
            Purpose::Data => self.data.retire(id),
            Purpose::Index => self.index.retire(id),
        }
    }

    /// Seals under the active key.
    pub fn seal(&self, plaintext: &[u8], place: &Place<'_>) -> Result<SealedField, CryptoError> {
        let k = self.data.active();
        envelope::seal(&k.material, k.id, plaintext, place)
    }

    /// Opens a value sealed under any active or decrypt-only key.
    pub fn open(&self, sealed: &SealedField, place: &Place<'_>) -> Result<Plaintext, CryptoError> {
        envelope::open(sealed, place, |id| {
            let k = self.data.get(id).ok_or(CryptoError::UnknownKey(id))?;
            if k.state == KeyState::Retired {
                return Err(CryptoError::RetiredKey(id));
            }
            Ok(&k.material)
        })
    }

    /// The blind index of a normalised value under the active index key.
    pub fn blind_index(&self, table: &str, column: &str, normalised: &str) -> BlindIndex {
        let k = self.index.active();
        blind_index::compute(k.id, k.bytes.expose_secret(), table, column, normalised)
    }

    /// The blind indexes to look a value up by: one per index key that rows
    /// may still carry (active and decrypt-only), so lookups keep working
    /// while an index key rotation is re-indexing rows.
    pub fn blind_index_candidates(
        &self,
        table: &str,
        column: &str,
        normalised: &str,
    ) -> Vec<BlindIndex> {
        self.index
            .iter()
            .filter(|k| k.state != KeyState::Retired)
            .map(|k| blind_index::compute(k.id, k.bytes.expose_secret(), table, column, normalised))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KekAuth;
    use uuid::Uuid;

    fn place() -> Place<'static> {
        Place::new("practitioners", "email", Uuid::from_u128(7))
    }

    #[test]
    fn debug_shows_versions_never_key_bytes() {
        let ring = Keyring::generate(true).unwrap();
        let text = ring.to_file_text().unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let key = json["data_keys"][0]["key"].as_str().unwrap().to_string();
        let debug = format!("{ring:?}");
        assert!(!debug.contains(&key), "{debug}");
        assert!(debug.contains("Active"));
    }

    #[test]
    fn file_round_trip_keeps_keys_and_states() {
        let mut ring = Keyring::generate(false).unwrap();
        let v1 = ring.seal(b"hello", &place()).unwrap();
        ring.rotate(Purpose::Data).unwrap();
        let text = ring.to_file_text().unwrap();
        let back = Keyring::from_file_text(&text).unwrap();
        assert_eq!(
            back.versions(Purpose::Data),
            vec![(1, KeyState::DecryptOnly), (2, KeyState::Active)]
        );
        assert_eq!(back.open(&v1, &place()).unwrap().as_slice(), b"hello");
        assert_eq!(back.seal(b"x", &place()).unwrap().key_id().unwrap(), 2);
    }

    #[test]
    fn retired_keys_open_nothing_and_active_keys_cannot_retire() {
        let mut ring = Keyring::generate(false).unwrap();
        let v1 = ring.seal(b"hello", &place()).unwrap();
        assert!(ring.retire(Purpose::Data, 1).is_err());
        ring.rotate(Purpose::Data).unwrap();
        ring.retire(Purpose::Data, 1).unwrap();
        assert_eq!(ring.open(&v1, &place()), Err(CryptoError::RetiredKey(1)));
    }

    #[test]
    fn invalid_files_are_refused_with_reasons() {
        let ring = Keyring::generate(false).unwrap();
        let good: serde_json::Value = serde_json::from_str(&ring.to_file_text().unwrap()).unwrap();

        let mut two_active = good.clone();
        two_active["data_keys"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"id": 2, "state": "active", "key": good["data_keys"][0]["key"].clone()}));
        let err = Keyring::from_file_text(&two_active.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("exactly one active data key"),
            "{err}"
        );

        let mut same = good.clone();
        same["index_keys"][0]["key"] = good["data_keys"][0]["key"].clone();
        same["index_keys"][0]
            .as_object_mut()
            .unwrap()
            .remove("check");
        let err = Keyring::from_file_text(&same.to_string()).unwrap_err();
        assert!(err.to_string().contains("never encryption keys"), "{err}");

        let mut short = good.clone();
        short["data_keys"][0]["key"] = serde_json::json!("AAAA");
        let err = Keyring::from_file_text(&short.to_string()).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(!err.to_string().contains("AAAA"));

        let err = Keyring::from_file_text("{not json").unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }

    #[test]
    fn production_refuses_readable_or_development_keyrings() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("phi-keys-{}", Uuid::new_v4().simple()));
        let path = dir.join("keyring.json");
        Keyring::generate(true)
            .unwrap()
            .write_file(&path, false)
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = Keyring::load_file(&path, true).unwrap_err();
        assert!(
            format!("{err:#}").contains("development keyring"),
            "{err:#}"
        );
        assert!(Keyring::load_file(&path, false).is_ok());

        let prod = dir.join("prod.json");
        Keyring::generate(false)
            .unwrap()
            .write_file(&prod, false)
            .unwrap();
        // Keys in the clear: production refuses them.
        let err = Keyring::load_file(&prod, true).unwrap_err();
        assert!(format!("{err:#}").contains("in the clear"), "{err:#}");
        assert!(Keyring::load_file(&prod, false).is_ok());
        std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Keyring::load_file(&prod, true).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        // Never overwritten by accident.
        assert!(
            Keyring::generate(false)
                .unwrap()
                .write_file(&prod, false)
                .is_err()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn each_key_carries_a_check_value_that_must_match_it() {
        let ring = Keyring::generate(false).unwrap();
        let text = ring.to_file_text().unwrap();
        let good: serde_json::Value = serde_json::from_str(&text).unwrap();
        let check = good["data_keys"][0]["check"].as_str().unwrap().to_string();
        assert_eq!(check.len(), 32);
        let key = good["data_keys"][0]["key"].as_str().unwrap();
        assert!(!check.contains(key) && !key.contains(&check));
        assert_eq!(ring.check_values()[0], ("data", 1, check.clone()));
        // Another key under the same id has another check value.
        let other = Keyring::generate(false).unwrap();
        assert_ne!(other.check_values()[0].2, check);
        // A key swapped in the file without its check value is refused.
        let mut swapped = good.clone();
        swapped["data_keys"][0]["key"] = serde_json::from_str::<serde_json::Value>(
            &other.to_file_text().unwrap(),
        )
        .unwrap()["data_keys"][0]["key"]
            .clone();
        let err = Keyring::from_file_text(&swapped.to_string()).unwrap_err();
        assert!(err.to_string().contains("check value"), "{err}");
        // A file from before check values loads.
        let mut old = good.clone();
        old["data_keys"][0].as_object_mut().unwrap().remove("check");
        assert!(Keyring::from_file_text(&old.to_string()).is_ok());
    }

    #[tokio::test]
    async fn production_needs_phi_kek_to_name_the_keyrings_kek() {
        let dir = std::env::temp_dir().join(format!("phi-keks-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let kek_path = dir.join("kek.json");
        let (text, _) = kek::FileKek::generate_text().unwrap();
        write_private(&kek_path, text.as_bytes(), false).unwrap();
        let uri = format!("file://{}", kek_path.display());
        let kek = Kek::connect(&uri, &KekAuth::default(), false)
            .await
            .unwrap();
        let mut ring = Keyring::generate(false).unwrap();
        ring.wrap_with(&kek, false).await.unwrap();
        let path = dir.join("keyring.json");
        ring.write_file(&path, false).unwrap();
        let mut settings = KeySettings {
            keyring_file: path.clone(),
            data_key: None,
            index_key: None,
            kek: None,
            kek_auth: KekAuth::default(),
            kek_check: std::time::Duration::ZERO,
        };
        // The file alone does not choose the KEK in production...
        let err = Keyring::open_file(&path, &settings, true)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("PHI_KEK is not set"), "{err:#}");
        // ...elsewhere it may (development, tools).
        assert!(Keyring::open_file(&path, &settings, false).await.is_ok());
        // Named, it must be the one the file names.
        settings.kek = Some("file:///somewhere/else.json".into());
        let err = Keyring::open_file(&path, &settings, true)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("settings name"), "{err:#}");
        settings.kek = Some(uri);
        assert!(Keyring::open_file(&path, &settings, true).await.is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_keys_must_be_distinct_and_32_bytes() {
        let k1 = SecretString::from(B64.encode([1u8; 32]));
        let k2 = SecretString::from(B64.encode([2u8; 32]));
        let ring = Keyring::from_single_keys(&k1, &k2).unwrap();
        assert_eq!(ring.versions(Purpose::Data), vec![(1, KeyState::Active)]);
        assert!(Keyring::from_single_keys(&k1, &k1).is_err());
        let short = SecretString::from(B64.encode([1u8; 16]));
        assert!(Keyring::from_single_keys(&short, &k2).is_err());
    }
}
