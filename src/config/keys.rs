//! `[keys]`: where the keyring comes from.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use anyhow::Context;
use zeroize::Zeroizing;

use super::env::Env;

/// Where the keyring comes from: a file, or (one key each) the environment.
#[derive(Clone)]
pub struct KeySettings {
    pub keyring_file: PathBuf,
    pub data_key: Option<SecretString>,
    pub index_key: Option<SecretString>,
    /// The KEK the keyring must be wrapped by (`PHI_KEK`, or `kek` here);
    /// unset: the one the keyring file names.
    pub kek: Option<String>,
    /// Credentials for a transit KEK, from the environment only.
    pub kek_auth: KekAuth,
    /// How often a serving gateway checks it can still reach the KEK
    /// (`phi_kek_up`); zero: never.
    pub kek_check: std::time::Duration,
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("keyring_file", &self.keyring_file)
            .field("data_key", &self.data_key.as_ref().map(|_| "***"))
            .field("index_key", &self.index_key.as_ref().map(|_| "***"))
            .field("kek", &self.kek)
            .field("kek_auth", &self.kek_auth)
            .field("kek_check", &self.kek_check)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKeys {
    keyring_file: Option<PathBuf>,
    kek: Option<String>,
    kek_check_secs: Option<u64>,
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
            kek: env.var("PHI_KEK").or(file.kek),
            kek_auth: KekAuth::from_env(env)?,
            kek_check: super::env::secs(env, "PHI_KEK_CHECK_SECS", file.kek_check_secs, 60)?,
        };
        Ok(keys)
    }
}

/// How the gateway authenticates to a transit KEK. From the environment
/// (`KekAuth::from_env`), never from the settings file.
#[derive(Clone, Default)]
pub struct KekAuth {
    pub token: Option<SecretString>,
    pub role_id: Option<String>,
    pub secret_id: Option<SecretString>,
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for KekAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KekAuth")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("role_id", &self.role_id)
            .field("secret_id", &self.secret_id.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

fn read_secret_file(path: &str, what: &str) -> anyhow::Result<SecretString> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {what} from {path}"))?,
    );
    Ok(SecretString::from(text.trim().to_string()))
}

impl KekAuth {
    pub fn from_env(env: &dyn Env) -> anyhow::Result<Self> {
        let token = match (env.var("PHI_KEK_TOKEN"), env.var("PHI_KEK_TOKEN_FILE")) {
            (Some(t), _) => Some(SecretString::from(t)),
            (None, Some(p)) => Some(read_secret_file(&p, "PHI_KEK_TOKEN_FILE")?),
            (None, None) => env
                .var("VAULT_TOKEN")
                .or_else(|| env.var("BAO_TOKEN"))
                .map(SecretString::from),
        };
        let secret_id = match (
            env.var("PHI_KEK_SECRET_ID"),
            env.var("PHI_KEK_SECRET_ID_FILE"),
        ) {
            (Some(t), _) => Some(SecretString::from(t)),
            (None, Some(p)) => Some(read_secret_file(&p, "PHI_KEK_SECRET_ID_FILE")?),
            (None, None) => None,
        };
        Ok(Self {
            token,
            role_id: env.var("PHI_KEK_ROLE_ID"),
            secret_id,
            ca_file: env.var("PHI_KEK_CA_FILE").map(PathBuf::from),
        })
    }
}
