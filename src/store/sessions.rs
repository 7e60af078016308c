//! SQL for logged-out sessions (`auth_logouts`, through SECURITY DEFINER
//! functions: the service's role has no right on the table). The check of
//! each request is in `begin`, with the identity.

use super::{Result, Tx};

/// Ends the caller's session `key` until `expires_at` (Unix seconds): its
/// tokens are refused from now on. False when it was ended already.
pub async fn end(tx: &mut Tx, key: &str, expires_at: i64) -> Result<bool> {
    Ok(tx
        .q_scalar("SELECT app_end_session($1, to_timestamp($2))")
        .bind(key)
        .bind(expires_at as f64)
        .fetch_one(&mut **tx)
        .await?)
}
