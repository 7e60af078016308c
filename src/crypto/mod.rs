//! Column-level encryption: the envelope, the keyring and blind indexes.
//!
//! Plaintext enters here and leaves sealed; nothing in this module logs,
//! formats or returns a value in an error. Key bytes never leave the keyring:
//! no `Clone`, `Serialize` or revealing `Debug`, zeroized on drop.

pub mod blind_index;
pub mod envelope;
pub mod keyring;
#[cfg(test)]
mod tests;

pub use blind_index::BlindIndex;
pub use envelope::{Place, Plaintext, SealedField};
pub use keyring::{KeyState, Keyring};

/// Why a value could not be sealed or opened. Carries no value and no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext names key version {0}, which the keyring does not hold")]
    UnknownKey(u32),
    #[error("ciphertext names key version {0}, which is retired")]
    RetiredKey(u32),
    #[error("malformed ciphertext ({0})")]
    Malformed(&'static str),
    #[error("ciphertext failed authentication (altered, truncated, or moved from another place)")]
    Unauthentic,
    #[error("the keyring has no active key")]
    NoActiveKey,
    #[error("value too long to seal")]
    TooLong,
    #[error("the operating system's random number generator failed")]
    Rng,
}
