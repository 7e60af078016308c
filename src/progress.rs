//! How long work (re-encryption, bulk seeding, an audit export) reports how
//! far it got. The library says what it is doing and how much is done; the
//! caller decides how to show it (the command line: a bar on a terminal, log
//! lines otherwise; the HTTP export and the tests: nothing).

/// A sink for progress. Each phase is `begin` (with the number of steps
/// it will take, as far as is known), any number of `at`, then `end`.
pub trait Progress: Send + Sync {
    /// A phase of `total` steps begins.
    fn begin(&self, what: &'static str, total: u64);
    /// `done` steps of the current phase are done.
    fn at(&self, done: u64);
    /// The current phase is over.
    fn end(&self);
}

/// Shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: &'static str, _: u64) {}
    fn at(&self, _: u64) {}
    fn end(&self) {}
}
