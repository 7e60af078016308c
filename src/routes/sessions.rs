//! `POST /api/auth/logout`: the caller's Payload session ends at the
//! gateway too (the Payload plugin's `afterLogout` hook calls it with the
//! token being logged out); its tokens are refused from then on.

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::identity::Principal;
use crate::service::Services;

/// Payload's own answer to a logout.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    /// "Logout successful."
    pub message: String,
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses(
    (status = 200, description = "The token's session is ended: this token, and every other of the same Payload session, is refused from now on", body = LoggedOut),
    (status = 400, description = "Not a Payload user's token (an API key)", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in, or logged out already", body = crate::error::ErrorBody),
))]
pub async fn logout(svc: web::Data<Services>, who: Principal) -> Result<HttpResponse, ApiError> {
    crate::service::sessions::logout(&svc, &who).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(LoggedOut {
            message: "Logout successful.".into(),
        }))
}
