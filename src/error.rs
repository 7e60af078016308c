//! The HTTP layer's one error type, `ApiError`, and its Payload-shaped JSON.
//!
//! Layers: `store` returns `sqlx::Error`, `crypto` returns `CryptoError`,
//! services return `ApiError` (they know what the caller may be told), and
//! handlers pass it on. A 5xx body never says more than "Something went
//! wrong." plus the request id (added by `telemetry::request_context`); the
//! cause goes to the log, where it must never contain PHI values.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One field's problem, with its path in the request body (`location.lat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("You are not allowed to perform this action.")]
    Forbidden,
    #[error("The requested resource was not found.")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("The request body is too large.")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        retry_after_secs: u32,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Internal errors print their whole cause chain (for the log); the others
/// print what the client is told.
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal(e) => write!(f, "{e:?}"),
            ApiError::Validation(errors) => write!(f, "validation failed: {errors:?}"),
            other => write!(f, "{other}"),
        }
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(path, message)])
    }
    pub fn internal(context: &'static str, e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into().context(context))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => ApiError::Unavailable {
                what: "database",
                retry_after_secs: 2,
            },
            _ => ApiError::Internal(anyhow::Error::new(e).context("database error")),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    errors: Vec<ErrorItem<'a>>,
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<ValidationData<'a>>,
}

#[derive(Serialize)]
struct ValidationData<'a> {
    errors: &'a [FieldError],
}

/// `{"errors":[{"message": ..}]}`: the body of every plain error.
pub fn error_body(message: impl Into<String>) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message.into() }] })
}

/// The body of every 5xx: nothing about the cause, only the request id.
pub fn server_error_body(request_id: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": "Something went wrong.", "requestId": request_id }] })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // Logged here, once, with the whole chain; the body is replaced by
            // `request_context` with the opaque message and the request id.
            if let ApiError::Internal(e) = self {
                tracing::error!(error = ?e, "request failed");
            } else {
                tracing::warn!(error = %self, "request failed");
            }
        }
        let mut builder = HttpResponse::build(status);
        if let ApiError::Unavailable {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
        }
        let body = match self {
            ApiError::Validation(errors) => {
                let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
                let message = if paths.len() == 1 {
                    format!("The following field is invalid: {}", paths[0])
                } else {
                    format!("The following fields are invalid: {}", paths.join(", "))
                };
                serde_json::to_value(Body {
                    errors: vec![ErrorItem {
                        name: Some("ValidationError"),
                        message,
                        data: Some(ValidationData { errors }),
                    }],
                })
                .unwrap_or_else(|_| error_body("The request is invalid."))
            }
            _ if status.is_server_error() => error_body("Something went wrong."),
            other => error_body(other.to_string()),
        };
        builder.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &ApiError) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn validation_errors_have_payloads_shape() {
        let e = ApiError::Validation(vec![
            FieldError::new("location.lat", "must be between -90 and 90"),
            FieldError::new("name", "is required"),
        ]);
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(&e),
            serde_json::json!({"errors":[{
                "name":"ValidationError",
                "message":"The following fields are invalid: location.lat, name",
                "data":{"errors":[
                    {"path":"location.lat","message":"must be between -90 and 90"},
                    {"path":"name","message":"is required"}
                ]}
            }]})
        );
    }

    #[test]
    fn internal_errors_say_nothing_of_their_cause() {
        let e = ApiError::internal(
            "sealing submissions.notes",
            anyhow::anyhow!("secret detail"),
        );
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(&e).to_string();
        assert!(!body.contains("secret detail"), "{body}");
        assert!(body.contains("Something went wrong."));
        // ...while the log sees the chain.
        assert!(format!("{e:?}").contains("secret detail"));
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let e = ApiError::Unavailable {
            what: "database",
            retry_after_secs: 3,
        };
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "3");
    }
}
