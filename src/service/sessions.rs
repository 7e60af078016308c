//! A logout: the caller's Payload session ended at the gateway too, so its
//! tokens are refused from now on (`store::begin` checks each request).

use super::Services;
use crate::error::ApiError;
use crate::identity::Principal;

/// Ends the session of the caller's token. Only a Payload user's token has
/// one (an API key is revoked with `phi-gateway apikeys revoke`).
pub async fn logout(svc: &Services, who: &Principal) -> Result<(), ApiError> {
    who.require_user()?;
    let Some(session) = &who.session else {
        return Err(ApiError::bad_request(
            "Only a Payload user's token can be logged out here (an API key is revoked by an operator: \
             phi-gateway apikey revoke).",
        ));
    };
    let mut tx = svc.pool.begin(who).await?;
    crate::store::sessions::end(&mut tx, &session.key, session.expires_at).await?;
    tx.commit().await?;
    Ok(())
}
