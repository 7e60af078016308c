//! The hash chain over audit entries, as data: an entry's canonical
//! encoding, the link `hash(n) = SHA-256(hash(n-1) || canonical(entry n))`,
//! signed checkpoints of its head and how they verify. Pure: no I/O, no
//! SQL but the column list an entry is read with (`sealer` writes the
//! chain, `verify` checks it, `export` streams it).
//!
//! Checkpoints sign (position, hash, time) with the audit signing key
//! (Ed25519, `signing`): verifiable with the public key alone. Checkpoints
//! made before migration 0009 are HMACs under a key derived from the
//! keyring's index key (`hmac-sha256`), still verifiable by an operator
//! holding the keyring.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::signing::{SigningKeys, VerifyingKeys};
use crate::crypto::Keyring;

pub const GENESIS: [u8; 32] = [0u8; 32];
/// An entry sealed after one more than this much older than an entry
/// sealed before it was probably inserted with a false time.
pub const BACKDATING_TOLERANCE_SECS: i64 = 300;
/// How far apart two machines' clocks may be (the sealer's, which dates a
/// checkpoint, and the database's, which dates an entry).
pub const CLOCK_SKEW_SECS: i64 = 60;
pub const ALG_ED25519: &str = "ed25519";
pub const ALG_HMAC: &str = "hmac-sha256";

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_user: Option<String>,
    pub actor_collection: Option<String>,
    pub actor_roles: Option<String>,
    pub api_key_id: Option<Uuid>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// JSON text the service or a trigger wrote; exported as the JSON
    /// object it holds (`detail_json`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "detail_json")]
    pub detail: Option<String>,
    /// Why PHI was accessed (`X-Purpose-Of-Use`; migration 0016).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The patient the entry concerns (migration 0016).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// An entry's `detail` in an export: the JSON object its text holds, when
/// the text is that object's canonical form (keys in byte order, no
/// spaces: what the service and, since migration 0015, the triggers write),
/// so a reader gets an object and a verifier gets the exact text back for
/// the hash. Text in any other form (entries written before 0015) is
/// exported as the string it is.
pub mod detail_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(d: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        let Some(text) = d else {
            return s.serialize_none();
        };
        match serde_json::from_str::<Value>(text) {
            Ok(v @ (Value::Object(_) | Value::Array(_)))
                if serde_json::to_string(&v).is_ok_and(|c| c == *text) =>
            {
                v.serialize(s)
            }
            _ => s.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(v) => Some(serde_json::to_string(&v).map_err(serde::de::Error::custom)?),
        })
    }
}

const ROW_COLUMNS: [&str; 18] = [
    "seq",
    "at",
    "actor_user",
    "actor_collection",
    "actor_roles",
    "api_key_id",
    "action",
    "entity_type",
    "entity_id",
    "request_id",
    "client_addr",
    "outcome",
    "reason",
    "fields",
    "client_request_id",
    "detail",
    "purpose",
    "subject",
];

/// The select list of an `AuditRow`, each column qualified with `table`
/// (e.g. "l."), `action` (an enum) read as its text.
pub fn row_columns(table: &str) -> String {
    ROW_COLUMNS
        .iter()
        .map(|c| match *c {
            "action" => format!("{table}action::text AS action"),
            c => format!("{table}{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the chain finds an entry: both keys of the log's one index.
pub const JOIN_LOG: &str = "l.txid = c.txid AND l.seq = c.seq";

fn put(out: &mut Vec<u8>, tag: u8, value: Option<&[u8]>) {
    out.push(tag);
    match value {
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        Some(v) => {
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
    }
}

/// A canonical, unambiguous encoding: every field tagged and length-prefixed
/// (absent distinct from empty), times in UTC microseconds. Fields added
/// after v1 (16 to 19) are encoded only when present, so entries written
/// before them hash as they always did.
pub fn canonical(r: &AuditRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"phi-gateway/audit/v1");
    put(&mut out, 1, Some(&r.seq.to_be_bytes()));
    put(
        &mut out,
        2,
        Some(r.at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes()),
    );
    put(&mut out, 3, r.actor_user.as_deref().map(str::as_bytes));
    put(
        &mut out,
        4,
        r.actor_collection.as_deref().map(str::as_bytes),
    );
    put(&mut out, 5, r.actor_roles.as_deref().map(str::as_bytes));
    put(
        &mut out,
        6,
        r.api_key_id.as_ref().map(|u| u.as_bytes().as_slice()),
    );
    put(&mut out, 7, Some(r.action.as_bytes()));
    put(&mut out, 8, Some(r.entity_type.as_bytes()));
    put(&mut out, 9, r.entity_id.as_deref().map(str::as_bytes));
    put(&mut out, 10, r.request_id.as_deref().map(str::as_bytes));
    put(&mut out, 11, r.client_addr.as_deref().map(str::as_bytes));
    put(&mut out, 12, Some(r.outcome.as_bytes()));
    put(&mut out, 13, r.reason.as_deref().map(str::as_bytes));
    out.push(14);
    out.extend_from_slice(&(r.fields.len() as u32).to_be_bytes());
    for f in &r.fields {
        put(&mut out, 15, Some(f.as_bytes()));
    }
    if let Some(c) = &r.client_request_id {
        put(&mut out, 16, Some(c.as_bytes()));
    }
    if let Some(d) = &r.detail {
        put(&mut out, 17, Some(d.as_bytes()));
    }
    if let Some(p) = &r.purpose {
        put(&mut out, 18, Some(p.as_bytes()));
    }
    if let Some(s) = &r.subject {
        put(&mut out, 19, Some(s.as_bytes()));
    }
    out
}

pub fn link(prev: &[u8], r: &AuditRow) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(r));
    h.finalize().into()
}

/// A signed head of the chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub pos: i64,
    #[serde(with = "hex")]
    pub hash: Vec<u8>,
    pub at: DateTime<Utc>,
    #[serde(default = "legacy_alg")]
    pub alg: String,
    pub key_id: u32,
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
}

fn legacy_alg() -> String {
    ALG_HMAC.into()
}

pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[(b >> 4) as usize] as char);
            s.push(DIGITS[(b & 15) as usize] as char);
        }
        s
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

/// What a checkpoint signs: (position, hash, time), domain-separated by
/// scheme.
pub fn checkpoint_message(alg: &str, pos: i64, hash: &[u8], at: &DateTime<Utc>) -> Vec<u8> {
    let mut m = if alg == ALG_HMAC {
        b"phi-gateway/audit-checkpoint/v1".to_vec()
    } else {
        b"phi-gateway/audit-checkpoint/v2/ed25519".to_vec()
    };
    m.extend_from_slice(&pos.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
    m
}

/// The keys a verification may use: the public signing keys (what an
/// auditor holds) and, for checkpoints made before 0009, the keyring.
#[derive(Clone, Copy, Default)]
pub struct VerifyKeys<'a> {
    pub public: Option<&'a VerifyingKeys>,
    pub keyring: Option<&'a Keyring>,
}

pub fn verify_checkpoint(keys: VerifyKeys<'_>, c: &Checkpoint) -> bool {
    let msg = checkpoint_message(&c.alg, c.pos, &c.hash, &c.at);
    match c.alg.as_str() {
        ALG_ED25519 => keys
            .public
            .is_some_and(|p| p.verify(c.key_id, &msg, &c.signature, c.at)),
        ALG_HMAC => keys.keyring.is_some_and(|ring| {
            ring.checkpoint_key(c.key_id).is_some_and(|key| {
                let mut mac =
                    <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref()).expect("any length");
                mac.update(&msg);
                mac.verify_slice(&c.signature).is_ok()
            })
        }),
        _ => false,
    }
}

/// Signs a checkpoint of (pos, hash) now.
pub fn sign_checkpoint(signing: &SigningKeys, pos: i64, hash: Vec<u8>) -> Checkpoint {
    // Microsecond precision, as stored.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let (key_id, sig) = signing.sign(&checkpoint_message(ALG_ED25519, pos, &hash, &at));
    Checkpoint {
        pos,
        hash,
        at,
        alg: ALG_ED25519.into(),
        key_id,
        signature: sig.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            actor_user: Some("users:5".into()),
            actor_collection: Some("users".into()),
            actor_roles: Some("patient".into()),
            api_key_id: None,
            action: "READ".into(),
            entity_type: "symptom_submissions".into(),
            entity_id: Some("x".into()),
            request_id: None,
            client_addr: None,
            outcome: "success".into(),
            reason: None,
            fields: vec!["notes".into()],
            client_request_id: None,
            detail: None,
            purpose: None,
            subject: None,
        }
    }

    #[test]
    fn every_field_is_in_the_hash_and_absent_is_not_empty() {
        let base = link(&GENESIS, &row(1));
        let mut r = row(1);
        r.reason = Some(String::new());
        assert_ne!(link(&GENESIS, &r), base, "absent and empty differ");
        let mut r = row(1);
        r.fields = vec!["not".into(), "es".into()];
        assert_ne!(link(&GENESIS, &r), base, "fields are length-prefixed");
        let mut r = row(1);
        r.detail = Some("{}".into());
        assert_ne!(link(&GENESIS, &r), base);
        // The previous hash is part of the link.
        assert_ne!(link(&[1u8; 32], &row(1)), base);
        assert_eq!(link(&GENESIS, &row(1)), base, "deterministic");
    }

    #[test]
    fn entries_from_before_later_fields_hash_as_they_did() {
        // Fields 16 and 17 are encoded only when present.
        let enc = canonical(&row(1));
        assert!(!enc.contains(&16) || enc.windows(5).all(|w| w != [16, 0, 0, 0, 0]));
        let mut r = row(1);
        r.client_request_id = Some("c".into());
        assert!(canonical(&r).len() > enc.len());
        // And so are 18 (purpose) and 19 (subject), each in the hash.
        let base = link(&GENESIS, &row(1));
        let mut r = row(1);
        r.purpose = Some("treatment".into());
        assert_ne!(link(&GENESIS, &r), base);
        let mut p = row(1);
        p.subject = Some("treatment".into());
        assert_ne!(link(&GENESIS, &p), link(&GENESIS, &r), "tagged apart");
    }

    #[test]
    fn detail_is_exported_as_its_object_when_its_text_is_canonical() {
        let mut r = row(1);
        r.detail = Some(r#"{"counted":3,"returned":3}"#.into());
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["detail"].is_object(), "{v}");
        let back: AuditRow = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        // Text in another form (a trigger's before 0015) stays the string.
        r.detail = Some(r#"{"status": {"new": "reviewed"}}"#.into());
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["detail"].is_string(), "{v}");
        let back: AuditRow = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn checkpoints_verify_with_the_public_key_and_not_after_a_change() {
        let keys = SigningKeys::generate().unwrap();
        let public = keys.public();
        let c = sign_checkpoint(&keys, 7, vec![9u8; 32]);
        let k = VerifyKeys {
            public: Some(&public),
            keyring: None,
        };
        assert!(verify_checkpoint(k, &c));
        let mut moved = c.clone();
        moved.pos = 8;
        assert!(!verify_checkpoint(k, &moved));
        let mut hmac = c.clone();
        hmac.alg = ALG_HMAC.into();
        assert!(!verify_checkpoint(k, &hmac), "no keyring, no HMAC");
        assert_eq!(
            hex::decode(&hex::encode(&[0, 255, 16])),
            Some(vec![0, 255, 16])
        );
        assert_eq!(hex::decode("abc"), None);
    }
}
