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

/// Checks every `every` that the KEK the keyring is wrapped by still
/// answers (`phi_kek_up`): a gateway serves with its keys in memory, so a
/// key service gone, a token revoked or a transit key deleted shows only
/// at the next reload or restart, which would then fail. Connects once and
/// asks for the key each time; when that fails, it connects afresh at once,
/// and only a failed fresh connection counts as down.
pub fn watch_kek(
    handle: Arc<KeyringHandle>,
    settings: Settings,
    metrics: Arc<crate::metrics::Metrics>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    use crate::crypto::kek::Kek;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut kek: Option<Kek> = None;
        let mut was: Option<bool> = None;
        loop {
            tick.tick().await;
            let uri = settings
                .keys
                .kek
                .clone()
                .or_else(|| handle.current().kek().map(str::to_string));
            let Some(uri) = uri else {
                // Keys in the clear (development): no KEK to reach.
                continue;
            };
            if kek.as_ref().is_some_and(|k| k.uri() != uri) {
                kek = None;
            }
            // A probe that fails on a connection made earlier (an AppRole
            // token past its TTL, say) gets one fresh connection at once:
            // only a KEK that cannot be reached afresh counts as down.
            let probed = match &kek {
                Some(k) => k.probe().await,
                None => Err(anyhow::anyhow!("not connected")),
            };
            let result = match probed {
                Ok(()) => Ok(()),
                Err(_) => Kek::connect(&uri, &settings.keys.kek_auth, settings.production())
                    .await
                    .map(|k| kek = Some(k)),
            };
            let up = result.is_ok();
            metrics.kek_up(&uri, up);
            match (&result, was) {
                (Err(e), Some(true) | None) => {
                    tracing::warn!(error = %format!("{e:#}"), "the KEK does not answer: a reload or restart would fail")
                }
                (Ok(()), Some(false)) => tracing::info!("the KEK answers again"),
                _ => {}
            }
            if !up {
                kek = None;
            }
            was = Some(up);
        }
    })
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
