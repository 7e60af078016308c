//! Payload CMS JWTs: verified exactly as Payload signs them, and nothing
//! else.
//!
//! Payload signs HS256 JWTs with the first 32 characters of
//! `hex(sha256(PAYLOAD_SECRET))`, used as UTF-8 bytes. We verify exactly that:
//! the header must say `HS256` (no `none`, no other algorithm, no `crit`),
//! the MAC is checked in constant time, `exp` is required, the token's
//! `collection` must be a configured user collection, its `id` must keep its
//! exact value (a string, or an integer: `1e21` and ids beyond 2^64 are
//! refused rather than rounded into someone else's), and, when a largest age
//! is configured, `iat` must be recent enough. Tokens and secrets are never
//! logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::identity::{Principal, Role};

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
    #[error("token id is not an exact string or integer")]
    Id,
    #[error("token is older than this service accepts")]
    TooOld,
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
    /// Payload's login session (collections with `useSessions`, the default).
    sid: Option<String>,
}

/// Verifies Payload's JWTs.
pub struct JwtVerifier {
    key: SecretString,
    collections: Vec<String>,
    leeway_secs: i64,
    max_age_secs: Option<i64>,
    /// Tokens whose signature and claims were verified, by their exact
    /// text, with what they said: a client sends the same token with every
    /// request, and checking it again (base64, JSON, HMAC) was 5% of a
    /// read's CPU (BENCHMARKS.md). The times are checked on every use.
    seen: std::sync::Mutex<std::collections::HashMap<Box<str>, Seen>>,
}

/// A verified token's principal and times (`JwtVerifier::seen`).
struct Seen {
    principal: Principal,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
}

/// At most this many verified tokens are remembered; then all are
/// forgotten at once (they are verified again on their next use).
const SEEN_AT_MOST: usize = 4096;

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
            max_age_secs: None,
            seen: Default::default(),
        }
    }

    /// Refuses tokens issued (`iat`) longer ago than this: bounds how long
    /// a logged-out user's token keeps working.
    pub fn with_max_age(mut self, secs: Option<i64>) -> Self {
        self.max_age_secs = secs;
        self
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
        let known = self
            .seen()
            .get(token)
            .map(|k| (k.principal.clone(), k.exp, k.nbf, k.iat));
        if let Some((principal, exp, nbf, iat)) = known {
            self.check_times(exp, nbf, iat, now)?;
            return Ok(principal);
        }
        let (principal, exp, nbf, iat) = self.verify_whole(token, now)?;
        let mut seen = self.seen();
        if seen.len() >= SEEN_AT_MOST {
            seen.clear();
        }
        let remembered = Seen {
            principal: principal.clone(),
            exp,
            nbf,
            iat,
        };
        seen.insert(token.into(), remembered);
        Ok(principal)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Box<str>, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time rules, in order: expired, not yet valid, too old.
    fn check_times(
        &self,
        exp: i64,
        nbf: Option<i64>,
        iat: Option<i64>,
        now: i64,
    ) -> Result<(), TokenError> {
        if now > exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        for not_before in [nbf, iat].into_iter().flatten() {
            if not_before > now.saturating_add(self.leeway_secs) {
                return Err(TokenError::NotYetValid);
            }
        }
        if let Some(max) = self.max_age_secs {
            let iat = iat.ok_or(TokenError::MissingClaim)?;
            if now.saturating_sub(iat) > max.saturating_add(self.leeway_secs) {
                return Err(TokenError::TooOld);
            }
        }
        Ok(())
    }

    /// Every check of a token not seen before: its form, algorithm and
    /// signature, its times, its claims.
    #[allow(clippy::type_complexity)]
    fn verify_whole(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Principal, i64, Option<i64>, Option<i64>), TokenError> {
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
        let (nbf, iat) = (claims.nbf, claims.iat);
        self.check_times(exp, nbf, iat, now)?;
        let id = match claims.id.ok_or(TokenError::MissingClaim)? {
            IdClaim::Text(s)
                if !s.is_empty()
                    && s.len() <= 255
                    && !s.chars().any(|c| c.is_control() || c.is_whitespace()) =>
            {
                s
            }
            // Integers keep their exact value; a float (1e21, 5.0) does not.
            IdClaim::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(TokenError::Id),
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
        let mut p = Principal::user(&collection, &id, &roles);
        // The session a logout ends: Payload's own id for it, else this
        // very token (its signature's digest).
        let session = match claims.sid {
            Some(sid)
                if !sid.is_empty()
                    && sid.len() <= 128
                    && sid.chars().all(|c| c.is_ascii_graphic()) =>
            {
                format!("sid:{sid}")
            }
            _ => format!(
                "sig:{}",
                crate::audit::chain::hex::encode(&Sha256::digest(&sig)[..16])
            ),
        };
        p.session = Some(crate::identity::Session {
            key: format!("{}#{session}", p.user_id.as_deref().unwrap_or_default()),
            // Accepted until then (the leeway included).
            expires_at: exp.saturating_add(self.leeway_secs),
        });
        Ok((p, exp, nbf, iat))
    }
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

    /// A token verified once is remembered, but its times are checked at
    /// every use, and a token that differs in any character (a forged
    /// signature, other claims) is verified from the start.
    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_checked_whole() {
        let v = verifier().with_max_age(Some(600));
        let t = v.sign(&claims());
        assert_eq!(
            v.verify(&t, NOW).unwrap().user_id.as_deref(),
            Some("users:42")
        );
        assert_eq!(v.seen().len(), 1);
        assert_eq!(
            v.verify(&t, NOW).unwrap().user_id.as_deref(),
            Some("users:42")
        );
        assert_eq!(v.verify(&t, NOW + 3600 + 31), Err(TokenError::Expired));
        assert_eq!(v.verify(&t, NOW - 60), Err(TokenError::NotYetValid));
        assert_eq!(v.verify(&t, NOW + 700), Err(TokenError::TooOld));
        // A character inside the signature (the last one also holds
        // padding bits).
        let i = t.len() - 10;
        let c = if &t[i..=i] == "A" { "B" } else { "A" };
        let forged = format!("{}{c}{}", &t[..i], &t[i + 1..]);
        assert_eq!(v.verify(&forged, NOW), Err(TokenError::Signature));
        let other = verifier().sign(&claims());
        assert_eq!(
            JwtVerifier::new(
                &SecretString::from("another-secret"),
                vec!["users".into()],
                30
            )
            .verify(&other, NOW),
            Err(TokenError::Signature),
            "what one verifier remembers, another does not"
        );
        assert_eq!(v.seen().len(), 1, "refused tokens are not remembered");
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
        assert_eq!(p.user_id.as_deref(), Some("users:42"));
        assert!(p.has(Role::Admin) && p.has(Role::Patient));
        let mut c = claims();
        c["id"] = json!("64f1c0ffee");
        c["roles"] = json!("editor");
        let p = v.verify(&v.sign(&c), NOW).unwrap();
        assert_eq!(p.user_id.as_deref(), Some("users:64f1c0ffee"));
        assert!(p.has(Role::Editor));
    }

    #[test]
    fn a_token_names_the_session_a_logout_ends() {
        let v = verifier();
        let mut c = claims();
        c["sid"] = json!("d3aa1c26-47be-4302-b532-fb5de1132173");
        let s = v.verify(&v.sign(&c), NOW).unwrap().session.unwrap();
        assert_eq!(s.key, "users:42#sid:d3aa1c26-47be-4302-b532-fb5de1132173");
        // Accepted until the expiry and the leeway: kept that long.
        assert_eq!(s.expires_at, NOW + 3600 + 30);
        // Two tokens of the same session share it.
        c["iat"] = json!(NOW - 60);
        assert_eq!(v.verify(&v.sign(&c), NOW).unwrap().session.unwrap(), s);
        // Without a session id (or with one that is not plain text): the
        // token itself, so no two tokens share it.
        for sid in [json!(null), json!(""), json!("a b"), json!(7)] {
            let mut c = claims();
            c["sid"] = sid;
            let Ok(p) = v.verify(&v.sign(&c), NOW) else {
                continue;
            };
            let key = p.session.unwrap().key;
            assert!(
                key.starts_with("users:42#sig:") && key.len() == 13 + 32,
                "{key}"
            );
            c["iat"] = json!(NOW - 1);
            assert_ne!(
                v.verify(&v.sign(&c), NOW).unwrap().session.unwrap().key,
                key
            );
        }
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
    fn ids_keep_their_exact_value() {
        let v = verifier();
        let with_id = |id: serde_json::Value| {
            let mut c = claims();
            c["id"] = id;
            v.verify(&v.sign(&c), NOW)
        };
        // Above 2^53 an integer still names exactly one user.
        assert_eq!(
            with_id(json!(9007199254740993u64))
                .unwrap()
                .user_id
                .as_deref(),
            Some("users:9007199254740993")
        );
        assert_ne!(
            with_id(json!(9007199254740993u64)).unwrap().user_id,
            with_id(json!(9007199254740992u64)).unwrap().user_id
        );
        for bad in [
            json!(1e21),
            json!(5.0),
            json!(""),
            json!("a b"),
            json!("x\u{0}"),
        ] {
            assert_eq!(with_id(bad.clone()).err(), Some(TokenError::Id), "{bad}");
        }
    }

    #[test]
    fn a_largest_age_bounds_logged_out_tokens() {
        let v = verifier().with_max_age(Some(3600));
        let mut c = claims();
        c["iat"] = json!(NOW - 7200);
        c["exp"] = json!(NOW + 3600);
        assert_eq!(v.verify(&v.sign(&c), NOW), Err(TokenError::TooOld));
        c["iat"] = json!(NOW - 60);
        assert!(v.verify(&v.sign(&c), NOW).is_ok());
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
