//! `[keys]`: where the keyring comes from.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::Env;

/// Where the keyring comes from: a file, or (one key each) the environment.
#[derive(Clone)]
pub struct KeySettings {
    pub keyring_file: PathBuf,
    pub data_key: Option<SecretString>,
    pub index_key: Option<SecretString>,
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("keyring_file", &self.keyring_file)
            .field("data_key", &self.data_key.as_ref().map(|_| "***"))
            .field("index_key", &self.index_key.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKeys {
    keyring_file: Option<PathBuf>,
}

impl KeySettings {
    pub(super) fn build(file: FileKeys, env: &dyn Env) -> anyhow::Result<Self> {
        let keys = KeySettings {
            keyring_file: env
                .var("PHI_KEYRING")
                .map(PathBuf::from)
                .or(file.keyring_file)
                .unwrap_or_else(|| PathBuf::from("keys/keyring.json")),
            data_key: env.var("DATABASE_ENCRYPTION_KEY").map(SecretString::from),
            index_key: env.var("DATABASE_BLIND_INDEX_KEY").map(SecretString::from),
        };
        Ok(keys)
    }
}
