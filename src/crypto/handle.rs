//! The serving keyring: the one a reload replaces while the service runs,
//! and whether it may be used yet (its keys matched with the database's).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use super::keyring::Keyring;

/// The serving keyring, replaceable while the service runs (a reload
/// swaps it whole; requests in flight keep the one they started with).
///
/// A gateway's keyring is usable once its keys' check values have been
/// compared with those the database recorded (`service::keycheck`): until
/// then, or for good when they differ, nothing is sealed or opened with it.
pub struct KeyringHandle {
    ring: RwLock<Arc<Keyring>>,
    state: AtomicU8,
}

const UNCHECKED: u8 = 0;
const CHECKED: u8 = 1;
const REFUSED: u8 = 2;

impl KeyringHandle {
    /// A keyring the caller has already compared with the database (or
    /// one for a tool or benchmark that writes nothing lasting).
    pub fn new(ring: Keyring) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            state: AtomicU8::new(CHECKED),
        }
    }

    /// A keyring not yet compared with the database: unusable until
    /// `mark_checked`.
    pub fn awaiting_check(ring: Keyring) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            state: AtomicU8::new(UNCHECKED),
        }
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, ring: Keyring) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }

    pub fn mark_checked(&self) {
        let _ =
            self.state
                .compare_exchange(UNCHECKED, CHECKED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Its keys are not the database's: refused for good (a restart with
    /// the right keyring is the way out).
    pub fn refuse(&self) {
        self.state.store(REFUSED, Ordering::Release);
    }

    /// Whether values may be sealed and opened with it now.
    pub fn usable(&self) -> bool {
        self.state.load(Ordering::Acquire) == CHECKED
    }
}

impl std::fmt::Debug for KeyringHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyringHandle({:?}, usable: {})",
            self.current(),
            self.usable()
        )
    }
}
