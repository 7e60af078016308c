//! Column-level encryption: the envelope, the keyring and blind indexes.
//!
//! Plaintext enters here and leaves sealed; nothing in this module logs,
//! formats or returns a value in an error. Key bytes never leave the keyring:
//! no `Clone`, `Serialize` or revealing `Debug`, zeroized on drop.

pub mod blind_index;
pub mod envelope;
mod error;
mod handle;
pub mod kek;
pub mod keyring;
#[cfg(test)]
mod tests;
mod versions;

pub use blind_index::BlindIndex;
pub use envelope::{Place, Plaintext, SealedField};
pub use error::CryptoError;
pub use handle::KeyringHandle;
pub use kek::{Kek, KekAuth};
pub use keyring::{KeyState, Keyring, Purpose};
