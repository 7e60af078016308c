//! What a caller without credentials may ask of the service at once: a
//! rate per client address, and a share of the database pool.
//!
//! Anonymous requests (no `Authorization` header, no Payload cookie) to
//! `/api/` pass here first. Each client address has a token bucket
//! (`PHI_ANONYMOUS_PER_MINUTE`, burst `PHI_ANONYMOUS_BURST`): past it, 429
//! with `Retry-After`. All anonymous requests together hold at most
//! `PHI_ANONYMOUS_CONCURRENCY` permits (half the pool by default; each
//! worker holds its share, before its own share of the pool) for as long
//! as they run: past that, 503 with `Retry-After: 1`, at once, so a
//! flood of expensive public queries never takes the connections that
//! signed-in callers need. Their statements also run under the shorter
//! anonymous statement timeout (`store::begin`).
//!
//! The client address is the connection's peer, or, when the peer is a
//! trusted proxy (`PHI_TRUSTED_PROXIES`), the last address in
//! `X-Forwarded-For` that is not itself a trusted proxy. It is what the
//! audit log records as the caller's address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, COOKIE, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Cidr, LimitSettings};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The caller's address as the gate decided it (request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// One worker's gate: the buckets are shared by every worker (a client's
/// rate is its rate wherever its connections land), the permits are this
/// worker's, a share of its own pool.
pub struct Gate {
    per_client: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    permits: Arc<Semaphore>,
    trusted: Arc<[Cidr]>,
    /// Requests since the buckets were last pruned.
    since_prune: Arc<AtomicU32>,
}

/// Buckets of idle clients are dropped after this many anonymous requests.
const PRUNE_EVERY: u32 = 10_000;

impl Gate {
    /// `pool_size`: the connections of the worker this gate stands before;
    /// `workers`: how many share `PHI_ANONYMOUS_CONCURRENCY` when it is set.
    pub fn new(limits: &LimitSettings, pool_size: u32, workers: u32) -> Self {
        let per_client = NonZeroU32::new(limits.anonymous_per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(limits.anonymous_burst).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ))
        });
        Gate {
            per_client,
            permits: Arc::new(Semaphore::new(permits(limits, pool_size, workers))),
            trusted: limits.trusted_proxies.clone().into(),
            since_prune: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The gate of another worker: the same buckets, permits of its own.
    pub fn for_worker(&self, limits: &LimitSettings, pool_size: u32, workers: u32) -> Self {
        Gate {
            per_client: self.per_client.clone(),
            permits: Arc::new(Semaphore::new(permits(limits, pool_size, workers))),
            trusted: self.trusted.clone(),
            since_prune: self.since_prune.clone(),
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy.
    pub fn client_addr(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusted.iter().any(|c| c.contains(peer)) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|a| a.trim().parse::<IpAddr>().map(|a| a.to_canonical()))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        // Walk back from the nearest hop; the first untrusted one is the
        // client (anything before it could have been written by them).
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|a| !self.trusted.iter().any(|c| c.contains(*a)))
                .unwrap_or(peer),
        )
    }

    /// Lets an anonymous request in, or says why not. The permit is held
    /// until the request is dropped.
    fn admit(
        &self,
        client: Option<IpAddr>,
    ) -> Result<OwnedSemaphorePermit, (ApiError, &'static str)> {
        if let (Some(limiter), Some(ip)) = (&self.per_client, client) {
            if self.since_prune.fetch_add(1, Ordering::Relaxed) >= PRUNE_EVERY {
                self.since_prune.store(0, Ordering::Relaxed);
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
                return Err((
                    ApiError::TooManyRequests {
                        retry_after_secs: secs,
                    },
                    "anonymous_rate",
                ));
            }
        }
        self.permits.clone().try_acquire_owned().map_err(|_| {
            (
                ApiError::Unavailable {
                    what: "Capacity for requests without credentials",
                    retry_after_secs: 1,
                },
                "anonymous_busy",
            )
        })
    }
}

/// One worker's permits: half its pool, or its share of the setting.
fn permits(limits: &LimitSettings, pool_size: u32, workers: u32) -> usize {
    match limits.anonymous_concurrency {
        0 => (pool_size / 2).max(1) as usize,
        n => n.div_ceil(workers.max(1)) as usize,
    }
}

fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION)
        || headers
            .get_all(COOKIE)
            .filter_map(|v| v.to_str().ok())
            .any(|c| {
                c.split(';')
                    .any(|p| p.trim_start().starts_with("payload-token="))
            })
}

/// Middleware: the client address for everyone, the gate for anonymous
/// requests to the API (the OpenAPI document and health checks are free).
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(gate) = req.app_data::<web::Data<Gate>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let client = gate.client_addr(req.peer_addr().map(|a| a.ip()), req.headers());
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let path = req.path();
    let gated = path.starts_with("/api/")
        && !path.starts_with("/api/openapi.json")
        && !path.starts_with("/api/docs")
        && !has_credentials(req.headers());
    if gated {
        match gate.admit(client) {
            Ok(permit) => {
                req.extensions_mut().insert(Arc::new(permit));
            }
            Err((e, kind)) => {
                if let Some(m) = req.app_data::<web::Data<Metrics>>() {
                    m.refusal(kind);
                }
                let res = e.error_response();
                return Ok(req.into_response(res).map_into_boxed_body());
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn limits(per_minute: u32, burst: u32, concurrency: u32, trusted: &[&str]) -> LimitSettings {
        LimitSettings {
            anonymous_per_minute: per_minute,
            anonymous_burst: burst,
            anonymous_concurrency: concurrency,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn forwarded(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let g = Gate::new(&limits(0, 0, 1, &["10.0.0.0/8"]), 20, 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            g.client_addr(Some(ip("203.0.113.9")), &forwarded("198.51.100.1")),
            Some(ip("203.0.113.9"))
        );
        // Through the trusted proxies: the last hop that is not one of them.
        assert_eq!(
            g.client_addr(
                Some(ip("10.0.0.2")),
                &forwarded("1.2.3.4, 198.51.100.7, 10.0.0.5")
            ),
            Some(ip("198.51.100.7"))
        );
        // A garbled header: the proxy itself.
        assert_eq!(
            g.client_addr(Some(ip("10.0.0.2")), &forwarded("nonsense")),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            g.client_addr(Some(ip("::ffff:203.0.113.9")), &HeaderMap::new()),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn buckets_are_per_client_and_permits_are_shared() {
        let g = Gate::new(&limits(60, 2, 3, &[]), 20, 1);
        let a = Some("198.51.100.1".parse().unwrap());
        let b = Some("198.51.100.2".parse().unwrap());
        let p1 = g.admit(a).unwrap();
        let _p2 = g.admit(a).unwrap();
        let (e, kind) = g.admit(a).unwrap_err();
        assert_eq!(kind, "anonymous_rate");
        assert!(
            matches!(e, ApiError::TooManyRequests { retry_after_secs } if retry_after_secs >= 1)
        );
        // Another client has its own bucket, and the third permit.
        let _p3 = g.admit(b).unwrap();
        let (_, kind) = g.admit(b).unwrap_err();
        assert_eq!(kind, "anonymous_busy");
        drop(p1);
        // A permit came back (b spent its burst of two meanwhile).
        assert_eq!(g.admit(b).unwrap_err().1, "anonymous_rate");
        assert!(g.admit(Some("198.51.100.3".parse().unwrap())).is_ok());
    }

    #[test]
    fn half_the_pool_by_default_and_credentials_skip_the_gate() {
        let g = Gate::new(&limits(0, 0, 0, &[]), 20, 2);
        assert_eq!(g.permits.available_permits(), 10);
        // A setting is shared among the workers; the buckets are common.
        let l = limits(60, 1, 7, &[]);
        let a = Gate::new(&l, 10, 2);
        let b = a.for_worker(&l, 10, 2);
        assert_eq!(
            (a.permits.available_permits(), b.permits.available_permits()),
            (4, 4)
        );
        let ip = Some("198.51.100.9".parse().unwrap());
        assert!(a.admit(ip).is_ok());
        assert_eq!(b.admit(ip).unwrap_err().1, "anonymous_rate");
        let mut h = HeaderMap::new();
        assert!(!has_credentials(&h));
        h.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; payload-token=abc"),
        );
        assert!(has_credentials(&h));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("JWT x"));
        assert!(has_credentials(&h));
    }
}
