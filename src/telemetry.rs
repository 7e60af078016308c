//! Logs, the request id, and the per-request middleware.
//!
//! Logs are JSON lines (or pretty text in development). They carry the method,
//! the matched route *pattern* (`/api/herbs/{id}`), status, latency and request
//! id, never bodies and never query strings: a query string may hold an email
//! being searched for. This module must not log any value it did not make.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::{ApiError, error_body, server_error_body};
use crate::metrics::Metrics;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the caller's `X-Request-Id` when it is a plausible id,
/// else a fresh UUIDv7. Echoed in the response and in every log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(|v| RequestId(v.to_string()))
            .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string()))
    }
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is not an error worth failing over.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The root span of every request: method, route pattern and request id.
pub struct PhiRootSpan;

impl RootSpanBuilder for PhiRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "http_request",
            request_id = %request_id,
            http.method = %request.method(),
            http.route = %route,
            http.status_code = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("http.status_code", status);
    }
}

/// Outermost middleware: request id in and out, body-size guard, metrics and
/// the access log, and the last word on error bodies (5xx become opaque, empty
/// 4xx such as actix's own 404/405 get Payload's JSON shape).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = RequestId::from_header(req.headers().get(REQUEST_ID_HEADER));
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    let route = req.match_pattern();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let limit = req
        .app_data::<web::Data<BodyLimit>>()
        .map(|l| l.0)
        .unwrap_or(usize::MAX);

    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Handlers turn their errors into responses, so `Err` here only comes
    // from the framework itself; it is passed on as is.
    let mut res = if declared_len.is_some_and(|n| n > limit as u64) {
        // Refused before routing or reading: nothing of it is buffered.
        req.into_response(ApiError::PayloadTooLarge.error_response())
    } else {
        next.call(req).await?.map_into_boxed_body()
    };

    let status = res.status();
    if status.is_server_error() {
        let (http_req, old) = res.into_parts();
        let mut replacement = HttpResponse::build(status);
        if let Some(v) = old.headers().get(header::RETRY_AFTER) {
            replacement.insert_header((header::RETRY_AFTER, v.clone()));
        }
        res = ServiceResponse::new(http_req, replacement.json(server_error_body(&request_id.0)));
    } else if status.is_client_error()
        && matches!(
            res.response().body().size(),
            BodySize::None | BodySize::Sized(0)
        )
    {
        let message = match status {
            StatusCode::NOT_FOUND => "The requested resource was not found.".to_string(),
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed.".to_string(),
            other => other
                .canonical_reason()
                .unwrap_or("Bad request.")
                .to_string(),
        };
        let (http_req, old) = res.into_parts();
        let mut replacement = HttpResponse::build(status).json(error_body(message));
        for (k, v) in old.headers().iter() {
            if k != header::CONTENT_LENGTH && k != header::CONTENT_TYPE {
                replacement.headers_mut().insert(k.clone(), v.clone());
            }
        }
        res = ServiceResponse::new(http_req, replacement);
    }

    if let Ok(v) = HeaderValue::from_str(&request_id.0) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let elapsed = started.elapsed();
    let route_label = route.as_deref().unwrap_or("unmatched");
    if let Some(m) = metrics {
        m.observe_request(method.as_str(), route_label, status.as_u16(), elapsed);
    }
    tracing::info!(
        request_id = %request_id.0,
        http.method = %method,
        http.route = %route_label,
        http.status_code = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request finished"
    );
    Ok(res)
}

/// The configured largest body, shared with `request_context`.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_callers_are_kept_when_plausible() {
        let v = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&v)).0, "abc-123_x.y:z");
    }

    #[test]
    fn implausible_request_ids_are_replaced() {
        for bad in ["has space", "quote\"", ""] {
            let v = HeaderValue::from_str(bad).unwrap();
            let id = RequestId::from_header(Some(&v)).0;
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(RequestId::from_header(Some(&long)).0.len(), 36);
        assert_eq!(RequestId::from_header(None).0.len(), 36);
    }
}
