//! The compliance export: a contiguous range of the chain as NDJSON, CSV or
//! FHIR R4 (AuditEvent NDJSON), streamed in pages of bounded position
//! ranges (constant memory; each page a nested loop on the log's index, so
//! the cost per page is flat from the first page to the last), ending with a
//! manifest signed with the audit signing key.
//!
//! The manifest names the format, the window, the first and last position
//! and sequence, the row count, the hash of the entry before the first (so
//! the range links into the chain), the hash of the last entry, a SHA-256
//! over every exported line, and the chain's head checkpoint signed at
//! export time. Positions must be contiguous, so a dropped line, a cut
//! tail, or a fabricated window does not verify; `verify_file` checks all of
//! it offline, streaming, with the public key alone.
//!
//! Where the manifest goes, so that every line of each format stays valid:
//! NDJSON ends with one JSON object `{"phiGatewayManifest": ..}`; FHIR ends
//! with a `Provenance` resource whose `signature` signs the manifest (kept in
//! an extension); CSV has none inline (every row is a record): the CLI writes
//! `<file>.manifest.json` beside it, and over HTTP it is fetched afterwards
//! from `/api/audit/exports/{requestId}/manifest`.
//!
//! A window selects entries by their own time (when they were written), and
//! an export is the contiguous range of chain positions from the first of
//! them to the last (so the few entries sealed among them that fall just
//! outside the window come along, and the range checks for gaps). Every
//! entry dated in the window, up to a minute before the export began
//! (`complete_before`: transactions still open then may add entries), is in
//! that range, or the export is refused (`plan`): a signed "from X to Y"
//! never leaves out an entry of X to Y that was not yet sealed.

mod fhir;
mod format;
mod manifest;
mod stream;
mod verify;

pub use fhir::{fhir_event, provenance_of};
pub use format::{Format, csv_field};
pub use manifest::{
    ACCOUNTING_KIND, AccountingManifest, MANIFEST_KEY, Manifest, SignedManifest, write_csv_manifest,
};
pub use stream::{Plan, PlanError, disclosure_entries, plan, stream};
pub use verify::{ends_with_accounting, verify_accounting, verify_file};
