//! `[auth]`: verifying the CMS's tokens and cookies.

use std::fmt;

use anyhow::bail;
use secrecy::SecretString;
use serde::Deserialize;

use super::env::{Env, parse_env};

/// Verifying the CMS's tokens.
#[derive(Clone)]
pub struct AuthSettings {
    pub payload_secret: Option<SecretString>,
    /// Payload collections whose users may call the service.
    pub user_collections: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`/`iat`, in seconds.
    pub leeway_secs: i64,
    /// Tokens issued longer ago than this are refused (bounds how long a
    /// logged-out token works). None: only `exp` counts.
    pub max_token_age_secs: Option<i64>,
    /// Origins whose cookie-authenticated requests are honoured (Payload's
    /// `csrf`), and which CORS answers with credentials. Empty: off.
    pub csrf_origins: Vec<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "payload_secret",
                &self.payload_secret.as_ref().map(|_| "***"),
            )
            .field("user_collections", &self.user_collections)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_token_age_secs", &self.max_token_age_secs)
            .field("csrf_origins", &self.csrf_origins)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    user_collections: Option<Vec<String>>,
    leeway_secs: Option<i64>,
    max_token_age_secs: Option<i64>,
    csrf_origins: Option<Vec<String>>,
}

impl AuthSettings {
    pub(super) fn build(file: FileAuth, env: &dyn Env, prod: bool) -> anyhow::Result<Self> {
        let payload_secret = env.var("PAYLOAD_SECRET").map(SecretString::from);
        if prod && payload_secret.is_none() {
            bail!(
                "PAYLOAD_SECRET is required in production: without it no caller can be identified"
            );
        }
        let user_collections: Option<Vec<String>> = env.var("PHI_USER_COLLECTIONS").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        if let Some(reserved) = user_collections
            .iter()
            .flatten()
            .chain(file.user_collections.iter().flatten())
            .find(|c| ["operator", "apikey"].contains(&c.as_str()))
        {
            bail!(
                "PHI_USER_COLLECTIONS names {reserved:?}, which the gateway's own principals use \
                 (operator:…, apikey:…); a CMS collection of that name would be mistaken for them"
            );
        }
        let auth = AuthSettings {
            payload_secret,
            user_collections: user_collections
                .or(file.user_collections)
                .unwrap_or_else(|| vec!["users".to_string()]),
            leeway_secs: parse_env(env, "PHI_TOKEN_LEEWAY_SECS")?
                .or(file.leeway_secs)
                .unwrap_or(30),
            max_token_age_secs: parse_env(env, "PHI_MAX_TOKEN_AGE_SECS")?
                .or(file.max_token_age_secs),
            csrf_origins: env
                .var("PHI_CSRF_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().trim_end_matches('/').to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .or(file.csrf_origins)
                .unwrap_or_default(),
        };

        Ok(auth)
    }
}
