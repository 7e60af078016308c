//! The use cases, one module per collection: identity, transaction, sealing,
//! storage (and, later, audit) meet here. Routes call these and nothing else;
//! the CLI calls the same functions.

pub mod consents;
pub mod herbs;
pub mod practitioners;
pub mod submissions;

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::{Keyring, Place, Plaintext, SealedField};
use crate::error::{ApiError, FieldError};

/// What every use case needs: the pool and the keyring.
pub struct Services {
    pub pool: PgPool,
    pub keyring: Arc<Keyring>,
}

impl Services {
    pub fn new(pool: PgPool, keyring: Arc<Keyring>) -> Self {
        Self { pool, keyring }
    }

    pub fn seal(&self, plaintext: &[u8], place: Place<'_>) -> Result<SealedField, ApiError> {
        self.keyring.seal(plaintext, &place).map_err(|e| {
            tracing::error!(table = place.table, column = place.column, row_id = %place.row_id, error = %e, "seal failed");
            ApiError::internal("sealing a field", e)
        })
    }

    pub fn seal_text(
        &self,
        text: Option<&str>,
        place: Place<'_>,
    ) -> Result<Option<SealedField>, ApiError> {
        text.map(|t| self.seal(t.as_bytes(), place)).transpose()
    }

    /// Opens a sealed value. A failure is a 500 and a log line naming the
    /// table, column and row (never the value); never a null.
    pub fn open(&self, sealed: &SealedField, place: Place<'_>) -> Result<Plaintext, ApiError> {
        self.keyring.open(sealed, &place).map_err(|e| {
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

    pub fn open_text(&self, sealed: &SealedField, place: Place<'_>) -> Result<String, ApiError> {
        self.open(sealed, place)?.into_string().map_err(|e| {
            tracing::error!(table = place.table, column = place.column, row_id = %place.row_id, "sealed text is not UTF-8");
            ApiError::internal("opening a sealed field", e)
        })
    }

    pub fn open_text_opt(
        &self,
        sealed: Option<&SealedField>,
        place: Place<'_>,
    ) -> Result<Option<String>, ApiError> {
        sealed.map(|s| self.open_text(s, place)).transpose()
    }

    /// Blind indexes of `value` under every live index key.
    pub fn blind_candidates(&self, table: &str, column: &str, value: &str) -> Vec<Vec<u8>> {
        let normalised = crate::crypto::blind_index::normalise_email(value);
        self.keyring
            .blind_index_candidates(table, column, &normalised)
            .into_iter()
            .map(|b| b.as_bytes().to_vec())
            .collect()
    }
}

/// A new row id: UUIDv7, made before the insert so sealed fields can bind it.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Maps database errors a client can cause to client errors; the rest stay
/// internal (and are logged, without values, by `ApiError`).
pub fn db_error(e: sqlx::Error, unique_fields: &[(&str, &str)]) -> ApiError {
    if let Some(db) = e.as_database_error() {
        match db.code().as_deref() {
            Some("23505") => {
                let constraint = db.constraint().unwrap_or("");
                let path = unique_fields
                    .iter()
                    .find(|(c, _)| *c == constraint)
                    .map(|(_, p)| *p)
                    .unwrap_or("id");
                return ApiError::Validation(vec![FieldError::new(
                    path,
                    "must be unique; this value is already in use",
                )]);
            }
            Some("23503") => {
                return ApiError::Validation(vec![FieldError::new(
                    unique_fields
                        .iter()
                        .find(|(c, _)| Some(*c) == db.constraint())
                        .map(|(_, p)| *p)
                        .unwrap_or("body"),
                    "refers to a record that does not exist",
                )]);
            }
            // "new row violates row-level security policy": the caller may
            // not write this row. Any other 42501 (say, a failed audit write)
            // is ours, and a 500.
            Some("42501") if db.message().contains("row-level security") => {
                return ApiError::Forbidden;
            }
            _ => {}
        }
    }
    ApiError::from(e)
}

/// Rejects a POST body missing required fields, with every missing path.
pub fn require(missing: Vec<&'static str>) -> Result<(), ApiError> {
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(
            missing
                .into_iter()
                .map(|p| FieldError::new(p, "is required"))
                .collect(),
        ))
    }
}
