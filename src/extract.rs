//! The one body extractor: `Json<T>` reads the request body (bounded in
//! size and in time, so a body that trickles in is cut off), requires
//! `application/json`, parses it strictly (`domain::json`: one object, no
//! duplicate keys, no control characters) into `T` with path-precise
//! Payload validation errors, and wipes its copy of the bytes. Handlers
//! receive typed, validated input; nothing else reads bodies. The names of
//! the fields a body holds are left in the request's extensions
//! (`Attempted`), so that a refusal's audit entry can name them.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use validator::Validate;
use zeroize::Zeroizing;

use crate::domain::Named;
use crate::domain::json::{from_object, parse_object};
use crate::error::ApiError;

/// Body limits, shared by the extractor and `telemetry::request_context`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// How long the whole body may take to arrive.
    pub timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A typed, validated JSON body.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The fields a request's body named (request extension).
#[derive(Debug, Clone, Default)]
pub struct Attempted(pub Vec<&'static str>);

/// `application/json`, in UTF-8 (JSON's only encoding, RFC 8259): a
/// `charset` parameter naming anything else is refused, not guessed at.
fn content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let value = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json.".into(),
        ));
    }
    for param in parts {
        let Some((name, v)) = param.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset")
            && !v.eq_ignore_ascii_case("utf-8")
            && !v.eq_ignore_ascii_case("utf8")
        {
            return Err(ApiError::UnsupportedMediaType(
                "Content-Type: JSON is UTF-8; send charset=utf-8 or no charset.".into(),
            ));
        }
    }
    Ok(())
}

impl<T: DeserializeOwned + Validate + Named + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = req
            .app_data::<web::Data<BodyLimits>>()
            .map(|l| *l.get_ref())
            .unwrap_or_default();
        let json = content_type(req);
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            json?;
            let mut buf = Zeroizing::new(Vec::new());
            let read = async {
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|_| {
                        ApiError::bad_request("The request body could not be read.")
                    })?;
                    if buf.len() + chunk.len() > limits.max_bytes {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(())
            };
            tokio::time::timeout(limits.timeout, read)
                .await
                .map_err(|_| ApiError::RequestTimeout)??;
            let object = parse_object(&buf)?;
            let body: T = from_object(object)?;
            req.extensions_mut().insert(Attempted(body.named()));
            Ok(Json(body))
        })
    }
}
