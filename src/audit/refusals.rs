//! Refusals that must not cost a permanent row each: requests without
//! credentials refused on a PHI route, and credentials that did not verify.
//! They are counted per client and minute, and each minute's counts are
//! written as one entry per client (with the count in `detail`), logged,
//! and counted in a metric. Refusals of an authenticated caller are still
//! written one by one, with the record they concerned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::Db;
use chrono::{DateTime, Utc};

use super::{Action, Entry, Outcome};
use crate::identity::Principal;

/// At most this many clients are told apart in one minute; the rest are
/// counted together as "other".
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A PHI route asked for without credentials.
    Anonymous,
    /// A token or API key that did not verify.
    BadCredentials,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Anonymous => "anonymous",
            Kind::BadCredentials => "bad_credentials",
        }
    }
}

#[derive(Default)]
struct Window {
    minute: Option<DateTime<Utc>>,
    counts: HashMap<(Kind, String), u64>,
}

#[derive(Default)]
pub struct Refusals {
    window: Mutex<Window>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// One minute's count for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub kind: Kind,
    pub client: String,
    pub count: u64,
    pub minute: DateTime<Utc>,
}

fn this_minute() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now.rem_euclid(60), 0).expect("a valid time")
}

impl Refusals {
    pub fn with_metrics(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            window: Mutex::default(),
            metrics: Some(metrics),
        }
    }

    pub fn note(&self, kind: Kind, client: Option<&str>) {
        if let Some(m) = &self.metrics {
            m.refusal(kind.as_str());
        }
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.minute.get_or_insert_with(this_minute);
        let mut key = (kind, client.unwrap_or("unknown").to_string());
        if !w.counts.contains_key(&key) && w.counts.len() >= MAX_CLIENTS {
            key.1 = "other".into();
        }
        *w.counts.entry(key).or_default() += 1;
    }

    /// Everything counted so far, and a fresh window.
    pub fn drain(&self) -> Vec<Tally> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let Some(minute) = w.minute.take() else {
            return vec![];
        };
        let mut out: Vec<Tally> = w
            .counts
            .drain()
            .map(|((kind, client), count)| Tally {
                kind,
                client,
                count,
                minute,
            })
            .collect();
        out.sort_by(|a, b| (a.kind.as_str(), &a.client).cmp(&(b.kind.as_str(), &b.client)));
        out
    }

    /// Writes each tally as one entry (and a log line).
    pub async fn flush(&self, db: &Db) {
        for t in self.drain() {
            tracing::info!(
                kind = t.kind.as_str(),
                client = %t.client,
                count = t.count,
                minute = %t.minute,
                "refusals in the last minute"
            );
            let who = Principal {
                client_addr: Some(t.client.clone()),
                ..Principal::anonymous()
            };
            let action = match t.kind {
                Kind::Anonymous => Action::AccessDenied,
                Kind::BadCredentials => Action::AuthFailure,
            };
            let entry = Entry::about(action, "requests")
                .outcome(Outcome::Denied)
                .detail(serde_json::json!({
                    "count": t.count,
                    "kind": t.kind.as_str(),
                    "minute": t.minute.to_rfc3339(),
                }));
            super::record_alone(db, &who, entry).await;
        }
    }
}

/// Flushes every `every` until the process ends.
pub fn spawn_flusher(
    refusals: Arc<Refusals>,
    db: Db,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            refusals.flush(&db).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_client_and_kind_bounded() {
        let r = Refusals::default();
        for _ in 0..3 {
            r.note(Kind::Anonymous, Some("10.0.0.1"));
        }
        r.note(Kind::BadCredentials, Some("10.0.0.1"));
        r.note(Kind::Anonymous, None);
        let t = r.drain();
        let got: Vec<(&str, &str, u64)> = t
            .iter()
            .map(|t| (t.kind.as_str(), t.client.as_str(), t.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("anonymous", "10.0.0.1", 3),
                ("anonymous", "unknown", 1),
                ("bad_credentials", "10.0.0.1", 1)
            ]
        );
        assert!(r.drain().is_empty());
        for i in 0..MAX_CLIENTS + 5 {
            r.note(Kind::Anonymous, Some(&format!("c{i}")));
        }
        let t = r.drain();
        assert_eq!(t.len(), MAX_CLIENTS + 1);
        assert_eq!(t.iter().find(|t| t.client == "other").unwrap().count, 5);
    }
}
