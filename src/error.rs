//! The HTTP layer's one error type, `ApiError`, and its Payload-shaped JSON.
//!
//! Layers: `store` returns `StoreError` (classified once from `sqlx::Error`),
//! `crypto` returns `CryptoError`, services return `ApiError` (they know what
//! the caller may be told; the mapping from `StoreError` is theirs, in
//! `service`), and handlers pass it on. This module depends on nothing but
//! `identity`. A 5xx body never says
//! more than "Something went wrong." plus the request id (added by
//! `telemetry::request_context`); the cause goes to the log, where it must
//! never contain PHI values. Nothing here captures a backtrace: an expected
//! database error is logged as one line.
//!
//! `ErrorBody` is both what is serialized and the OpenAPI schema.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::identity::Denied;

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

/// `{"errors":[..]}`: every error. Validation errors carry
/// `name: "ValidationError"` and `data.errors[]` (path and message); a 5xx
/// carries only "Something went wrong." and the request id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<ValidationData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidationData {
    pub errors: Vec<FieldError>,
}

impl ErrorBody {
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            errors: vec![ErrorItem {
                name: None,
                message: message.into(),
                data: None,
                request_id: None,
            }],
        }
    }

    /// The body of every 5xx: nothing about the cause, only the request id.
    pub fn server_error(request_id: &str) -> Self {
        let mut b = Self::message("Something went wrong.");
        b.errors[0].request_id = Some(request_id.to_string());
        b
    }

    fn validation(errors: &[FieldError]) -> Self {
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        let message = if paths.len() == 1 {
            format!("The following field is invalid: {}", paths[0])
        } else {
            format!("The following fields are invalid: {}", paths.join(", "))
        };
        Self {
            errors: vec![ErrorItem {
                name: Some("ValidationError".into()),
                message,
                data: Some(ValidationData {
                    errors: errors.to_vec(),
                }),
                request_id: None,
            }],
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// Patients' data asked for without the purpose of use a practitioner
    /// or an admin owes: a 400, and a refusal on the record.
    #[error("{0}")]
    PurposeRequired(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    #[error("The requested resource was not found.")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("The request body did not arrive in time.")]
    RequestTimeout,
    #[error("The request body is too large.")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Too many requests; slow down.")]
    TooManyRequests { retry_after_secs: u32 },
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        retry_after_secs: u32,
    },
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Option<Source>,
    },
}

/// Internal errors print their whole cause chain (for the log); the others
/// print what the client is told.
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal { context, source } => {
                write!(f, "{context}")?;
                let mut next: Option<&(dyn std::error::Error + 'static)> = source
                    .as_deref()
                    .map(|s| s as &(dyn std::error::Error + 'static));
                while let Some(e) = next {
                    write!(f, ": {e}")?;
                    next = e.source();
                }
                Ok(())
            }
            ApiError::Validation(errors) => write!(f, "validation failed: {errors:?}"),
            other => write!(f, "{other}"),
        }
    }
}

pub const FORBIDDEN: &str = "You are not allowed to perform this action.";

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(path, message)])
    }
    /// Every missing field of a POST, by path.
    pub fn required(paths: &[&str]) -> Self {
        Self::Validation(
            paths
                .iter()
                .map(|p| FieldError::new(*p, "is required"))
                .collect(),
        )
    }
    pub fn forbidden() -> Self {
        Self::Forbidden(Cow::Borrowed(FORBIDDEN))
    }
    pub fn not_logged_in() -> Self {
        Self::Unauthorized("You must be logged in to make this request.".into())
    }
    pub fn internal(context: &'static str, e: impl Into<Source>) -> Self {
        Self::Internal {
            context,
            source: Some(e.into()),
        }
    }
    /// An internal error with nothing more to say than its context.
    pub fn bug(context: &'static str) -> Self {
        Self::Internal {
            context,
            source: None,
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NotLoggedIn => ApiError::not_logged_in(),
            Denied::Forbidden => ApiError::forbidden(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::PurposeRequired(_) | ApiError::Validation(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut builder = HttpResponse::build(status);
        match self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::TooManyRequests { retry_after_secs } => {
                builder.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            _ => {}
        }
        let body = match self {
            ApiError::Validation(errors) => ErrorBody::validation(errors),
            _ if status.is_server_error() => ErrorBody::message("Something went wrong."),
            other => ErrorBody::message(other.to_string()),
        };
        let mut res = builder.json(body);
        if status.is_server_error() {
            // Logged once, on the request's access line, with the whole
            // chain (`telemetry::request_context`); the body is replaced
            // there by the opaque message and the request id.
            let internal = matches!(self, ApiError::Internal { .. });
            res.extensions_mut().insert(FailureNote {
                internal,
                text: if internal {
                    format!("{self:?}")
                } else {
                    self.to_string()
                },
            });
        }
        res
    }
}

/// Why a request failed with a 5xx, for its one access line: an internal
/// error (a bug, with its source chain) is logged at ERROR, an unavailable
/// dependency at WARN.
#[derive(Clone, Debug)]
pub struct FailureNote {
    pub internal: bool,
    pub text: String,
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
            std::io::Error::other("secret detail"),
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

    #[test]
    fn the_server_error_body_carries_only_the_request_id() {
        let v = serde_json::to_value(ErrorBody::server_error("r-1")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errors":[{"message":"Something went wrong.","requestId":"r-1"}]})
        );
    }
}
