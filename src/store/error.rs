//! `StoreError`: what went wrong in the database, classified once from
//! `sqlx::Error` (the only place SQLSTATEs and database messages are read).

/// What went wrong in the database, in the terms the layers above need.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("unique constraint {constraint} violated")]
    Unique { constraint: String },
    #[error("foreign key {constraint} violated")]
    ForeignKey { constraint: String },
    #[error("refused by row-level security")]
    RlsDenied,
    /// A guard trigger's refusal (SQLSTATE PH403), with its reason.
    #[error("{0}")]
    Forbidden(String),
    #[error("statement timeout")]
    Timeout,
    /// The caller's token belongs to a session that was logged out.
    #[error("the session was logged out")]
    SessionEnded,
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::RowNotFound => return StoreError::NotFound,
            E::PoolTimedOut | E::PoolClosed => return StoreError::Unavailable(e),
            E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                // The connection itself is gone: not to be kept for the
                // next request (`tx::connection_broken`).
                super::tx::connection_broken();
                return StoreError::Unavailable(e);
            }
            _ => {}
        }
        let Some(db) = e.as_database_error() else {
            return StoreError::Other(e);
        };
        let constraint = || db.constraint().unwrap_or("").to_string();
        match db.code().as_deref() {
            Some("23505") => StoreError::Unique {
                constraint: constraint(),
            },
            Some("23503") => StoreError::ForeignKey {
                constraint: constraint(),
            },
            // "new row violates row-level security policy": the caller may
            // not write this row. Any other 42501 (a missing grant) is ours.
            Some("42501") if db.message().contains("row-level security") => StoreError::RlsDenied,
            Some("PH403") => StoreError::Forbidden(db.message().to_string()),
            // `app_begin`'s refusal of a logged-out session (0021).
            Some("PH401") => StoreError::SessionEnded,
            Some("57014") => StoreError::Timeout,
            // admin shutdown, crash shutdown, cannot connect now, the
            // connection failure classes, and a connection the server
            // refused (a wrong password, no such database, no slot left):
            // nothing a request can change, logged with its cause
            // (`db::explain_unavailable`).
            Some(c)
                if c.starts_with("08")
                    || c.starts_with("28")
                    || matches!(c, "57P01" | "57P02" | "57P03" | "3D000" | "53300") =>
            {
                super::tx::connection_broken();
                StoreError::Unavailable(e)
            }
            _ => StoreError::Other(e),
        }
    }
}

impl StoreError {
    /// A unique constraint was violated (for callers holding a raw
    /// `sqlx::Error`, like the sealer).
    pub fn is_unique(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "23505")
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
