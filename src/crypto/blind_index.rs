//! Blind indexes: equality search on encrypted columns without decrypting.
//!
//! `index = key_id (u32 BE) || HMAC-SHA256(k_col, normalised value)[..16]`,
//! where `k_col = HKDF-SHA256(salt, index root key, "table\0column")`. Each
//! (table, column) gets its own key, so equal values in different columns do
//! not match; index root keys are never encryption keys. The key id prefix
//! lets lookups try every live index key during an index key rotation and
//! lets `keys status` count rows per index key.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const SALT: &[u8] = b"phi-gateway/blind-index/v1";
pub const TRUNCATED_LEN: usize = 16;
pub const LEN: usize = 4 + TRUNCATED_LEN;

/// A blind index value as stored (`bytea`).
#[derive(Clone, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct BlindIndex(Vec<u8>);

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlindIndex(key {:?})", self.key_id())
    }
}

impl BlindIndex {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn key_id(&self) -> Option<u32> {
        (self.0.len() == LEN)
            .then(|| u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]]))
    }
}

pub(super) fn compute(
    key_id: u32,
    root: &[u8; 32],
    table: &str,
    column: &str,
    normalised: &str,
) -> BlindIndex {
    let mut info = Vec::with_capacity(table.len() + column.len() + 1);
    info.extend_from_slice(table.as_bytes());
    info.push(0);
    info.extend_from_slice(column.as_bytes());
    let mut column_key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), root)
        .expand(&info, column_key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(column_key.as_ref())
        .expect("HMAC takes any key length");
    mac.update(normalised.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut out = Vec::with_capacity(LEN);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&tag[..TRUNCATED_LEN]);
    BlindIndex(out)
}

/// Emails compare trimmed and case-insensitively.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: [u8; 32] = [9u8; 32];

    #[test]
    fn same_normalised_value_same_index() {
        let a = compute(
            1,
            &ROOT,
            "practitioners",
            "email",
            &normalise_email(" Ann@Example.org "),
        );
        let b = compute(
            1,
            &ROOT,
            "practitioners",
            "email",
            &normalise_email("ann@example.org"),
        );
        assert_eq!(a, b);
        assert_eq!(a.as_bytes().len(), LEN);
        assert_eq!(a.key_id(), Some(1));
    }

    #[test]
    fn columns_tables_and_keys_separate_indexes() {
        let v = "ann@example.org";
        let base = compute(1, &ROOT, "practitioners", "email", v);
        assert_ne!(base, compute(1, &ROOT, "symptom_submissions", "email", v));
        assert_ne!(base, compute(1, &ROOT, "practitioners", "contact_email", v));
        assert_ne!(base, compute(1, &[8u8; 32], "practitioners", "email", v));
        assert_ne!(
            base,
            compute(1, &ROOT, "practitioners", "email", "bob@example.org")
        );
        // (table, column) boundaries are unambiguous.
        assert_ne!(
            compute(1, &ROOT, "ab", "c", v),
            compute(1, &ROOT, "a", "bc", v)
        );
    }
}
