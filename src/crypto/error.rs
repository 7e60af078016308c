//! Why a value could not be sealed or opened: no value, no key in it.

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
