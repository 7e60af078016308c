//! Column-level encryption: the envelope, the keyring and blind indexes.
//!
//! Plaintext enters here and leaves sealed; nothing in this module logs,
//! formats or returns a value in an error. Key bytes never leave the keyring:
//! no `Clone`, `Serialize` or revealing `Debug`, zeroized on drop.

pub mod blind_index;
pub mod envelope;
pub mod kek;
pub mod keyring;
#[cfg(test)]
mod tests;

pub use blind_index::BlindIndex;
pub use envelope::{Place, Plaintext, SealedField};
pub use kek::{Kek, KekAuth};
pub use keyring::{KeyState, Keyring};

use std::sync::{Arc, RwLock};

/// The serving keyring, replaceable while the service runs (a reload
/// swaps it whole; requests in flight keep the one they started with).
pub struct KeyringHandle(RwLock<Arc<Keyring>>);

impl KeyringHandle {
    pub fn new(ring: Keyring) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, ring: Keyring) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }
}

impl std::fmt::Debug for KeyringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyringHandle({:?})", self.current())
    }
}

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
