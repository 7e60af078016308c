//! Test harness: a fresh database per test, cloned from a template that is
//! migrated once per migration set, and the real server on port 0.

use std::collections::HashMap;
use std::sync::OnceLock;

use phi_gateway::auth::JwtVerifier;
use phi_gateway::config::Settings;
use phi_gateway::startup::Application;
use secrecy::SecretString;
use sqlx::{Connection, PgConnection};

pub use crate::testdb::*;

/// The audit signing key of every test server, made once per test process,
/// and its public half.
pub struct TestSigning {
    pub private: std::path::PathBuf,
    pub public: std::path::PathBuf,
}

pub fn signing() -> &'static TestSigning {
    static KEYS: OnceLock<TestSigning> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("phi-signing-{}", uuid::Uuid::new_v4().simple()));
        let private = dir.join("audit-signing.json");
        let public = dir.join("audit-verify.json");
        let keys = phi_gateway::audit::signing::SigningKeys::generate().unwrap();
        keys.write_file(&private, false).unwrap();
        std::fs::write(&public, keys.public().to_file_text()).unwrap();
        TestSigning { private, public }
    })
}

pub fn verifying_keys() -> phi_gateway::audit::signing::VerifyingKeys {
    phi_gateway::audit::signing::VerifyingKeys::load_file(&signing().public).unwrap()
}

pub fn signing_keys() -> phi_gateway::audit::signing::SigningKeys {
    phi_gateway::audit::signing::SigningKeys::load_file(&signing().private).unwrap()
}

/// Test-only keys (base64 of 32 bytes each) and CMS secret.
pub const TEST_DATA_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const TEST_INDEX_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
pub const PAYLOAD_SECRET: &str = "test-payload-secret";

/// A token made exactly as Payload makes it (HS256 under the first 32 hex
/// characters of sha256(PAYLOAD_SECRET)).
pub fn token(user_id: &str, roles: &[&str]) -> String {
    let v = JwtVerifier::new(
        &SecretString::from(PAYLOAD_SECRET),
        vec!["users".into()],
        30,
    );
    let now = chrono::Utc::now().timestamp();
    v.sign(&serde_json::json!({
        "id": user_id, "collection": "users", "email": format!("{user_id}@example.org"),
        "iat": now, "exp": now + 3600, "roles": roles,
    }))
}

/// An HTTP client for the tests. reqwest's TLS is rustls without a built-in
/// crypto provider (the gateway's transit client picks ring), so one is
/// installed first.
/// What a finished command wrote, stdout then stderr, for assertions and
/// failure messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn http_client() -> reqwest::Client {
    phi_gateway::crypto::kek::install_tls_provider();
    reqwest::Client::new()
}

pub fn bearer(user_id: &str, roles: &[&str]) -> String {
    format!("JWT {}", token(user_id, roles))
}

/// The namespaced id a test user has inside the gateway (`users:<id>`).
#[allow(dead_code)]
pub fn uid(user_id: &str) -> String {
    format!("users:{user_id}")
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Owned so the database lives as long as the test; dropped after it.
    pub db: TestDb,
}

/// Request helpers for a server whose database someone else owns.
pub struct Remote<'c> {
    pub address: String,
    pub client: &'c reqwest::Client,
}

impl TestApp {
    pub fn at<'c>(address: &str, client: &'c reqwest::Client) -> Remote<'c> {
        Remote {
            address: address.to_string(),
            client,
        }
    }
}

impl Remote<'_> {
    /// A caller of this server (as `TestApp::caller`).
    pub fn caller<'a>(&'a self, who: Who<'a>) -> Caller<'a> {
        Caller {
            address: &self.address,
            client: self.client,
            who,
            headers: vec![],
            purpose: default_purpose(who),
        }
    }
}

/// Settings for a test server: port 0, one worker, the given database URL,
/// development, no background sealing unless a sealer URL is given.
pub fn test_settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let private: &'static str = signing().private.to_str().unwrap();
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("PHI_ENVIRONMENT", "development"),
        ("PHI_AUDIT_SIGNING_KEY", private),
        ("PHI_ANALYTICS_REFRESH_SECS", "0"),
        ("DATABASE_URL", database_url),
        ("DATABASE_ENCRYPTION_KEY", TEST_DATA_KEY),
        ("DATABASE_BLIND_INDEX_KEY", TEST_INDEX_KEY),
        ("PAYLOAD_SECRET", PAYLOAD_SECRET),
        ("PHI_PORT", "0"),
        ("PHI_WORKERS", "1"),
        ("DATABASE_TLS_MODE", "disable"),
        ("DATABASE_MIN_CONNECTIONS", "0"),
        ("PHI_SHUTDOWN_TIMEOUT_SECS", "1"),
        // Off in tests (tests/api/limits.rs turns it on).
        ("PHI_ANONYMOUS_PER_MINUTE", "0"),
        // The operations listener (metrics, detailed health), on a free port.
        ("PHI_METRICS_ADDR", "127.0.0.1:0"),
    ]);
    env.extend(extra.iter().copied());
    Settings::from_parts("", None, &env).unwrap()
}

/// The operations listener of each server a test started, by API address.
fn ops_listeners() -> &'static std::sync::Mutex<HashMap<String, String>> {
    static OPS: OnceLock<std::sync::Mutex<HashMap<String, String>>> = OnceLock::new();
    OPS.get_or_init(Default::default)
}

/// The operations listener's URL for `path` (`/metrics`, the detailed
/// `/health/..`) of the server at `address`.
pub fn ops_url(address: &str, path: &str) -> String {
    let ops = ops_listeners()
        .lock()
        .unwrap()
        .get(address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} was started without an operations listener"));
    format!("{ops}{path}")
}

/// A free port on loopback (for a real binary the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary's `serve` on `port` against `database_url`, in a clean
/// environment with the tests' development settings; callers add theirs.
pub fn serve_command(database_url: &str, port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_phi-gateway"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("PHI_CONFIG", "/dev/null")
        .env("PHI_ENVIRONMENT", "development")
        .env("DATABASE_TLS_MODE", "disable")
        .env("DATABASE_ENCRYPTION_KEY", TEST_DATA_KEY)
        .env("DATABASE_BLIND_INDEX_KEY", TEST_INDEX_KEY)
        .env("PAYLOAD_SECRET", PAYLOAD_SECRET)
        .env("PHI_PORT", port.to_string())
        .env("PHI_ANALYTICS_REFRESH_SECS", "0");
    cmd
}

/// The `/metrics` text of the server at `address` (its operations listener).
pub async fn scrape(client: &reqwest::Client, address: &str) -> String {
    client
        .get(ops_url(address, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Starts the real server on a free port in the background.
pub async fn start_server(settings: Settings) -> String {
    if std::env::var("TEST_LOG").is_ok() {
        phi_gateway::telemetry::init(phi_gateway::config::LogFormat::Pretty);
    }
    let app = Application::build(&settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    if let Some(port) = app.ops_port() {
        ops_listeners()
            .lock()
            .unwrap()
            .insert(address.clone(), format!("http://127.0.0.1:{port}"));
    }
    tokio::spawn(app.run_until_stopped());
    address
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::migrated().await;
    let sealer = db.sealer_url();
    let mut all: Vec<(&str, &str)> = vec![("AUDIT_SEALER_DATABASE_URL", sealer.as_str())];
    all.extend_from_slice(extra);
    let settings = test_settings(&db.app_url(), &all);
    let address = start_server(settings).await;
    TestApp {
        address,
        client: crate::helpers::http_client(),
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET on the operations listener (`/metrics`, detailed health).
    pub async fn ops_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(ops_url(&self.address, path))
            .send()
            .await
            .unwrap()
    }

    /// A superuser connection to this test's database (to look under RLS).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.db.admin_url()).await.unwrap()
    }
}

/// Who a request is from: `None` is anonymous, else (user id, roles).
pub type Who<'a> = Option<(&'a str, &'a [&'a str])>;

/// A caller of the test server: `app.as_editor().post(path, &body)`,
/// `app.as_admin().break_glass("ER").get(path)`, `app.anonymous().get(path)`.
pub struct Caller<'a> {
    address: &'a str,
    client: &'a reqwest::Client,
    who: Who<'a>,
    headers: Vec<(&'static str, String)>,
    /// `X-Purpose-Of-Use`: `treatment` for practitioners and admins unless
    /// a test says otherwise (`purpose`, `without_purpose`), none for others.
    purpose: Option<&'static str>,
}

/// The purpose a caller sends unless a test says: what practitioners and
/// admins owe, nothing for anyone else.
fn default_purpose(who: Who<'_>) -> Option<&'static str> {
    let owes =
        who.is_some_and(|(_, roles)| roles.iter().any(|r| *r == "practitioner" || *r == "admin"));
    owes.then_some("treatment")
}

impl<'a> Caller<'a> {
    /// Adds an `X-Break-Glass-Reason`.
    pub fn break_glass(self, reason: &str) -> Self {
        self.header("x-break-glass-reason", reason)
    }

    /// Sends `X-Purpose-Of-Use: <purpose>`.
    pub fn purpose(mut self, purpose: &'static str) -> Self {
        self.purpose = Some(purpose);
        self
    }

    /// Sends no `X-Purpose-Of-Use`.
    pub fn without_purpose(mut self) -> Self {
        self.purpose = None;
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut b = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some((id, roles)) = self.who {
            b = b.header("authorization", bearer(id, roles));
        }
        if let Some(p) = self.purpose {
            b = b.header("x-purpose-of-use", p);
        }
        for (k, v) in &self.headers {
            b = b.header(*k, v);
        }
        b
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.req(reqwest::Method::PATCH, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Any method, with a JSON body or none.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let mut b = self.req(method, path);
        if let Some(body) = body {
            b = b.json(body);
        }
        b.send().await.unwrap()
    }
}

impl TestApp {
    pub fn caller<'a>(&'a self, who: Who<'a>) -> Caller<'a> {
        Caller {
            address: &self.address,
            client: &self.client,
            who,
            headers: vec![],
            purpose: default_purpose(who),
        }
    }

    pub fn anonymous(&self) -> Caller<'_> {
        self.caller(None)
    }

    pub fn as_user<'a>(&'a self, id: &'a str, roles: &'a [&'a str]) -> Caller<'a> {
        self.caller(Some((id, roles)))
    }

    pub fn as_patient<'a>(&'a self, id: &'a str) -> Caller<'a> {
        self.as_user(id, &[])
    }

    pub fn as_editor(&self) -> Caller<'_> {
        self.as_user("ed", &["editor"])
    }

    pub fn as_admin(&self) -> Caller<'_> {
        self.as_user("adm", &["admin"])
    }

    pub fn as_auditor(&self) -> Caller<'_> {
        self.as_user("aud", &["auditor"])
    }
}

/// Reads a response as JSON, failing the test with the body if it is not.
pub async fn json(res: reqwest::Response) -> serde_json::Value {
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts Payload's plain error shape and returns the first message.
pub fn error_message(body: &serde_json::Value) -> String {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"));
    assert!(!errors.is_empty(), "empty errors array: {body}");
    errors[0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {body}"))
        .to_string()
}

/// Held while a test builds clients/payload's `dist` (its `npm test`, and
/// `npm pack` for the example app): two builds at once would write the
/// same files.
pub fn client_build_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}
