//! W3C trace context: each request continues its caller's trace (the
//! `traceparent` header a Payload app sends) or starts one; the trace id is
//! on every log line of the request; and, when an OTLP endpoint is set
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), each request's span is exported to it
//! over OTLP/HTTP with JSON bodies.
//!
//! Written here rather than with the `opentelemetry` crates: one span per
//! request is all the gateway makes, the HTTP client is already in the
//! tree (the transit KEK's), and those crates would add minutes to every
//! cold build of a CI that runs near its limit (ARCHITECTURE.md).
//!
//! A span carries what the access line carries and nothing else: the
//! method, the route pattern (never the path), the status, the request id.

use std::time::{Duration, SystemTime};

use actix_web::http::header::HeaderValue;

/// The request header that carries a caller's trace.
pub const TRACEPARENT: &str = "traceparent";

/// A request's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// This request's own span.
    pub span_id: [u8; 8],
    /// The caller's span, when the request came with a `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// The caller asked for this trace to be recorded (flag 01); a trace
    /// the gateway starts is recorded.
    pub sampled: bool,
}

impl TraceContext {
    /// Continues the caller's trace when the header is a valid
    /// `traceparent`; otherwise (absent, malformed, all-zero ids, version
    /// ff) starts a new one, as the specification says to.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        let mut span_id = [0u8; 8];
        crate::random::fill(&mut span_id);
        match value
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent)
        {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id,
                parent: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => {
                let mut trace_id = [0u8; 16];
                crate::random::fill(&mut trace_id);
                Self {
                    trace_id,
                    span_id,
                    parent: None,
                    sampled: true,
                }
            }
        }
    }

    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` naming this request's span (for what it calls).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lowercase only, as the specification writes them.
    if s.len() != N * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// `version-traceid-parentid-flags` (W3C Trace Context, level 1): version
/// 00 has exactly these four parts; a later version may add more after
/// them, which are ignored; version ff is invalid.
fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = s.trim().split('-');
    let version = unhex::<1>(parts.next()?)?[0];
    let trace = unhex::<16>(parts.next()?)?;
    let parent = unhex::<8>(parts.next()?)?;
    let flags = unhex::<1>(parts.next()?)?[0];
    let rest = parts.next();
    if version == 0xff || (version == 0 && rest.is_some()) {
        return None;
    }
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags))
}

/// A finished request, as its span is exported.
pub struct Finished {
    pub context: TraceContext,
    pub method: &'static str,
    pub route: String,
    pub status: u16,
    pub request_id: String,
    pub started: SystemTime,
    pub elapsed: Duration,
}

/// Where finished spans go: a bounded queue to the exporting task. A full
/// queue (a collector gone slow) drops spans, never requests.
#[derive(Clone)]
pub struct Spans {
    tx: tokio::sync::mpsc::Sender<Finished>,
}

impl Spans {
    pub fn record(&self, span: Finished) {
        if span.context.sampled {
            let _ = self.tx.try_send(span);
        }
    }
}

/// The OTLP/HTTP JSON body of a batch of spans (`ExportTraceServiceRequest`).
fn body(spans: &[Finished]) -> serde_json::Value {
    use serde_json::json;
    let nanos = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_string()
    };
    let attr_s = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let spans: Vec<_> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex(&s.context.trace_id),
                "spanId": hex(&s.context.span_id),
                "name": format!("{} {}", s.method, s.route),
                // SPAN_KIND_SERVER
                "kind": 2,
                "startTimeUnixNano": nanos(s.started),
                "endTimeUnixNano": nanos(s.started + s.elapsed),
                "attributes": [
                    attr_s("http.request.method", s.method),
                    attr_s("http.route", &s.route),
                    {"key": "http.response.status_code", "value": {"intValue": s.status.to_string()}},
                    attr_s("phi.request_id", &s.request_id),
                ],
                // STATUS_CODE_ERROR for what the server failed at; unset otherwise.
                "status": if s.status >= 500 { json!({"code": 2}) } else { json!({}) },
            });
            if let Some(p) = s.context.parent {
                span["parentSpanId"] = hex(&p).into();
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            attr_s("service.name", "phi-gateway"),
            attr_s("service.version", env!("CARGO_PKG_VERSION")),
        ]},
        "scopeSpans": [{"scope": {"name": "phi-gateway"}, "spans": spans}],
    }]})
}

/// Starts the exporting task (in the current runtime) for `endpoint`
/// (`http://collector:4318`; `/v1/traces` is added). Spans are sent in
/// batches of up to 512, at least once a second while any wait.
#[cfg(feature = "transit")]
pub fn export_to(endpoint: &str) -> anyhow::Result<Spans> {
    use anyhow::Context;
    crate::crypto::kek::install_tls_provider();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if endpoint.starts_with("https://") {
        builder = builder.use_preconfigured_tls(crate::crypto::kek::transit::tls_config(None)?);
    }
    let client = builder.build().context("OTLP exporter: HTTP client")?;
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Finished>(4096);
    tokio::spawn(async move {
        const BATCH: usize = 512;
        let mut warned: Option<std::time::Instant> = None;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) | Err(_) => break,
                }
            }
            let sent = client.post(&url).json(&body(&batch)).send().await;
            let failed = match sent {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("the collector answered {}", r.status())),
                Err(e) => Some(if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    "cannot reach the collector".to_string()
                }),
            };
            // One warning a minute at most: a collector that is down
            // must not fill the logs.
            if let Some(why) = failed
                && warned.is_none_or(|w| w.elapsed() > Duration::from_secs(60))
            {
                warned = Some(std::time::Instant::now());
                tracing::warn!(
                    spans = batch.len(),
                    "OTLP export failed: {why}; spans dropped"
                );
            }
        }
    });
    Ok(Spans { tx })
}

#[cfg(not(feature = "transit"))]
pub fn export_to(_endpoint: &str) -> anyhow::Result<Spans> {
    anyhow::bail!(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set, but this build has no HTTP client (feature transit)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued() {
        let c = TraceContext::from_header(Some(&HeaderValue::from_static(GIVEN)));
        assert_eq!(c.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            c.parent.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(c.sampled);
        assert_ne!(c.span_id, [0; 8]);
        assert!(
            c.traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert!(
            !c.traceparent().contains("00f067aa0ba902b7"),
            "our own span"
        );
        let unsampled = GIVEN.replace("-01", "-00");
        let c = TraceContext::from_header(Some(&HeaderValue::from_str(&unsampled).unwrap()));
        assert!(!c.sampled);
        // A later version may carry more; its first four parts still hold.
        let later = GIVEN.replace("00-", "cc-") + "-what-comes-next";
        let c = TraceContext::from_header(Some(&HeaderValue::from_str(&later).unwrap()));
        assert_eq!(c.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let c = TraceContext::from_header(Some(&HeaderValue::from_str(bad).unwrap()));
            assert_eq!(c.parent, None, "{bad:?}");
            assert_ne!(c.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_ne!(c.trace_id, [0; 16]);
            assert!(c.sampled);
        }
        let a = TraceContext::from_header(None);
        let b = TraceContext::from_header(None);
        assert_ne!(a.trace_id, b.trace_id);
    }

    #[test]
    fn the_exported_span_names_the_trace_its_parent_and_no_path() {
        let c = TraceContext::from_header(Some(&HeaderValue::from_static(GIVEN)));
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let b = body(&[Finished {
            context: c,
            method: "GET",
            route: "/api/symptom-submissions/{id}".into(),
            status: 503,
            request_id: "r-1".into(),
            started,
            elapsed: Duration::from_millis(3),
        }]);
        let span = &b["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["spanId"], hex(&c.span_id));
        assert_eq!(span["name"], "GET /api/symptom-submissions/{id}");
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000003000000");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(
            b["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "phi-gateway"
        );
    }
}
