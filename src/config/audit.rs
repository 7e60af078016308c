//! `[audit]`: who seals the chain, what signs it, where checkpoints go.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::database::DatabaseUrl;
use super::env::{Env, parse_env, secs};

/// The floor of the audit log's retention, in years: 45 CFR 164.316(b)(2)
/// and 164.530(j) keep documentation six years.
pub const MIN_RETENTION_YEARS: u32 = 6;

/// The audit chain: who seals it, what signs it, where checkpoints are
/// anchored.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The sealer's connection (role `phi_sealer`). Without it this process
    /// does not seal (another process must: `phi-gateway audit seal --follow`).
    pub sealer_url: Option<DatabaseUrl>,
    /// The Ed25519 signing key file (`keys signing generate`).
    pub signing_key: Option<PathBuf>,
    /// The public key file, for `audit verify` and `verify-export`.
    pub verify_key: Option<PathBuf>,
    /// Each checkpoint is appended here too (WORM storage, another machine).
    pub anchor: Option<PathBuf>,
    pub seal_interval: Duration,
    /// A checkpoint every this many sealing rounds (when the head moved).
    pub checkpoint_every: u64,
    /// `/health/audit` says "behind" past this.
    pub max_seal_lag: Duration,
    /// Refusals are written per client every this long.
    pub refusal_flush: Duration,
    /// How long entries stay in the log before `audit archive` may move
    /// them to a file: six years at least (the default).
    pub retention_years: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    signing_key: Option<PathBuf>,
    verify_key: Option<PathBuf>,
    anchor: Option<PathBuf>,
    seal_interval_ms: Option<u64>,
    checkpoint_every: Option<u64>,
    max_seal_lag_secs: Option<u64>,
    refusal_flush_secs: Option<u64>,
    retention_years: Option<u32>,
}

impl AuditSettings {
    pub(super) fn build(file: FileAudit, env: &dyn Env) -> anyhow::Result<Self> {
        let path = |name: &str, file: Option<PathBuf>| env.var(name).map(PathBuf::from).or(file);
        let audit = AuditSettings {
            sealer_url: env.var("AUDIT_SEALER_DATABASE_URL").map(DatabaseUrl::new),
            signing_key: path("PHI_AUDIT_SIGNING_KEY", file.signing_key),
            verify_key: path("PHI_AUDIT_VERIFY_KEY", file.verify_key),
            anchor: path("PHI_AUDIT_ANCHOR", file.anchor),
            seal_interval: Duration::from_millis(
                parse_env(env, "PHI_AUDIT_SEAL_INTERVAL_MS")?
                    .or(file.seal_interval_ms)
                    .unwrap_or(1000),
            ),
            checkpoint_every: parse_env(env, "PHI_AUDIT_CHECKPOINT_EVERY")?
                .or(file.checkpoint_every)
                .unwrap_or(60),
            max_seal_lag: secs(
                env,
                "PHI_AUDIT_MAX_SEAL_LAG_SECS",
                file.max_seal_lag_secs,
                60,
            )?,
            refusal_flush: secs(
                env,
                "PHI_AUDIT_REFUSAL_FLUSH_SECS",
                file.refusal_flush_secs,
                60,
            )?,
            retention_years: parse_env(env, "PHI_AUDIT_RETENTION_YEARS")?
                .or(file.retention_years)
                .unwrap_or(MIN_RETENTION_YEARS),
        };
        anyhow::ensure!(
            audit.retention_years >= MIN_RETENTION_YEARS,
            "PHI_AUDIT_RETENTION_YEARS is {}: the audit log is kept six years at least",
            audit.retention_years
        );
        Ok(audit)
    }
}
