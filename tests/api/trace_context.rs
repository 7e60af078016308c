//! A caller's W3C `traceparent` goes on through the gateway: its trace id
//! is on the request's log lines and on the span the gateway exports over
//! OTLP/HTTP, here to a receiver in the test. The real binary runs, as an
//! operator would start it.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A minimal OTLP/HTTP collector: answers 200 to every POST and passes on
/// each request's path and body.
fn collector() -> (String, mpsc::Receiver<(String, serde_json::Value)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let _ = tx.send((path, json));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (address, rx)
}

#[tokio::test]
async fn a_callers_trace_reaches_the_logs_and_the_exported_span() {
    let db = crate::helpers::TestDb::migrated().await;
    let (endpoint, spans) = collector();
    let port = crate::helpers::free_port();
    let dir = std::env::temp_dir().join(format!("phi-trace-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("gateway.log");
    let mut child = crate::helpers::serve_command(&db.app_url(), port)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("RUST_LOG", "info")
        .env("PHI_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::http_client();
    let mut answered = None;
    for _ in 0..150 {
        if let Ok(r) = client
            .get(format!("{address}/api/symptom-submissions"))
            .header("authorization", crate::helpers::bearer("ann", &[]))
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .send()
            .await
        {
            answered = Some((
                r.status(),
                r.headers()["x-request-id"].to_str().unwrap().to_string(),
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And one that starts its own trace.
    let own = client
        .get(format!("{address}/api/herbs"))
        .send()
        .await
        .unwrap();
    let own_request = own.headers()["x-request-id"].to_str().unwrap().to_string();

    // Batches leave at least once a second.
    let mut exported = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while exported.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok((path, body)) = spans.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(path, "/v1/traces");
            for rs in body["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    exported.extend(ss["spans"].as_array().unwrap().iter().cloned());
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let (status, request) = answered.unwrap_or_else(|| panic!("never answered:\n{text}"));
    assert_eq!(status, reqwest::StatusCode::OK, "{text}");

    // The log: the caller's trace id on the request's line.
    let line = text
        .lines()
        .find(|l| l.contains(&request))
        .unwrap_or_else(|| panic!("no line for {request} in:\n{text}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], TRACE, "{line}");
    let own_line = text
        .lines()
        .find(|l| l.contains(&own_request))
        .unwrap_or_else(|| panic!("no line for {own_request} in:\n{text}"));
    let own_line: serde_json::Value = serde_json::from_str(own_line).unwrap();
    let own_trace = own_line["trace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(own_trace.len(), 32, "{own_line}");
    assert_ne!(own_trace, TRACE);

    // The spans: the caller's is its child, the other a root; no path.
    let continued = exported
        .iter()
        .find(|s| s["traceId"] == TRACE)
        .unwrap_or_else(|| panic!("no span of the caller's trace in {exported:?}"));
    assert_eq!(continued["parentSpanId"], PARENT);
    assert_eq!(continued["name"], "GET /api/symptom-submissions");
    assert_eq!(continued["kind"], 2);
    assert_ne!(continued["spanId"], PARENT);
    let root = exported
        .iter()
        .find(|s| s["traceId"] == own_trace.as_str())
        .unwrap_or_else(|| panic!("no span of trace {own_trace} in {exported:?}"));
    assert!(root.get("parentSpanId").is_none(), "{root}");
    assert_eq!(root["name"], "GET /api/herbs");
    let _ = std::fs::remove_dir_all(&dir);
}
