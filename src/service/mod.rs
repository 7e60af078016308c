//! The use cases, one module per collection: identity, transaction, sealing,
//! storage and audit meet here. Routes call these and nothing else; the CLI
//! calls the same functions. Services take typed, validated inputs, know no
//! SQL (the store's functions) and no SQLSTATE (the store's `StoreError`).
//!
//! Every response that carries anything about a patient leaves an audit
//! entry on the request's own transaction: reads one per document, lists
//! one per request however many documents they returned, break-glass
//! callers one of their own kind every time.

pub mod consents;
pub mod export;
pub mod health;
pub mod herbs;
pub mod import;
pub mod keycheck;
pub mod practitioners;
pub mod report;
pub mod sessions;
pub mod submissions;
pub mod upkeep;

use std::sync::Arc;

use uuid::Uuid;

use crate::audit::refusals::Refusals;
use crate::audit::{Action, Entry};
use crate::crypto::{Keyring, KeyringHandle, Place, Plaintext, SealedField};
use crate::domain::SecretText;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::schema::Collection;
use crate::store::{Db, StoreError};

/// A document and, when `depth` asked for it, the document its
/// relationship names (`None`: not asked, none named, or not the caller's
/// to see).
pub struct Related<T, R> {
    pub doc: T,
    pub related: Option<R>,
}

impl<T, R> Related<T, R> {
    pub fn alone(doc: T) -> Self {
        Self { doc, related: None }
    }
}

/// What every use case needs.
#[derive(Clone)]
pub struct Services {
    /// Request transactions (as `phi_app`).
    pub pool: Db,
    /// Reserved for refusals and failures written on their own: they are
    /// written even when every connection of `pool` is taken.
    pub audit_pool: Db,
    /// A streaming replica's pool (`DATABASE_READ_URL`), for the public
    /// directory read by callers without credentials (no audit entry is
    /// written there). `None`: everything on `pool`.
    pub read_pool: Option<Db>,
    /// Whether `read_pool` is within its lag bound (`replica::watch`).
    pub replica: Arc<crate::replica::ReplicaLag>,
    pub keyring: Arc<KeyringHandle>,
    pub refusals: Arc<Refusals>,
    /// The Payload collections whose users sign in here
    /// (`PHI_USER_COLLECTIONS`): the only ones a practitioner may be linked to.
    pub user_collections: Arc<[String]>,
}

impl Services {
    /// The transaction of a request that touches patients' data: a
    /// practitioner or an admin must first say why (`X-Purpose-Of-Use`),
    /// which every entry of the transaction records (`store::begin`).
    pub async fn begin_phi(&self, who: &Principal) -> Result<crate::store::Tx, ApiError> {
        self.check_purpose(who)?;
        Ok(self.pool.begin(who).await?)
    }

    /// A practitioner or admin names the purpose of every request that
    /// reads or changes patients' data (what `begin_phi` checks first).
    pub fn check_purpose(&self, who: &Principal) -> Result<(), ApiError> {
        if who.owes_purpose() && who.purpose_of_use.is_none() {
            return Err(ApiError::PurposeRequired(format!(
                "X-Purpose-Of-Use is required of practitioners and admins reading or \
                 changing patients' data: one of {}.",
                crate::identity::PurposeOfUse::vocabulary()
            )));
        }
        Ok(())
    }

    pub fn new(pool: Db, audit_pool: Db, keyring: Arc<KeyringHandle>) -> Self {
        Self {
            pool,
            audit_pool,
            read_pool: None,
            replica: Arc::new(crate::replica::ReplicaLag::new(std::time::Duration::ZERO)),
            keyring,
            refusals: Arc::new(Refusals::default()),
            user_collections: Arc::from(vec!["users".to_string()]),
        }
    }

    pub fn with_user_collections(mut self, collections: &[String]) -> Self {
        self.user_collections = Arc::from(collections.to_vec());
        self
    }

    /// Where a read of the public directory (herbs, practitioners) runs: on
    /// the replica for callers without credentials, when there is one. A
    /// signed-in caller's reads stay on the primary: staff reads of sealed
    /// contact fields write audit entries, and a user should see their own
    /// writes at once. A replica behind by more than
    /// `DATABASE_READ_MAX_LAG_SECS`, or not answering, is passed over.
    pub fn directory(&self, who: &Principal) -> &Db {
        match &self.read_pool {
            Some(replica) if who.is_anonymous() && self.replica.usable() => replica,
            _ => &self.pool,
        }
    }

    pub fn with_refusals(mut self, refusals: Arc<Refusals>) -> Self {
        self.refusals = refusals;
        self
    }

    /// The keyring as of now (a reload replaces it for later requests).
    pub fn ring(&self) -> Arc<Keyring> {
        self.keyring.current()
    }
}

/// Seals and opens on behalf of one request (with the keyring it started
/// with). Failures are logged with the place, never the value.
pub struct Crypt {
    ring: Arc<Keyring>,
    /// The keyring is not (yet) known to be the database's: nothing is
    /// sealed or opened (`keycheck`).
    blocked: bool,
}

impl Crypt {
    pub fn new(svc: &Services) -> Self {
        Self {
            ring: svc.ring(),
            blocked: !svc.keyring.usable(),
        }
    }

    fn usable(&self) -> Result<(), ApiError> {
        if self.blocked {
            return Err(ApiError::Unavailable {
                what: "the keyring (not matched with the database's key check values)",
                retry_after_secs: 2,
            });
        }
        Ok(())
    }

    pub fn ring(&self) -> &Keyring {
        &self.ring
    }

    pub fn seal(&self, plaintext: &[u8], place: Place<'_>) -> Result<SealedField, ApiError> {
        self.usable()?;
        self.ring.seal(plaintext, &place).map_err(|e| {
            tracing::error!(table = place.table, column = place.column, row_id = %place.row_id, error = %e, "seal failed");
            ApiError::internal("sealing a field", e)
        })
    }

    pub fn seal_text(
        &self,
        text: Option<&SecretText>,
        place: Place<'_>,
    ) -> Result<Option<SealedField>, ApiError> {
        text.map(|t| self.seal(t.as_bytes(), place)).transpose()
    }

    /// Opens a sealed value. A failure is a 500 and a log line naming the
    /// table, column and row (never the value); never a null.
    pub fn open(&self, sealed: &SealedField, place: Place<'_>) -> Result<Plaintext, ApiError> {
        self.usable()?;
        self.ring.open(sealed, &place).map_err(|e| {
            tracing::error!(
                table = place.table,
                column = place.column,
                row_id = %place.row_id,
                error = %e,
                "decrypt failure"
            );
            ApiError::internal("opening a sealed field", e)
        })
    }

    pub fn open_text(
        &self,
        sealed: &SealedField,
        place: Place<'_>,
    ) -> Result<SecretText, ApiError> {
        self.open(sealed, place)?
            .into_string()
            .map(SecretText::new)
            .map_err(|e| {
                tracing::error!(table = place.table, column = place.column, row_id = %place.row_id, "sealed text is not UTF-8");
                ApiError::internal("opening a sealed field", e)
            })
    }

    pub fn open_text_opt(
        &self,
        sealed: Option<&SealedField>,
        place: Place<'_>,
    ) -> Result<Option<SecretText>, ApiError> {
        sealed.map(|s| self.open_text(s, place)).transpose()
    }

    /// The blind index of a normalised value under the active index key.
    pub fn blind(&self, table: &str, column: &str, value: &str) -> Vec<u8> {
        let normalised = crate::crypto::blind_index::normalise_email(value);
        self.ring
            .blind_index(table, column, &normalised)
            .as_bytes()
            .to_vec()
    }

    /// Blind indexes of `value` under every live index key.
    pub fn blind_candidates(&self, table: &str, column: &str, value: &str) -> Vec<Vec<u8>> {
        let normalised = crate::crypto::blind_index::normalise_email(value);
        self.ring
            .blind_index_candidates(table, column, &normalised)
            .into_iter()
            .map(|b| b.as_bytes().to_vec())
            .collect()
    }

    /// The blind index of a record id, for a table keyed that way
    /// (submission facts): the active key's, and every live key's.
    pub fn id_refs(&self, table: &str, column: &str, id: Uuid) -> (Vec<u8>, Vec<Vec<u8>>) {
        let s = id.to_string();
        // The active key's index is among the candidates: computed once.
        let active = self.ring.active_index_key_id();
        let all = self.ring.blind_index_candidates(table, column, &s);
        let key = match all.iter().find(|b| b.key_id() == Some(active)) {
            Some(b) => b.as_bytes().to_vec(),
            None => self.ring.blind_index(table, column, &s).as_bytes().to_vec(),
        };
        (
            key,
            all.into_iter().map(|b| b.as_bytes().to_vec()).collect(),
        )
    }
}

/// What the caller may be told of a store error (a constraint a client
/// tripped is mapped to its field by `client_error`).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use std::borrow::Cow;
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Unique { .. } => {
                ApiError::invalid("id", "must be unique; this value is already in use")
            }
            StoreError::ForeignKey { .. } => {
                ApiError::invalid("body", "refers to a record that does not exist")
            }
            StoreError::RlsDenied => ApiError::forbidden(),
            StoreError::SessionEnded => ApiError::Unauthorized(
                "Unauthorized: this token's session was logged out; log in again.".into(),
            ),
            StoreError::Forbidden(message) => ApiError::Forbidden(Cow::Owned(message)),
            StoreError::Timeout => ApiError::Unavailable {
                what: "database (the query took too long)",
                retry_after_secs: 2,
            },
            StoreError::Unavailable(_) => {
                // Logged with its cause, now and then (`db::explain_unavailable`).
                crate::db::explain_unavailable();
                ApiError::Unavailable {
                    what: "database",
                    retry_after_secs: 2,
                }
            }
            StoreError::Other(e) => ApiError::internal("database error", e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// A new row id: UUIDv7, made before the insert so sealed fields can bind it.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A store error as the client may hear it: constraint violations on the
/// collection's own paths (from its description), the rest as they are.
pub fn client_error(coll: &Collection, e: StoreError) -> ApiError {
    match e {
        StoreError::Unique { constraint } => ApiError::invalid(
            coll.path_of(&constraint).unwrap_or("id"),
            "must be unique; this value is already in use",
        ),
        StoreError::ForeignKey { constraint } => ApiError::invalid(
            coll.path_of(&constraint).unwrap_or("body"),
            "refers to a record that does not exist",
        ),
        other => other.into(),
    }
}

/// The audit entry of a list request: the filter's field names, how many
/// documents it returned and (when it counted) matched.
/// The most documents one bulk PATCH or DELETE may change.
pub const BULK_MAX: usize = 100;

/// Refuses a bulk request that matched more than [`BULK_MAX`] documents
/// (the listing asked for one more than that).
pub fn bulk_size(matched: usize) -> Result<(), ApiError> {
    if matched > BULK_MAX {
        return Err(ApiError::bad_request(format!(
            "where matches more than {BULK_MAX} documents; a bulk change takes at most {BULK_MAX} \
             (narrow the filter, or repeat)."
        )));
    }
    Ok(())
}

pub fn list_entry(
    entity_type: &'static str,
    q: &crate::query::ListQuery,
    returned: usize,
    total: i64,
) -> Entry {
    Entry::about(Action::List, entity_type)
        .fields(q.field_names())
        .detail(serde_json::json!({
            "returned": returned,
            "counted": if q.pagination { Some(total) } else { None },
            "page": q.page,
            "limit": q.limit,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Purpose;

    /// A record id's blind indexes: the active key's, and one per live
    /// index key (during an index key rotation, the old key's too).
    #[test]
    fn id_refs_are_the_active_index_and_every_live_one() {
        let mut ring = Keyring::generate(false).unwrap();
        ring.rotate(Purpose::Index).unwrap();
        let id = Uuid::from_u128(42);
        let s = id.to_string();
        let c = Crypt {
            ring: Arc::new(ring),
            blocked: false,
        };
        let (key, all) = c.id_refs("submission_facts", "submission", id);
        let expected = c.ring.blind_index("submission_facts", "submission", &s);
        assert_eq!(key, expected.as_bytes());
        let candidates = c
            .ring
            .blind_index_candidates("submission_facts", "submission", &s);
        assert_eq!(candidates.len(), 2);
        assert_eq!(
            all,
            candidates
                .iter()
                .map(|b| b.as_bytes().to_vec())
                .collect::<Vec<_>>()
        );
    }
}
