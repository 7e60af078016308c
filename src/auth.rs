//! Who is calling: a Payload CMS JWT (or nothing) becomes a `Principal`, the
//! one thing handlers and services know about the caller.
//!
//! Payload signs HS256 JWTs with the first 32 characters of
//! `hex(sha256(PAYLOAD_SECRET))`, used as UTF-8 bytes. We verify exactly that
//! and nothing else: the header must say `HS256` (no `none`, no other
//! algorithm, no `crit`), the MAC is checked in constant time, `exp` is
//! required, and the token's `collection` must be a configured user
//! collection. Tokens and secrets are never logged.

use std::collections::BTreeSet;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// What a caller may be. An authenticated CMS user is always a `Patient`
/// (of their own records) and may be more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Patient,
    Practitioner,
    Editor,
    Admin,
    Auditor,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Practitioner => "practitioner",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "patient" => Role::Patient,
            "practitioner" => Role::Practitioner,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            "service" => Role::Service,
            _ => return None,
        })
    }
}

/// The caller. Anonymous callers have no user id and no roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Option<String>,
    pub collection: Option<String>,
    pub roles: BTreeSet<Role>,
    /// A non-empty `X-Break-Glass-Reason` header; it matters only to admins.
    pub break_glass_reason: Option<String>,
    /// For the audit log: the request's id and the client's address.
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// Set when the caller presented a service API key.
    pub api_key_id: Option<uuid::Uuid>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn user(id: impl Into<String>, roles: &[Role]) -> Self {
        let mut set: BTreeSet<Role> = roles.iter().copied().collect();
        set.insert(Role::Patient);
        Self {
            user_id: Some(id.into()),
            collection: Some("users".into()),
            roles: set,
            break_glass_reason: None,
            request_id: None,
            client_addr: None,
            api_key_id: None,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_staff(&self) -> bool {
        self.has(Role::Editor) || self.has(Role::Admin)
    }

    /// `patient,admin`: the form the database policies read.
    pub fn roles_csv(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An admin who gave a reason: emergency read access to PHI.
    pub fn break_glass(&self) -> bool {
        self.has(Role::Admin) && self.break_glass_reason.is_some()
    }

    /// 401 for anonymous callers, 403 for anyone but editors and admins.
    /// (Row-level security decides too; this gives the clean early answer.)
    pub fn require_staff(&self) -> Result<(), ApiError> {
        self.require_user()?;
        if self.is_staff() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The user id, or 401 for anonymous callers.
    pub fn require_user(&self) -> Result<&str, ApiError> {
        self.user_id.as_deref().ok_or_else(|| {
            ApiError::Unauthorized("You must be logged in to make this request.".into())
        })
    }
}

/// Why a token was refused. The messages name the problem, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("invalid token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token is missing a required claim")]
    MissingClaim,
    #[error("token is from a collection that may not call this service")]
    Collection,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdClaim {
    Text(String),
    Number(serde_json::Number),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RolesClaim {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    id: Option<IdClaim>,
    collection: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    roles: Option<RolesClaim>,
}

/// Verifies Payload's JWTs.
pub struct JwtVerifier {
    key: SecretString,
    collections: Vec<String>,
    leeway_secs: i64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("collections", &self.collections)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

/// Payload's signing key: the first 32 hex characters of sha256(secret).
pub fn payload_signing_key(secret: &str) -> SecretString {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(hex[..32].to_string())
}

impl JwtVerifier {
    pub fn new(payload_secret: &SecretString, collections: Vec<String>, leeway_secs: i64) -> Self {
        Self {
            key: payload_signing_key(payload_secret.expose_secret()),
            collections,
            leeway_secs,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC takes any key length")
    }

    /// Signs claims as Payload would (for tests and local tooling).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" || header.crit.is_some() {
            return Err(TokenError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;

        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let exp = claims.exp.ok_or(TokenError::MissingClaim)?;
        if now > exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        for not_before in [claims.nbf, claims.iat].into_iter().flatten() {
            if not_before > now.saturating_add(self.leeway_secs) {
                return Err(TokenError::NotYetValid);
            }
        }
        let id = match claims.id.ok_or(TokenError::MissingClaim)? {
            IdClaim::Text(s) if !s.is_empty() && s.len() <= 255 => s,
            IdClaim::Number(n) => n.to_string(),
            IdClaim::Text(_) => return Err(TokenError::MissingClaim),
        };
        let collection = claims.collection.ok_or(TokenError::MissingClaim)?;
        if !self.collections.iter().any(|c| c == &collection) {
            return Err(TokenError::Collection);
        }
        let names = match claims.roles {
            None => vec![],
            Some(RolesClaim::One(r)) => vec![r],
            Some(RolesClaim::Many(v)) => v,
        };
        let roles: Vec<Role> = names
            .iter()
            .filter_map(|n| Role::parse(n))
            // A token cannot make its bearer a machine: those roles come
            // from API keys only.
            .filter(|r| !matches!(r, Role::Service))
            .collect();
        let mut p = Principal::user(id, &roles);
        p.collection = Some(collection);
        Ok(p)
    }
}

/// Extracts the caller: no `Authorization` header means anonymous; a header
/// that does not verify is a 401 (never a silent downgrade to anonymous).
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { principal_of(&req).await })
    }
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::Unauthorized(format!("Unauthorized: {why}."))
}

async fn principal_of(req: &HttpRequest) -> Result<Principal, ApiError> {
    let mut p = identify(req).await?;
    p.request_id = req
        .extensions()
        .get::<crate::telemetry::RequestId>()
        .map(|r| r.0.clone());
    p.client_addr = req.peer_addr().map(|a| a.ip().to_string());
    p.break_glass_reason = req
        .headers()
        .get("x-break-glass-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.chars()
                .filter(|c| !c.is_control())
                .take(500)
                .collect::<String>()
        });
    Ok(p)
}

async fn identify(req: &HttpRequest) -> Result<Principal, ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(Principal::anonymous());
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    // Payload's API-key form: `<collection> API-Key <key>`.
    let mut words = value.splitn(3, ' ');
    if let (Some(collection), Some("API-Key"), Some(secret)) =
        (words.next(), words.next(), words.next())
    {
        let svc = req
            .app_data::<web::Data<crate::service::Services>>()
            .ok_or_else(|| unauthorized("API keys are not accepted here"))?;
        let found = crate::apikeys::authenticate(&svc.pool, &svc.keyring, secret.trim()).await?;
        let Some((id, role)) = found else {
            tracing::info!("API key refused");
            return Err(unauthorized("invalid, expired or revoked API key"));
        };
        return Ok(Principal {
            user_id: Some(format!("apikey:{id}")),
            collection: Some(collection.chars().take(64).collect()),
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
    let verifier = req.app_data::<web::Data<JwtVerifier>>().ok_or_else(|| {
        unauthorized("this service accepts no tokens (PAYLOAD_SECRET is not set)")
    })?;
    let now = chrono::Utc::now().timestamp();
    verifier.verify(token, now).map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        unauthorized(&e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(
            &SecretString::from("payload-secret"),
            vec!["users".into()],
            30,
        )
    }

    fn claims() -> serde_json::Value {
        json!({"id": 42, "collection": "users", "email": "a@example.org", "iat": NOW - 10, "exp": NOW + 3600, "roles": ["admin"]})
    }

    #[test]
    fn payloads_key_derivation() {
        // sha256("payload-secret") hex, first 32 characters.
        let digest = Sha256::digest(b"payload-secret");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            payload_signing_key("payload-secret").expose_secret(),
            &hex[..32]
        );
    }

    #[test]
    fn a_payload_token_is_accepted() {
        let v = verifier();
        let p = v.verify(&v.sign(&claims()), NOW).unwrap();
        assert_eq!(p.user_id.as_deref(), Some("42"));
        assert!(p.has(Role::Admin) && p.has(Role::Patient));
        let mut c = claims();
        c["id"] = json!("64f1c0ffee");
        c["roles"] = json!("editor");
        let p = v.verify(&v.sign(&c), NOW).unwrap();
        assert_eq!(p.user_id.as_deref(), Some("64f1c0ffee"));
        assert!(p.has(Role::Editor));
    }

    #[test]
    fn bad_tokens_are_refused_for_their_reason() {
        let v = verifier();
        let other = JwtVerifier::new(&SecretString::from("another"), vec!["users".into()], 30);
        assert_eq!(
            v.verify(&other.sign(&claims()), NOW),
            Err(TokenError::Signature)
        );

        let mut c = claims();
        c["exp"] = json!(NOW - 31);
        assert_eq!(v.verify(&v.sign(&c), NOW), Err(TokenError::Expired));
        c["exp"] = json!(NOW - 29); // inside the leeway
        assert!(v.verify(&v.sign(&c), NOW).is_ok());

        let mut c = claims();
        c["nbf"] = json!(NOW + 120);
        assert_eq!(v.verify(&v.sign(&c), NOW), Err(TokenError::NotYetValid));

        let mut c = claims();
        c["collection"] = json!("customers");
        assert_eq!(v.verify(&v.sign(&c), NOW), Err(TokenError::Collection));

        for missing in ["id", "exp", "collection"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                v.verify(&v.sign(&c), NOW),
                Err(TokenError::MissingClaim),
                "{missing}"
            );
        }
        assert_eq!(v.verify("abc", NOW), Err(TokenError::Malformed));
        assert_eq!(v.verify("a.b.c.d", NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn only_hs256_is_accepted() {
        let v = verifier();
        let good = v.sign(&claims());
        let (_, rest) = good.split_once('.').unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"hs256","typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["exp"]}"#,
        ] {
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(
                v.verify(&forged, NOW),
                Err(TokenError::Algorithm),
                "{header}"
            );
        }
        // alg none with an empty signature
        let (h_and_p, _) = good.rsplit_once('.').unwrap();
        let body = h_and_p.split_once('.').unwrap().1;
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(v.verify(&none, NOW), Err(TokenError::Algorithm));
    }

    #[test]
    fn tokens_cannot_claim_machine_roles() {
        let v = verifier();
        let mut c = claims();
        c["roles"] = json!(["service", "auditor"]);
        let p = v.verify(&v.sign(&c), NOW).unwrap();
        assert!(!p.has(Role::Service));
        assert!(p.has(Role::Auditor));
    }
}
