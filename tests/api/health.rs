use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{error_message, json, spawn_app, spawn_app_with, start_server, test_settings};

#[tokio::test]
async fn health_answers_without_the_database() {
    // A database URL nothing listens on: /health must not care.
    let settings = test_settings("postgres://phi_app:x@127.0.0.1:9/none", &[]);
    let address = start_server(settings).await;
    let res = crate::helpers::http_client()
        .get(format!("{address}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["status"], "ok");
}

#[tokio::test]
async fn database_health_reports_version_and_pool_to_operators_only() {
    let app = spawn_app().await;
    // The API port tells anyone that it is up, nothing more.
    let res = app.get("/health/database").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await, serde_json::json!({"status": "ok"}));
    assert_eq!(app.get("/metrics").await.status(), 404);
    // The operations listener has the figures.
    let res = app.ops_get("/health/database").await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["status"], "ok");
    let version = body["serverVersion"].as_str().unwrap();
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 15, "server version {version}");
    assert!(body["pool"]["size"].as_u64().unwrap() >= 1);
    assert_eq!(body["pool"]["max"], 10);
}

#[tokio::test]
async fn every_request_gets_an_id_of_ours() {
    let app = spawn_app().await;
    // A client's id is kept apart (in the audit log), never adopted: a
    // client could repeat another request's id.
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "cms-req-42")
        .send()
        .await
        .unwrap();
    let ours = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(ours, "cms-req-42");
    assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
    // Nothing is for a cache to keep.
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");

    let res = app.get("/health").await;
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let again = app.get("/health").await;
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), generated);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.get("/health").await;
    app.get("/health").await;
    app.get("/no/such/path").await;
    let res = app.ops_get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"phi_http_requests_total{method="GET",route="/health",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"phi_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains("phi_http_request_duration_seconds_bucket{"));
    assert!(text.contains("phi_db_pool_max_connections 10"));
    // The operator's figures (issue 25): the build, the database as this
    // scrape found it, the chain, the keyring, the pool's waits, the
    // process.
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let build = text
        .lines()
        .find(|l| l.starts_with("phi_build_info{"))
        .unwrap_or_else(|| panic!("no build info in:\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(
        build.contains("commit=\"") && build.ends_with(" 1"),
        "{build}"
    );
    assert_eq!(value("phi_database_up"), 1.0);
    assert!(value("phi_audit_chain_head_position") >= 0.0);
    assert!(value("phi_keyring_active_key_id") >= 1.0);
    // (Process-wide totals: other tests in this process time out on
    // purpose. Their presence is what is checked here.)
    value("phi_db_pool_acquire_timeouts_total");
    value("phi_db_pool_acquire_wait_seconds_total");
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") > 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") > 0.0);
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started > now - 3600.0 && started <= now + 1.0,
        "{started} vs {now}"
    );
}

fn pg_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/pg.sh")
}

fn pg(cmd: &str, dir: &std::path::Path) {
    let out = Command::new("bash")
        .arg(pg_script())
        .arg(cmd)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg.sh {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_of(dir: &std::path::Path, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join("env")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("export {key}='")))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("{key} not in env file"))
        .to_string()
}

async fn status_of(address: &str) -> (u16, Option<String>) {
    let res = crate::helpers::http_client()
        .get(format!("{address}/health/database"))
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (res.status().as_u16(), retry)
}

/// A cluster of its own (stopping the shared one would break other tests).
#[tokio::test]
async fn database_health_is_503_while_postgres_is_down_and_recovers() {
    let dir = std::env::temp_dir().join(format!("phi-pg-{}", uuid::Uuid::new_v4().simple()));
    let dir_for_cleanup = dir.clone();
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(pg_script())
                .arg("destroy")
                .arg(&self.0)
                .output();
        }
    }
    let _cleanup = Cleanup(dir_for_cleanup);
    pg("start", &dir);
    let port = env_of(&dir, "PHI_PG_PORT");
    let password = env_of(&dir, "PHI_PG_APP_PASSWORD");
    let url = format!("postgres://phi_app:{password}@127.0.0.1:{port}/postgres");
    let address = start_server(test_settings(&url, &[])).await;

    assert_eq!(status_of(&address).await.0, 200);

    pg("stop", &dir);
    let (status, retry_after) = status_of(&address).await;
    assert_eq!(status, 503);
    assert!(retry_after.is_some(), "503 without Retry-After");
    let res = crate::helpers::http_client()
        .get(format!("{address}/health/database"))
        .send()
        .await
        .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = json(res).await;
    assert_eq!(error_message(&body), "Something went wrong.");
    assert_eq!(body["errors"][0]["requestId"], request_id.as_str());

    pg("start", &dir);
    assert_eq!(env_of(&dir, "PHI_PG_PORT"), port, "restart kept the port");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = status_of(&address).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_service_connection_that_could_bypass_row_security_is_refused() {
    // The policies and guards are written for phi_app: the gateway logged in
    // as the superuser (or any other role) serves nothing.
    let db = crate::helpers::TestDb::migrated().await;
    let address = start_server(test_settings(&db.admin_url(), &[])).await;
    let client = crate::helpers::http_client();
    let res = client
        .get(format!("{address}/api/symptom-submissions"))
        .header("authorization", crate::helpers::bearer("ann", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body = json(res).await;
    assert!(
        !body.to_string().contains("phi_app"),
        "no detail to callers: {body}"
    );
    let res = client
        .get(format!("{address}/health/database"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}

#[tokio::test]
async fn a_sealer_falling_behind_shows_in_health_and_metrics() {
    // No sealer in this process: entries wait, and /health/audit and the
    // metric say how long the oldest has.
    let db = crate::helpers::TestDb::migrated().await;
    let address = start_server(test_settings(
        &db.app_url(),
        &[("PHI_AUDIT_MAX_SEAL_LAG_SECS", "1")],
    ))
    .await;
    let client = crate::helpers::http_client();
    let res = client
        .post(format!("{address}/api/symptom-submissions"))
        .header("authorization", crate::helpers::bearer("ann", &[]))
        .json(&serde_json::json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A scrape alone samples the lag (nobody asked /health/audit yet).
    let text = crate::helpers::scrape(&client, &address).await;
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("phi_audit_seal_lag_seconds "))
        .unwrap_or_else(|| panic!("no lag gauge in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(lag >= 1.0, "the scrape's own figure: {lag}");
    assert!(text.contains("\nphi_audit_unsealed_entries "), "{text}");
    let body = json(
        client
            .get(crate::helpers::ops_url(&address, "/health/audit"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["status"], "behind", "{body}");
    assert!(body["lagSeconds"].as_f64().unwrap() >= 1.0, "{body}");
}

/// A wrong password (issue 25): the real binary says so at start, still
/// serves (an orchestrator would restart what exits), answers 503 with
/// Retry-After to what needs the database, and logs the cause again for
/// that request: never the password itself.
#[tokio::test]
async fn a_refused_password_is_named_in_the_logs_and_requests_get_503() {
    let db = crate::helpers::TestDb::migrated().await;
    let wrong = "not-the-password-4b1d";
    let url = db.app_url().replacen(
        &format!(":{}@", crate::testdb::app_password()),
        &format!(":{wrong}@"),
        1,
    );
    assert_ne!(
        url,
        db.app_url(),
        "the test's URL carries a password to replace"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile_path("refused-password.log");
    let mut child = crate::helpers::serve_command(&url, port)
        .env("DATABASE_ACQUIRE_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "info")
        .env("PHI_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::http_client();
    let mut status = None;
    let mut request = String::new();
    for _ in 0..150 {
        if let Ok(r) = client
            .get(format!("{address}/api/symptom-submissions"))
            .header("authorization", crate::helpers::bearer("ann", &[]))
            .send()
            .await
        {
            let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
            status = Some((r.status(), r.headers().get("retry-after").is_some()));
            request = id;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cause of the request's 503 is logged in the background.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        status,
        Some((reqwest::StatusCode::SERVICE_UNAVAILABLE, true)),
        "{text}"
    );
    let start = text
        .lines()
        .find(|l| l.contains("database unreachable at start"))
        .unwrap_or_else(|| panic!("no start-up warning in:\n{text}"));
    assert!(start.contains("password refused"), "{start}");
    assert!(
        text.lines()
            .any(|l| l.contains("database unavailable") && l.contains("password refused")),
        "no cause for the request's 503 in:\n{text}"
    );
    assert!(
        !text.contains(wrong),
        "the password is in the logs:\n{text}"
    );
    // The failed request is one line, which says why, with the service
    // and version; every line is JSON.
    let mine: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains(&request))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(mine.len(), 1, "{text}");
    assert_eq!(mine[0]["request_id"], request.as_str());
    assert_eq!(mine[0]["level"], "WARN");
    assert_eq!(mine[0]["http.status_code"], 503);
    assert!(
        mine[0]["error"].as_str().unwrap().contains("database"),
        "{}",
        mine[0]
    );
    assert_eq!(mine[0]["service"], "phi-gateway");
    assert_eq!(mine[0]["version"], env!("CARGO_PKG_VERSION"));
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert_eq!(v["service"], "phi-gateway", "{l}");
    }
    assert!(text.contains("serving"), "it still serves:\n{text}");
}

fn tempfile_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phi-health-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A gateway that refreshes the analysts' aggregates says when it last did.
#[tokio::test]
async fn the_scheduled_analytics_refresh_is_counted_and_timed() {
    let app = spawn_app_with(&[("PHI_ANALYTICS_REFRESH_SECS", "1")]).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut text = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        text = app.ops_get("/metrics").await.text().await.unwrap();
        if text.contains(r#"phi_analytics_refreshes_total{result="ok"}"#) {
            break;
        }
    }
    let ok: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"phi_analytics_refreshes_total{result="ok"} "#))
        .unwrap_or_else(|| panic!("no successful refresh counted in:\n{text}"))
        .parse()
        .unwrap();
    assert!(ok >= 1.0);
    let last: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("phi_analytics_last_refresh_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(last >= before - 1.0, "{last} vs {before}");
    assert!(
        !text.contains(r#"phi_analytics_refreshes_total{result="failed"}"#),
        "{text}"
    );
}
