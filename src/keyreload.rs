//! Reloading the keyring without a restart: on SIGHUP (`phi-gateway keys
//! reload --pid N` sends one) the keyring is read again and, if it loads,
//! replaces the serving one; a keyring that does not load is refused and
//! the old one stays. Requests in flight finish with the keyring they
//! started with.

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::{Keyring, KeyringHandle, Purpose};
use crate::service::keycheck;

/// Loads the keyring as `serve` does; refuses one that lost a key the
/// serving keyring still uses, or whose keys are not the ones the serving
/// keyring and the database know by the same ids (`keycheck`).
pub async fn reload(
    handle: &KeyringHandle,
    settings: &Settings,
    db: &crate::store::Db,
) -> anyhow::Result<()> {
    let fresh = Keyring::load(&settings.keys, settings.production()).await?;
    let current = handle.current();
    keycheck::same_keys(&current, &fresh)?;
    keycheck::compare(db, &fresh).await?;
    for (id, state) in current.versions(Purpose::Data) {
        if state != crate::crypto::KeyState::Retired
            && !fresh.versions(Purpose::Data).iter().any(|(i, _)| *i == id)
        {
            anyhow::bail!(
                "the new keyring lacks data key {id}, which the serving one still opens with"
            );
        }
    }
    handle.replace(fresh);
    Ok(())
}

pub fn watch(
    handle: Arc<KeyringHandle>,
    settings: Settings,
    db: crate::store::Db,
    metrics: Arc<crate::metrics::Metrics>,
) {
    metrics.keyring_active(handle.current().active_key_id());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, before serving goes on: a SIGHUP's default is to
        // end the process.
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: keyring reload needs a restart");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let result = reload(&handle, &settings, &db).await;
                metrics.keyring_reloaded(result.is_ok());
                metrics.keyring_active(handle.current().active_key_id());
                match result {
                    Ok(()) => tracing::info!(keyring = ?handle.current(), "keyring reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "keyring reload refused; the old keyring stays")
                    }
                }
            }
        });
    }
}
