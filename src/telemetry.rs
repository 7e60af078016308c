//! Logs, the request id, and the per-request middleware.
//!
//! Logs are JSON lines (or pretty text in development). They carry the method,
//! the matched route *pattern* (`/api/herbs/{id}`), status, latency and request
//! id, never bodies and never query strings: a query string may hold an email
//! being searched for. This module must not log any value it did not make.

use std::time::{Duration, Instant};

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
/// writes it once), each bounded, through the log writer's queue.
struct BoundedStderr;

impl std::io::Write for BoundedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = Vec::with_capacity(buf.len().min(MAX_LOG_LINE + 32));
        write_bounded(&mut line, buf)?;
        match log_queue() {
            Some(q) => q.push(line),
            None => std::io::stderr().lock().write_all(&line)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines are written by a thread of their own: a request formats its
/// line and hands it over, and never waits for stderr (a batch per write
/// instead of a system call per line: about 8% of a read's cost at 16
/// clients, BENCHMARKS.md). When stderr stops taking lines, up to
/// `LOG_QUEUE` of them wait; past that they are dropped, never the request,
/// and how many is written once stderr moves again.
struct LogQueue {
    tx: std::sync::mpsc::SyncSender<LogMsg>,
    dropped: std::sync::atomic::AtomicU64,
}

enum LogMsg {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

const LOG_QUEUE: usize = 16 * 1024;

static LOG: std::sync::OnceLock<Option<LogQueue>> = std::sync::OnceLock::new();

fn log_queue() -> Option<&'static LogQueue> {
    LOG.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(LOG_QUEUE);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_logs(rx))
            .ok()
            .map(|_| LogQueue {
                tx,
                dropped: std::sync::atomic::AtomicU64::new(0),
            })
    })
    .as_ref()
}

impl LogQueue {
    fn push(&self, line: Vec<u8>) {
        use std::sync::mpsc::TrySendError;
        match self.tx.try_send(LogMsg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(LogMsg::Line(line))) => {
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &line);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn write_logs(rx: std::sync::mpsc::Receiver<LogMsg>) {
    use std::io::Write;
    let stderr = std::io::stderr();
    while let Ok(first) = rx.recv() {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, stderr.lock());
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                LogMsg::Line(l) => {
                    let _ = out.write_all(&l);
                }
                LogMsg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if let Some(q) = LOG.get().and_then(Option::as_ref) {
            let n = q.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    r#"{{"level":"WARN","message":"log lines dropped: stderr was not taking them","dropped":{n}}}"#
                );
            }
        }
        let _ = out.flush();
        drop(out);
        let flushing = !acks.is_empty();
        for ack in acks {
            let _ = ack.send(());
        }
        // Let lines gather: a writer waiting in `recv` is woken by every
        // line, which costs a request as much as writing it itself would.
        if !flushing {
            std::thread::sleep(LOG_BATCH);
        }
    }
}

/// How long queued lines may wait for the writer.
const LOG_BATCH: std::time::Duration = std::time::Duration::from_millis(20);

/// Writes out the lines still queued (at exit), waiting at most a second.
pub fn flush_logs() {
    if let Some(q) = LOG.get().and_then(Option::as_ref) {
        let (ack, done) = std::sync::mpsc::channel();
        if q.tx.send(LogMsg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// Every log line's `service` and `version` (JSON logs).
const SERVICE: &str = "phi-gateway";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The request and trace ids of a request's root span (`PhiRootSpan`),
/// kept in the span's extensions by `RequestIds` for `JsonLine`.
#[derive(Default)]
struct SpanIds {
    request_id: Option<String>,
    trace_id: Option<String>,
}

impl tracing::field::Visit for SpanIds {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.record(f.name(), v.to_string());
    }
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        self.record(f.name(), format!("{v:?}"));
    }
}

impl SpanIds {
    fn record(&mut self, name: &str, v: String) {
        match name {
            "request_id" => self.request_id = Some(v),
            "trace_id" => self.trace_id = Some(v),
            _ => {}
        }
    }
}

/// Keeps each span's `request_id` and `trace_id` where `JsonLine` finds
/// them.
struct RequestIds;

impl<S> tracing_subscriber::Layer<S> for RequestIds
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut found = SpanIds::default();
        attrs.record(&mut found);
        if found.request_id.is_some()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(found);
        }
    }
}

/// The JSON line of every event: timestamp, level, message, `request_id`
/// (of the request being served, at the top level, not inside a span
/// object), the event's fields, target, service and version. The access
/// line (`access_log`) is written in the same shape.
struct JsonLine;

/// An event's fields as JSON members, in the order they were recorded.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    members: Vec<(&'static str, serde_json::Value)>,
}

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        if f.name() == "message" {
            self.message = Some(v.to_string());
        } else {
            self.members.push((f.name(), v.into()));
        }
    }
    fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
        self.members.push((f.name(), v.into()));
    }
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        self.members.push((f.name(), v.into()));
    }
    fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
        self.members.push((f.name(), v.into()));
    }
    fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
        self.members.push((f.name(), v.into()));
    }
    fn record_error(&mut self, f: &tracing::field::Field, v: &(dyn std::error::Error + 'static)) {
        self.members.push((f.name(), v.to_string().into()));
    }
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        let text = format!("{v:?}");
        if f.name() == "message" {
            self.message = Some(text);
        } else {
            self.members.push((f.name(), text.into()));
        }
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let ids = ctx.lookup_current().and_then(|span| {
            span.scope().find_map(|s| {
                s.extensions()
                    .get::<SpanIds>()
                    .map(|r| (r.request_id.clone(), r.trace_id.clone()))
            })
        });
        let (request_id, trace_id) = ids.unwrap_or_default();
        let json = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let meta = event.metadata();
        write!(w, r#"{{"timestamp":"{now}","level":"{}""#, meta.level())?;
        if let Some(m) = &fields.message {
            write!(w, r#","message":{}"#, json(m))?;
        }
        if let Some(r) = &request_id {
            write!(w, r#","request_id":{}"#, json(r))?;
        }
        if let Some(t) = &trace_id {
            write!(w, r#","trace_id":{}"#, json(t))?;
        }
        for (k, v) in &fields.members {
            write!(w, ",{}:{v}", json(k))?;
        }
        writeln!(
            w,
            r#","target":{},"service":"{SERVICE}","version":"{VERSION}"}}"#,
            json(meta.target())
        )
    }
}

/// The fmt layer formats every new span's fields into a string kept with
/// the span, for formats that print them; `JsonLine` does not (it reads
/// `SpanIds`), so in JSON that work, two values formatted per request's
/// root span, is skipped.
struct NoSpanFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _: tracing_subscriber::fmt::format::Writer<'w>,
        _: R,
    ) -> std::fmt::Result {
        Ok(())
    }
}

/// The layer that writes `JsonLine`s to `writer` (after `RequestIds`).
fn json_lines<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, NoSpanFields, JsonLine, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(JsonLine)
        .fmt_fields(NoSpanFields)
        .with_writer(writer)
}

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // A second init (tests) is not an error worth failing over.
    JSON_LOGS.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(RequestIds)
            .with(json_lines(|| BoundedStderr))
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(|| BoundedStderr))
            .try_init(),
    };
}

/// The root span of every request carries only its id, so that whatever is
/// logged while serving it names the request; the method, route pattern,
/// status and latency are on the access line (`access_log`). The span's
/// fields are formatted when it opens, and each field recorded later
/// formats them all again, on every request.
pub struct PhiRootSpan;

impl RootSpanBuilder for PhiRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let extensions = request.extensions();
        let request_id = extensions.get::<RequestId>().map_or("", |r| r.0.as_str());
        let trace_id = extensions
            .get::<crate::trace::TraceContext>()
            .map(|t| t.trace_hex())
            .unwrap_or_default();
        tracing::info_span!("http_request", request_id = %request_id, trace_id = %trace_id)
    }

    fn on_request_end<B: MessageBody>(_: Span, _: &Result<ServiceResponse<B>, Error>) {}
}

/// A request id: a UUIDv7 whose random part comes from `random::fill`. Not
/// ordered within a millisecond, which nothing asks of a request id (row
/// ids still use `now_v7`).
fn new_request_id() -> uuid::Uuid {
    let mut bytes = [0u8; 10];
    crate::random::fill(&mut bytes);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

/// Outermost middleware: request id in and out, body-size guard, metrics and
/// the access log, and the last word on error bodies (5xx become opaque, empty
/// 4xx such as actix's own 404/405 get Payload's JSON shape). A HEAD request
/// is routed as the GET it asks about (the server sends no body for it),
/// so every GET route answers HEAD, as probes expect.
pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = RequestId(new_request_id().to_string());
    let trace =
        crate::trace::TraceContext::from_header(req.headers().get(crate::trace::TRACEPARENT));
    let started_at = std::time::SystemTime::now();
    req.extensions_mut().insert(request_id.clone());
    req.extensions_mut().insert(trace);
    if let Some(c) = ClientRequestId::from_header(req.headers().get(REQUEST_ID_HEADER)) {
        req.extensions_mut().insert(c);
    }
    let method = req.method().clone();
    if method == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let spans = req.app_data::<web::Data<crate::trace::Spans>>().cloned();
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

    let route = route_pattern(res.request());
    let status = res.status();
    let failure = res
        .response()
        .extensions()
        .get::<crate::error::FailureNote>()
        .cloned();
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
    // Nothing this service answers is for a proxy or a browser to keep,
    // nor for a browser to read as anything but its declared type.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let elapsed = started.elapsed();
    let route_label = route.as_deref().unwrap_or("unmatched");
    if let Some(m) = metrics {
        m.observe_request(method.as_str(), route_label, status.as_u16(), elapsed);
    }
    let trace_id = trace.trace_hex();
    access_log(
        &request_id.0,
        &trace_id,
        crate::metrics::method_label(method.as_str()),
        route_label,
        status.as_u16(),
        elapsed,
        failure.as_ref(),
    );
    if let Some(spans) = spans {
        spans.record(crate::trace::Finished {
            context: trace,
            method: crate::metrics::method_label(method.as_str()),
            route: route_label.to_string(),
            status: status.as_u16(),
            request_id: request_id.0,
            started: started_at,
            elapsed,
        });
    }
    Ok(res)
}

/// The route pattern a request met, read after routing from the resource
/// that matched (before it, each dynamic pattern tried is a regex run). A
/// request answered before its resource was reached (the gate's 429) is
/// matched here on the path as the router saw it, percent-decoded: on the
/// raw text, `/%61pi/herbs` would be some other, unmatched path.
pub fn route_pattern(req: &actix_web::HttpRequest) -> Option<String> {
    req.match_pattern()
        .or_else(|| req.resource_map().match_pattern(req.match_info().as_str()))
}

/// Whether access lines are written by hand (JSON logs) or by `tracing`.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The access line, one per request (target `phi_gateway::access`, level
/// INFO, so `RUST_LOG` filters it as any other). With JSON logs it is
/// written by hand in the subscriber's own shape: through
/// tracing-subscriber's JSON formatter it cost 20 us of a 200 us read at 16
/// clients, a tenth of the gateway's CPU (BENCHMARKS.md). Every value in it
/// is ours (a UUID, a route pattern from the table, a method label, numbers).
#[allow(clippy::too_many_arguments)]
fn access_log(
    request_id: &str,
    trace_id: &str,
    method: &str,
    route: &str,
    status: u16,
    elapsed: Duration,
    failure: Option<&crate::error::FailureNote>,
) {
    use tracing::Level;
    // A failed request's one line says why (`error::FailureNote`).
    let (level, message) = match failure {
        None => (Level::INFO, "request finished"),
        Some(f) if f.internal => (Level::ERROR, "request failed"),
        Some(_) => (Level::WARN, "request failed"),
    };
    let enabled = match level {
        Level::ERROR => tracing::enabled!(target: "phi_gateway::access", Level::ERROR),
        Level::WARN => tracing::enabled!(target: "phi_gateway::access", Level::WARN),
        _ => tracing::enabled!(target: "phi_gateway::access", Level::INFO),
    };
    if !enabled {
        return;
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let error = failure.map(|f| f.text.as_str());
    if !JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        macro_rules! line {
            ($lvl:expr) => {
                tracing::event!(
                    target: "phi_gateway::access", $lvl,
                    request_id, trace_id, http.method = method, http.route = route, http.status_code = status,
                    latency_ms, error, "{message}"
                )
            };
        }
        match level {
            Level::ERROR => line!(Level::ERROR),
            Level::WARN => line!(Level::WARN),
            _ => line!(Level::INFO),
        }
        return;
    }
    use std::io::Write;
    let mut line = Vec::with_capacity(256);
    // (The RFC 3339 writer, not a strftime string parsed on every line.)
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let _ = write!(
        line,
        r#"{{"timestamp":"{now}","level":"{level}","message":"{message}","request_id":"#
    );
    let _ = serde_json::to_writer(&mut line, request_id);
    let _ = write!(line, r#","trace_id":"{trace_id}","http.method":"#);
    let _ = serde_json::to_writer(&mut line, method);
    let _ = write!(line, r#","http.route":"#);
    let _ = serde_json::to_writer(&mut line, route);
    let _ = write!(
        line,
        r#","http.status_code":{status},"latency_ms":{latency_ms:.3}"#
    );
    if let Some(e) = error {
        let _ = write!(line, r#","error":"#);
        let _ = serde_json::to_writer(&mut line, e);
    }
    let _ = writeln!(
        line,
        r#","target":"phi_gateway::access","service":"{SERVICE}","version":"{VERSION}"}}"#
    );
    match log_queue() {
        Some(q) => q.push(line),
        None => {
            let _ = std::io::stderr().lock().write_all(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON line inside a request names the request at the top level,
    /// with the service and version, and keeps the event's fields.
    #[test]
    fn json_lines_carry_the_request_and_trace_ids_service_and_version() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(RequestIds)
            .with(json_lines(move || out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("http_request", request_id = %"01a2-rid", trace_id = %"4bf92f35");
            let _in = span.enter();
            tracing::warn!(table = "herbs", rows = 3_u64, "sealed value \"odd\"");
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry()
                .with(RequestIds)
                .with(json_lines({
                    let out = buf.clone();
                    move || out.clone()
                })),
            || tracing::info!("outside any request"),
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let l = &lines[0];
        assert_eq!(l["level"], "WARN");
        assert_eq!(l["message"], "sealed value \"odd\"");
        assert_eq!(l["request_id"], "01a2-rid");
        assert_eq!(l["trace_id"], "4bf92f35");
        assert_eq!(l["table"], "herbs");
        assert_eq!(l["rows"], 3);
        assert_eq!(l["service"], "phi-gateway");
        assert_eq!(l["version"], env!("CARGO_PKG_VERSION"));
        assert!(l.get("span").is_none(), "{l}");
        assert!(lines[1].get("request_id").is_none(), "{}", lines[1]);
        assert_eq!(lines[1]["service"], "phi-gateway");
    }

    #[test]
    fn request_ids_are_version_7_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(5) {
            assert_eq!(id.get_version_num(), 7);
            let (secs, _) = id.get_timestamp().unwrap().to_unix();
            let now = chrono::Utc::now().timestamp() as u64;
            assert!(now.abs_diff(secs) < 60, "{id}: a timestamp of now");
        }
    }

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
