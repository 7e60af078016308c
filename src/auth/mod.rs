//! Who is calling, from the request: a Payload JWT (header, or Payload's
//! `payload-token` cookie under Payload's CSRF rule), a service API key, or
//! nothing. The result is a `Principal` (`identity`), the one thing handlers
//! and services know about the caller.
//!
//! A credential that does not verify is a 401, never a silent downgrade to
//! anonymous, and is counted per client and minute for the audit log
//! (`audit::refusals`). A break-glass header from anyone but an admin is
//! recorded as a break-glass attempt. The API's routes identify the caller
//! in `gate` (once, before the anonymous limits apply); the extractor takes
//! that, and identifies the caller itself only on routes outside it.

pub mod jwt;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, COOKIE, HeaderMap, ORIGIN};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

pub use self::jwt::{JwtVerifier, TokenError, payload_signing_key};
pub use crate::identity::{Principal, PurposeOfUse, Role};

use crate::apikeys::ApiKeys;
use crate::audit::refusals::Kind;
use crate::audit::{self, Action, Entry, Outcome};
use crate::error::ApiError;
use crate::telemetry::{ClientRequestId, RequestId};

/// Payload's cookie, honoured only when cookie authentication is configured
/// (`PHI_CSRF_ORIGINS`), and then only under Payload's CSRF rule.
pub const COOKIE_NAME: &str = "payload-token";

/// The origins a cookie-authenticated request may come from (Payload's
/// `csrf` list). Empty: cookies are not accepted at all.
#[derive(Debug, Clone, Default)]
pub struct CookieAuth {
    pub origins: Vec<String>,
}

const MAX_REASON: usize = 500;

/// Extracts the caller (as `gate` identified them). No credentials means
/// anonymous.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let known = req.extensions().get::<Principal>().cloned();
        let req = req.clone();
        Box::pin(async move {
            match known {
                Some(p) => Ok(p),
                // Outside the gate: the peer is the client.
                None => principal_of(&req, req.peer_addr().map(|a| a.ip())).await,
            }
        })
    }
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("Unauthorized: {why}."))
}

/// `X-Break-Glass-Reason`: printable ASCII, at most 500 characters, not
/// blank (an emergency read without its reason is refused, never quietly
/// served as an ordinary one); absent means none.
fn break_glass_reason(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut all = headers.get_all("x-break-glass-reason");
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::bad_request(
            "X-Break-Glass-Reason is given more than once: give one reason.",
        ));
    }
    let text = v
        .to_str()
        .ok()
        .filter(|t| t.bytes().all(|b| (0x20..0x7f).contains(&b)) && t.len() <= MAX_REASON);
    match text.map(str::trim) {
        Some("") => Err(ApiError::bad_request(
            "X-Break-Glass-Reason is empty: write the reason for the emergency access \
             (e.g. \"ER admission, patient unresponsive\"), or leave the header out.",
        )),
        Some(t) => Ok(Some(t.to_string())),
        None => Err(ApiError::bad_request(format!(
            "X-Break-Glass-Reason must be printable ASCII of at most {MAX_REASON} characters \
             (write the reason in plain letters, e.g. \"ER admission, patient unresponsive\")."
        ))),
    }
}

/// `X-Purpose-Of-Use`: one of the vocabulary, once; absent means none
/// given (whether one is owed is the service's question).
fn purpose_of_use(headers: &HeaderMap) -> Result<Option<PurposeOfUse>, ApiError> {
    let mut all = headers.get_all("x-purpose-of-use");
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::bad_request(
            "X-Purpose-Of-Use is given more than once: give one purpose.",
        ));
    }
    v.to_str()
        .ok()
        .and_then(|t| PurposeOfUse::parse(t.trim()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "X-Purpose-Of-Use must be one of: {}.",
                PurposeOfUse::vocabulary()
            ))
        })
}

/// Everything identification needs, one value per worker: the token
/// verifier (none without `PAYLOAD_SECRET`), the cookie rule, the API keys'
/// lookup, and where refusals and attempts are counted and written.
pub struct AuthState {
    pub verifier: Option<std::sync::Arc<JwtVerifier>>,
    pub cookies: CookieAuth,
    pub api_keys: ApiKeys,
    pub refusals: std::sync::Arc<crate::audit::refusals::Refusals>,
    pub audit: crate::store::Db,
}

/// The worker's `AuthState`. Its absence is a 500 that says so, never a
/// request identified without it (refusals uncounted, attempts unrecorded).
fn state(req: &HttpRequest) -> Result<web::Data<AuthState>, ApiError> {
    req.app_data::<web::Data<AuthState>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("no AuthState in the app: requests cannot be identified");
            ApiError::bug("identifying the caller: no AuthState configured")
        })
}

/// Identifies the caller of a request coming from `client` (as `gate`
/// decided it: maybe unknown; `gate` calls this once per request).
pub async fn principal_of(
    req: &HttpRequest,
    client: Option<std::net::IpAddr>,
) -> Result<Principal, ApiError> {
    let client_addr = client.map(|ip| ip.to_string());
    let auth = state(req)?;
    let mut p = match identify(req, &auth).await {
        Ok(p) => p,
        Err(e) => {
            auth.refusals
                .note(Kind::BadCredentials, client_addr.as_deref());
            return Err(e);
        }
    };
    p.request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    p.client_request_id = req
        .extensions()
        .get::<ClientRequestId>()
        .map(|r| r.0.clone());
    p.client_addr = client_addr;
    p.break_glass_reason = break_glass_reason(req.headers())?;
    p.purpose_of_use = purpose_of_use(req.headers())?;
    if p.break_glass_attempt() {
        if p.is_anonymous() {
            auth.refusals
                .note(Kind::Anonymous, p.client_addr.as_deref());
        } else {
            audit::record_alone(
                &auth.audit,
                &p,
                Entry::about(Action::BreakGlass, "requests")
                    .outcome(Outcome::Denied)
                    .reason(p.break_glass_reason.clone()),
            )
            .await;
        }
    }
    Ok(p)
}

/// Payload's CSRF rule for cookies: an Origin must be in the list; without
/// an Origin, only the browser's own same-origin or same-site requests
/// (`Sec-Fetch-Site`) pass. Anything else (other sites, non-browser
/// clients) must send the token in a header.
fn cookie_allowed(headers: &HeaderMap, auth: &CookieAuth) -> bool {
    match headers.get(ORIGIN).map(|o| o.to_str().unwrap_or("")) {
        Some(origin) => auth.origins.iter().any(|o| o == origin),
        None => matches!(
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            Some("same-origin" | "same-site" | "none")
        ),
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.trim().to_string())
}

fn verify_jwt(auth: &AuthState, token: &str) -> Result<Principal, ApiError> {
    let verifier = auth.verifier.as_ref().ok_or_else(|| {
        unauthorized("this service accepts no tokens (PAYLOAD_SECRET is not set)")
    })?;
    let now = chrono::Utc::now().timestamp();
    verifier.verify(token, now).map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        unauthorized(&e.to_string())
    })
}

async fn identify(req: &HttpRequest, state: &AuthState) -> Result<Principal, ApiError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        // Payload's browser form: the HTTP-only cookie.
        let Some(token) = cookie_token(req.headers()) else {
            return Ok(Principal::anonymous());
        };
        let auth = &state.cookies;
        if auth.origins.is_empty() {
            // Cookie authentication is off: a browser's cookie means nothing here.
            return Ok(Principal::anonymous());
        }
        if !cookie_allowed(req.headers(), auth) {
            tracing::info!("cookie refused: origin not allowed");
            return Err(unauthorized(
                "a cookie is accepted only from an allowed origin (send the token in the Authorization header)",
            ));
        }
        return verify_jwt(state, &token);
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    // Payload's API-key form: `<collection> API-Key <key>`.
    let mut words = value.splitn(3, ' ');
    if let (Some(collection), Some("API-Key"), Some(secret)) =
        (words.next(), words.next(), words.next())
    {
        let found = state.api_keys.authenticate(secret.trim()).await?;
        let Some((id, role)) = found else {
            tracing::info!("API key refused");
            return Err(unauthorized("invalid, expired or revoked API key"));
        };
        return Ok(Principal {
            user_id: Some(format!("apikey:{id}")),
            collection: Some(
                collection
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect(),
            ),
            roles: [role].into_iter().collect(),
            api_key_id: Some(id),
            ..Principal::default()
        });
    }
    let token = value
        .strip_prefix("JWT ")
        .or_else(|| value.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("unsupported Authorization scheme"))?
        .trim();
    verify_jwt(state, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                actix_web::http::header::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        h
    }

    #[test]
    fn break_glass_reasons_are_printable_ascii() {
        assert_eq!(break_glass_reason(&headers(&[])).unwrap(), None);
        assert_eq!(
            break_glass_reason(&headers(&[("x-break-glass-reason", "  ER 22:10 ")])).unwrap(),
            Some("ER 22:10".into())
        );
        assert!(
            break_glass_reason(&headers(&[("x-break-glass-reason", "   ")]))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let mut h = HeaderMap::new();
        h.insert(
            actix_web::http::header::HeaderName::from_static("x-break-glass-reason"),
            HeaderValue::from_bytes("Notaufnahme: Patientin bewusstlos, \u{fc}".as_bytes())
                .unwrap(),
        );
        assert!(
            break_glass_reason(&h)
                .unwrap_err()
                .to_string()
                .contains("printable ASCII")
        );
    }

    #[test]
    fn cookies_follow_payloads_csrf_rule() {
        let auth = CookieAuth {
            origins: vec!["https://cms.example".into()],
        };
        assert!(cookie_allowed(
            &headers(&[("origin", "https://cms.example")]),
            &auth
        ));
        assert!(!cookie_allowed(
            &headers(&[("origin", "https://evil.example")]),
            &auth
        ));
        assert!(cookie_allowed(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &auth
        ));
        assert!(!cookie_allowed(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &auth
        ));
        assert!(!cookie_allowed(&headers(&[]), &auth));
        assert_eq!(
            cookie_token(&headers(&[(
                "cookie",
                "a=1; payload-token=abc.def.ghi; b=2"
            )]))
            .as_deref(),
            Some("abc.def.ghi")
        );
    }
}
