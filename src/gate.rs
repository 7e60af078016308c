//! The API's front door: who the caller is, whether they may come in now,
//! and a record of every refusal on the way out.
//!
//! Every route under `/api/` (but the OpenAPI document and its UI) is
//! wrapped by `gate`, which runs once the request has been routed (so
//! `/%61pi/herbs` meets it as `/api/herbs` does):
//!
//! 1. The client address: the connection's peer, or, when the peer is a
//!    trusted proxy (`PHI_TRUSTED_PROXIES`), the nearest address in
//!    `X-Forwarded-For` that is not itself a trusted proxy, walking from
//!    the right and stopping at the first entry that is not an address
//!    (then the client is unknown: never the proxy itself). Clients are
//!    counted by IPv4 address or IPv6 /64 (`ClientKey`); the audit log
//!    records the full address.
//! 2. Credentials: two `Authorization` headers or two `payload-token`
//!    cookies are a 400. A client whose credentials keep failing
//!    (`PHI_AUTH_FAILURES_PER_MINUTE`, burst `PHI_AUTH_FAILURE_BURST`) gets
//!    429 before the next one is even checked, so a guesser costs neither
//!    the database (API keys are looked up there) nor the CPU.
//! 3. Identification (`auth::identify`): the `Principal` is decided here,
//!    once, and kept in the request's extensions. A credential that is
//!    ignored (a cookie while cookies are off) leaves the caller anonymous;
//!    one that fails is a 401.
//! 4. Anonymous callers meet a token bucket per client
//!    (`PHI_ANONYMOUS_PER_MINUTE`, burst `PHI_ANONYMOUS_BURST`; past it 429
//!    with `Retry-After`) and a share of the pool (`PHI_ANONYMOUS_CONCURRENCY`,
//!    half of it by default: past it 503 with `Retry-After: 1`, at once),
//!    held for as long as the request runs.
//! 5. On the way out, a refusal (403; 404 of a record that holds anything
//!    personal; 401 to an anonymous caller) is put on the record: an
//!    authenticated caller's as one ACCESS_DENIED entry naming the record,
//!    the action and the fields the body named; an anonymous caller's
//!    counted per client and minute (`audit::refusals`). No route can
//!    refuse without it, whatever the code path that refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, COOKIE, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::refusals::Kind;
use crate::audit::{self, Action, Entry, Outcome};
use crate::config::{Cidr, LimitSettings};
use crate::error::ApiError;
use crate::extract::Attempted;
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::service::Services;

/// What a client is counted under: an IPv4 address, or the /64 an IPv6
/// address is in (one host is given a /64, and can pick any address in
/// it), or unknown (a proxy's header named no address we could read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    V6([u8; 8]),
    Unknown,
}

impl ClientKey {
    pub fn of(addr: Option<IpAddr>) -> Self {
        match addr.map(|a| a.to_canonical()) {
            Some(IpAddr::V4(a)) => ClientKey::V4(a.octets()),
            Some(IpAddr::V6(a)) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&a.octets()[..8]);
                ClientKey::V6(prefix)
            }
            None => ClientKey::Unknown,
        }
    }
}

/// Failed credentials per client: a token bucket that only failures drain,
/// checked before a credential is (a check does not spend a token).
struct FailureThrottle {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<ClientKey, (f64, Instant)>>,
}

impl FailureThrottle {
    fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_sec: per_minute as f64 / 60.0,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn off(&self) -> bool {
        self.per_sec == 0.0
    }

    /// Tokens left for `key` now (a full bucket when it has none).
    fn level(&self, b: &mut (f64, Instant), now: Instant) -> f64 {
        let refill = now.duration_since(b.1).as_secs_f64() * self.per_sec;
        b.0 = (b.0 + refill).min(self.burst);
        b.1 = now;
        b.0
    }

    /// None: go on; Some(seconds): refused, retry after that long.
    fn check(&self, key: ClientKey) -> Option<u32> {
        if self.off() {
            return None;
        }
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let b = all.get_mut(&key)?;
        let left = self.level(b, now);
        (left < 1.0).then(|| ((1.0 - left) / self.per_sec).ceil().max(1.0) as u32)
    }

    fn failed(&self, key: ClientKey) {
        if self.off() {
            return;
        }
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if all.len() > 100_000 {
            // Full buckets carry nothing: forget them.
            let (per_sec, burst) = (self.per_sec, self.burst);
            all.retain(|_, b| b.0 + now.duration_since(b.1).as_secs_f64() * per_sec < burst);
        }
        let b = all.entry(key).or_insert((self.burst, now));
        self.level(b, now);
        b.0 -= 1.0;
    }
}

/// One worker's gate: the buckets are shared by every worker (a client's
/// rate is its rate wherever its connections land), the permits are this
/// worker's, a share of its own pool.
pub struct Gate {
    per_client: Option<Arc<DefaultKeyedRateLimiter<ClientKey>>>,
    failures: Arc<FailureThrottle>,
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
            failures: Arc::new(FailureThrottle::new(
                limits.auth_failures_per_minute,
                limits.auth_failure_burst,
            )),
            permits: Arc::new(Semaphore::new(permits(limits, pool_size, workers))),
            trusted: limits.trusted_proxies.clone().into(),
            since_prune: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The gate of another worker: the same buckets, permits of its own.
    pub fn for_worker(&self, limits: &LimitSettings, pool_size: u32, workers: u32) -> Self {
        Gate {
            per_client: self.per_client.clone(),
            failures: self.failures.clone(),
            permits: Arc::new(Semaphore::new(permits(limits, pool_size, workers))),
            trusted: self.trusted.clone(),
            since_prune: self.since_prune.clone(),
        }
    }

    fn trusts(&self, a: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(a))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy;
    /// then the nearest hop of `X-Forwarded-For` that is not one, read from
    /// the right (anything left of it could have been written by the
    /// client). An entry that is not an address ends the walk: the client
    /// is unknown (`None`), never the proxy.
    pub fn client_addr(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .map(|v| v.to_str().unwrap_or("?"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if hops.is_empty() {
            // The proxy sent the request itself (a health check, say).
            return Some(peer);
        }
        for hop in hops.into_iter().rev() {
            let addr = hop.parse::<IpAddr>().ok()?.to_canonical();
            if !self.trusts(addr) {
                return Some(addr);
            }
        }
        // Every hop is a trusted proxy: the first of them sent it.
        None
    }

    /// Lets an anonymous request in, or says why not. The permit is held
    /// until the request is dropped.
    fn admit(&self, client: ClientKey) -> Result<OwnedSemaphorePermit, (ApiError, &'static str)> {
        if let Some(limiter) = &self.per_client {
            if self.since_prune.fetch_add(1, Ordering::Relaxed) >= PRUNE_EVERY {
                self.since_prune.store(0, Ordering::Relaxed);
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&client) {
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

/// How many `payload-token` cookies the request carries.
fn token_cookies(headers: &HeaderMap) -> usize {
    headers
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|c| c.split(';'))
        .filter(|p| {
            p.trim_start()
                .starts_with(&format!("{}=", crate::auth::COOKIE_NAME))
        })
        .count()
}

/// Two credentials in one request: which one is meant is not ours to
/// guess (a proxy and a client may each have added one).
fn ambiguous_credentials(headers: &HeaderMap) -> Option<ApiError> {
    if headers.get_all(AUTHORIZATION).count() > 1 {
        return Some(ApiError::bad_request(
            "More than one Authorization header: send one credential.",
        ));
    }
    if token_cookies(headers) > 1 {
        return Some(ApiError::bad_request(
            "More than one payload-token cookie: send one credential.",
        ));
    }
    None
}

fn presents_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(AUTHORIZATION) || token_cookies(headers) > 0
}

fn refuse(req: ServiceRequest, e: ApiError) -> ServiceResponse<actix_web::body::BoxBody> {
    let res = e.error_response();
    req.into_response(res).map_into_boxed_body()
}

/// Middleware on the API's routes: steps 1 to 5 of the module's doc.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(gate) = req.app_data::<web::Data<Gate>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // `None`: a trusted proxy's header named no address that could be read.
    let client = gate.client_addr(req.peer_addr().map(|a| a.ip()), req.headers());
    let key = ClientKey::of(client);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let count = |kind: &'static str| {
        if let Some(m) = &metrics {
            m.refusal(kind);
        }
    };
    if let Some(e) = ambiguous_credentials(req.headers()) {
        return Ok(refuse(req, e));
    }
    if presents_credentials(req.headers())
        && let Some(secs) = gate.failures.check(key)
    {
        count("auth_failures");
        return Ok(refuse(
            req,
            ApiError::TooManyRequests {
                retry_after_secs: secs,
            },
        ));
    }
    let who = match crate::auth::principal_of(req.request(), client).await {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, ApiError::Unauthorized(_)) {
                gate.failures.failed(key);
            }
            return Ok(refuse(req, e));
        }
    };
    req.extensions_mut().insert(who.clone());
    if who.is_anonymous() {
        match gate.admit(key) {
            Ok(permit) => {
                req.extensions_mut().insert(Arc::new(permit));
            }
            Err((e, kind)) => {
                count(kind);
                return Ok(refuse(req, e));
            }
        }
    }
    let res = next.call(req).await?.map_into_boxed_body();
    let error = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    if is_refusal(res.request(), res.status(), error) {
        on_the_record(res.request(), &who, res.status(), error).await;
    }
    Ok(res)
}

/// The collections whose records say something about a person: a 404 of
/// one of them may be a record the caller may not see, and is recorded.
fn personal(table: &str) -> bool {
    table != crate::schema::HERBS.table
}

/// What the request asked to do, and to which kind of record.
fn attempt(req: &HttpRequest) -> Option<(Action, &'static str)> {
    let route = crate::telemetry::route_pattern(req)?;
    let rest = route.strip_prefix("/api/")?;
    let (slug, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if slug == "audit" {
        return Some((Action::Export, "audit_log"));
    }
    if slug == "auth" {
        // A session's logout, refused (logged out already).
        return Some((Action::Login, "sessions"));
    }
    let table = crate::schema::ALL.iter().find(|c| c.slug == slug)?.table;
    let item = tail == "{id}";
    let action = match *req.method() {
        Method::POST => Action::Create,
        Method::PATCH => Action::Update,
        Method::DELETE => Action::Delete,
        _ if item => Action::Read,
        _ => Action::List,
    };
    Some((action, table))
}

fn is_refusal(req: &HttpRequest, status: StatusCode, error: Option<&ApiError>) -> bool {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => true,
        // Patients' data refused for want of a purpose of use.
        StatusCode::BAD_REQUEST => matches!(error, Some(ApiError::PurposeRequired(_))),
        StatusCode::NOT_FOUND => {
            req.match_info().get("id").is_some()
                && attempt(req).is_some_and(|(_, table)| personal(table))
        }
        _ => false,
    }
}

/// One refusal, on the record: counted for an anonymous caller, an entry
/// of its own for anyone else (on the reserved audit pool: the request's
/// transaction, if it had one, was rolled back).
async fn on_the_record(
    req: &HttpRequest,
    who: &Principal,
    status: StatusCode,
    error: Option<&ApiError>,
) {
    let Some(svc) = req.app_data::<web::Data<Services>>() else {
        tracing::error!("no services: a refusal went unrecorded");
        return;
    };
    if who.is_anonymous() {
        svc.refusals
            .note(Kind::Anonymous, who.client_addr.as_deref());
        return;
    }
    let Some((action, table)) = attempt(req) else {
        return;
    };
    // Only an id this service could have made; the path's text may be anything.
    let id = req
        .match_info()
        .get("id")
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    let fields = req
        .extensions()
        .get::<Attempted>()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let why = match error {
        Some(ApiError::Forbidden(m)) if m != crate::error::FORBIDDEN => {
            format!("{} refused: {m}", action.as_str())
        }
        Some(ApiError::PurposeRequired(_)) => {
            format!("{} refused: no purpose of use given", action.as_str())
        }
        _ if status == StatusCode::NOT_FOUND => {
            format!(
                "{} refused: not found, or not the caller's to see",
                action.as_str()
            )
        }
        _ => format!("{} refused", action.as_str()),
    };
    let entry = match id {
        Some(id) => Entry::new(Action::AccessDenied, table, id),
        None => Entry::about(Action::AccessDenied, table),
    }
    .outcome(Outcome::Denied)
    .fields(fields)
    .reason(Some(why));
    audit::record_alone(&svc.audit_pool, who, entry).await;
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
            auth_failures_per_minute: 30,
            auth_failure_burst: 3,
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

    fn key(s: &str) -> ClientKey {
        ClientKey::of(Some(s.parse().unwrap()))
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
        // A garbled entry left of the client is the client's own writing.
        assert_eq!(
            g.client_addr(Some(ip("10.0.0.2")), &forwarded("nonsense, 198.51.100.7")),
            Some(ip("198.51.100.7"))
        );
        // One the walk meets first: unknown, never the proxy itself.
        assert_eq!(
            g.client_addr(Some(ip("10.0.0.2")), &forwarded("198.51.100.7, nonsense")),
            None
        );
        assert_eq!(
            g.client_addr(Some(ip("10.0.0.2")), &forwarded("nonsense")),
            None
        );
        // No header: the proxy's own request.
        assert_eq!(
            g.client_addr(Some(ip("10.0.0.2")), &HeaderMap::new()),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            g.client_addr(Some(ip("::ffff:203.0.113.9")), &HeaderMap::new()),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        let g = Gate::new(&limits(60, 1, 10, &[]), 20, 1);
        assert!(g.admit(key("2001:db8::1")).is_ok());
        // Another address of the same /64 shares the bucket.
        assert_eq!(g.admit(key("2001:db8::2")).unwrap_err().1, "anonymous_rate");
        assert!(g.admit(key("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn failing_credentials_are_throttled_per_client_before_they_are_checked() {
        let t = FailureThrottle::new(30, 3);
        let a = key("198.51.100.1");
        let b = key("198.51.100.2");
        // Checking spends nothing.
        for _ in 0..10 {
            assert_eq!(t.check(a), None);
        }
        for _ in 0..3 {
            assert_eq!(t.check(a), None);
            t.failed(a);
        }
        let wait = t.check(a).expect("throttled after the burst");
        assert!((1..=2).contains(&wait), "{wait}");
        assert_eq!(t.check(b), None, "another client has its own bucket");
        assert_eq!(FailureThrottle::new(0, 3).check(a), None);
    }

    #[test]
    fn buckets_are_per_client_and_permits_are_shared() {
        let g = Gate::new(&limits(60, 2, 3, &[]), 20, 1);
        let a = key("198.51.100.1");
        let b = key("198.51.100.2");
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
        assert!(g.admit(key("198.51.100.3")).is_ok());
    }

    #[test]
    fn half_the_pool_by_default_and_two_credentials_are_refused() {
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
        let ip = key("198.51.100.9");
        assert!(a.admit(ip).is_ok());
        assert_eq!(b.admit(ip).unwrap_err().1, "anonymous_rate");
        let mut h = HeaderMap::new();
        assert!(!presents_credentials(&h));
        h.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; payload-token=abc"),
        );
        assert!(presents_credentials(&h) && ambiguous_credentials(&h).is_none());
        h.append(COOKIE, HeaderValue::from_static("payload-token=def"));
        assert!(ambiguous_credentials(&h).is_some());
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("JWT x"));
        assert!(ambiguous_credentials(&h).is_none());
        h.append(AUTHORIZATION, HeaderValue::from_static("JWT y"));
        assert!(ambiguous_credentials(&h).is_some());
    }
}
