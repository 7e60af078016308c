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
use crate::error::{ApiError, ErrorBody};
use crate::metrics::Metrics;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: always ours, a fresh UUIDv7. Echoed in the response
/// and in every log line and audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The `X-Request-Id` the client sent, when plausible: kept apart from ours
/// (a client may repeat another request's id), in the audit entry's
/// `client_request_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequestId(pub String);

impl ClientRequestId {
    fn from_header(value: Option<&HeaderValue>) -> Option<Self> {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            })
            .map(|v| ClientRequestId(v.to_string()))
    }
}

/// The longest log line written; a longer one is cut and marked.
const MAX_LOG_LINE: usize = 16 * 1024;

/// Writes one event, cut to `MAX_LOG_LINE` bytes (on a character boundary).
fn write_bounded(out: &mut impl std::io::Write, buf: &[u8]) -> std::io::Result<()> {
    if buf.len() > MAX_LOG_LINE {
        let mut cut = MAX_LOG_LINE;
        while cut > 0 && (buf[cut] & 0xc0) == 0x80 {
            cut -= 1;
        }
        out.write_all(&buf[..cut])?;
        out.write_all(b" [log line cut]\n")
    } else {
        out.write_all(buf)
    }
}

/// stderr, one event per write (tracing-subscriber formats an event, then
/// writes it once), each bounded.
struct BoundedStderr;

impl std::io::Write for BoundedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_bounded(&mut std::io::stderr().lock(), buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BoundedStderr);
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
            http.method = crate::metrics::method_label(request.method().as_str()),
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
    let request_id = RequestId(uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(request_id.clone());
    if let Some(c) = ClientRequestId::from_header(req.headers().get(REQUEST_ID_HEADER)) {
        req.extensions_mut().insert(c);
    }
    let method = req.method().clone();
    let route = req.match_pattern();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let limit = req
        .app_data::<web::Data<crate::extract::BodyLimits>>()
        .map(|l| l.max_bytes)
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
        res = ServiceResponse::new(
            http_req,
            replacement.json(ErrorBody::server_error(&request_id.0)),
        );
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
        let mut replacement = HttpResponse::build(status).json(ErrorBody::message(message));
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
    // Nothing this service answers is for a proxy or a browser to keep.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let elapsed = started.elapsed();
    let route_label = route.as_deref().unwrap_or("unmatched");
    if let Some(m) = metrics {
        m.observe_request(method.as_str(), route_label, status.as_u16(), elapsed);
    }
    tracing::info!(
        request_id = %request_id.0,
        http.method = crate::metrics::method_label(method.as_str()),
        http.route = %route_label,
        http.status_code = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request finished"
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_kept_apart_when_plausible() {
        let v = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(
            ClientRequestId::from_header(Some(&v)).unwrap().0,
            "abc-123_x.y:z"
        );
        for bad in ["has space", "quote\"", ""] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert!(ClientRequestId::from_header(Some(&v)).is_none());
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert!(ClientRequestId::from_header(Some(&long)).is_none());
    }

    #[test]
    fn long_log_lines_are_cut_on_a_character_boundary() {
        let mut big = "é".repeat(MAX_LOG_LINE).into_bytes();
        big.push(b'\n');
        let mut out = Vec::new();
        write_bounded(&mut out, &big).unwrap();
        assert!(out.len() <= MAX_LOG_LINE + 20);
        let text = String::from_utf8(out).expect("still UTF-8");
        assert!(text.ends_with(" [log line cut]\n"));
        let mut out = Vec::new();
        write_bounded(&mut out, b"short\n").unwrap();
        assert_eq!(out, b"short\n");
    }
}
