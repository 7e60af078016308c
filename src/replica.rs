//! How far behind the read replica (`DATABASE_READ_URL`) is, and whether
//! the public directory may be read from it: a task asks the replica every
//! second; while its lag is within `DATABASE_READ_MAX_LAG_SECS` (and it
//! answers), anonymous directory reads go there, otherwise to the primary.
//! Until the first answer, everything stays on the primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::metrics::Metrics;

/// The replica as the last check found it.
#[derive(Debug)]
pub struct ReplicaLag {
    /// Milliseconds behind the primary; -1: not known (not yet asked, or
    /// it did not answer).
    lag_ms: AtomicI64,
    usable: AtomicBool,
    pub max: Duration,
}

impl ReplicaLag {
    pub fn new(max: Duration) -> Self {
        Self {
            lag_ms: AtomicI64::new(-1),
            usable: AtomicBool::new(false),
            max,
        }
    }

    /// Whether reads may go to the replica now.
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// Seconds behind, when known.
    pub fn lag_seconds(&self) -> Option<f64> {
        let ms = self.lag_ms.load(Ordering::Relaxed);
        (ms >= 0).then(|| ms as f64 / 1000.0)
    }

    fn record(&self, lag: Option<f64>, metrics: &Metrics) {
        let usable = lag.is_some_and(|l| l <= self.max.as_secs_f64());
        self.lag_ms
            .store(lag.map_or(-1, |l| (l * 1000.0) as i64), Ordering::Relaxed);
        let was = self.usable.swap(usable, Ordering::Relaxed);
        metrics.replica(lag, usable);
        if was != usable {
            match lag {
                Some(l) if usable => {
                    tracing::info!(lag_seconds = l, "read replica back within its lag bound")
                }
                Some(l) => tracing::warn!(
                    lag_seconds = l,
                    max_seconds = self.max.as_secs_f64(),
                    "read replica behind: the directory is read from the primary"
                ),
                None => tracing::warn!(
                    "read replica does not answer: the directory is read from the primary"
                ),
            }
        }
    }
}

/// Starts the check (in the current runtime): every `every`, on a pool of
/// one connection of its own.
pub fn watch(
    options: PgConnectOptions,
    state: Arc<ReplicaLag>,
    metrics: Arc<Metrics>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(every.max(Duration::from_secs(1)))
        .connect_lazy_with(options);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lag = tokio::time::timeout(
                every.max(Duration::from_secs(1)),
                crate::store::health::replica_lag(&pool),
            )
            .await
            .ok()
            .and_then(Result::ok);
            state.record(lag, &metrics);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_the_bound_it_is_used_and_beyond_or_silent_it_is_not() {
        let m = Metrics::default();
        let r = ReplicaLag::new(Duration::from_secs(5));
        assert!(!r.usable(), "not before the first answer");
        assert_eq!(r.lag_seconds(), None);
        r.record(Some(0.2), &m);
        assert!(r.usable());
        assert_eq!(r.lag_seconds(), Some(0.2));
        r.record(Some(5.0), &m);
        assert!(r.usable(), "the bound itself is within");
        r.record(Some(7.5), &m);
        assert!(!r.usable());
        assert_eq!(r.lag_seconds(), Some(7.5));
        r.record(None, &m);
        assert!(!r.usable());
        assert_eq!(r.lag_seconds(), None);
    }
}
