//! Test harness: a fresh database per test, cloned from a template that is
//! migrated once per migration set, and the real server on port 0.

use std::collections::HashMap;
use std::sync::OnceLock;

use phi_gateway::auth::JwtVerifier;
use phi_gateway::config::Settings;
use phi_gateway::db::MIGRATOR;
use phi_gateway::startup::Application;
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// The private cluster's superuser URL (exported by `deploy/pg.sh env`).
pub fn admin_url() -> String {
    std::env::var("PHI_PG_ADMIN_URL").expect(
        "PHI_PG_ADMIN_URL is not set: run the tests with deploy/test.sh \
         (or `source .local/pg/env` after deploy/pg.sh start)",
    )
}

pub fn app_password() -> String {
    std::env::var("PHI_PG_APP_PASSWORD").expect("PHI_PG_APP_PASSWORD is not set")
}

pub fn sealer_password() -> String {
    std::env::var("PHI_PG_SEALER_PASSWORD").expect("PHI_PG_SEALER_PASSWORD is not set")
}

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

/// `postgres://user:pw@host:port/<db>` for the same cluster.
pub fn url_for(user: &str, password: &str, db: &str) -> String {
    let admin = admin_url();
    let host = admin.split('@').nth(1).unwrap().split('/').next().unwrap();
    format!("postgres://{user}:{password}@{host}/{db}")
}

fn admin_url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

pub async fn admin_conn() -> PgConnection {
    PgConnection::connect(&admin_url()).await.unwrap()
}

/// The template's name changes whenever a migration does.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut h: u64 = 0xcbf29ce484222325;
        for m in MIGRATOR.iter() {
            for b in m
                .version
                .to_le_bytes()
                .iter()
                .chain(m.checksum.iter())
                .chain([m.migration_type.is_down_migration() as u8].iter())
            {
                h ^= *b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        }
        format!("phi_tpl_{h:016x}")
    })
}

/// Creates the migrated template once per cluster (several test processes
/// may race: an advisory lock serialises them, and the template appears under
/// its final name only when complete).
async fn ensure_template() {
    let name = template_name();
    let mut admin = admin_conn().await;
    admin
        .execute("SELECT pg_advisory_lock(7241001)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building}").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url_for(&building))
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.expect("migrations apply");
        pool.close().await;
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
            .await
            .unwrap();
    }
    admin
        .execute("SELECT pg_advisory_unlock(7241001)")
        .await
        .unwrap();
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A migrated database (a clone of the template: everything but the
    /// database-level privileges, which `CREATE DATABASE` does not copy).
    pub async fn migrated() -> Self {
        ensure_template().await;
        Self::create(Some(template_name())).await
    }

    /// An empty database (no migrations).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_conn().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin.execute(sql.as_str()).await.unwrap();
        Self { name }
    }

    pub fn admin_url(&self) -> String {
        admin_url_for(&self.name)
    }

    pub fn app_url(&self) -> String {
        url_for("phi_app", &app_password(), &self.name)
    }

    pub fn sealer_url(&self) -> String {
        url_for("phi_sealer", &sealer_password(), &self.name)
    }

    /// A pool as the sealer's role.
    pub async fn sealer_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.sealer_url())
            .await
            .unwrap()
    }

    pub async fn admin_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.admin_url())
            .await
            .unwrap()
    }

    pub async fn app_conn(&self) -> PgConnection {
        PgConnection::connect(&self.app_url()).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can borrow: use a thread
        // with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
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
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<(&str, &[&str])>,
    ) -> reqwest::RequestBuilder {
        let b = self
            .client
            .request(method, format!("{}{}", self.address, path));
        match user {
            Some((id, roles)) => b.header("authorization", bearer(id, roles)),
            None => b,
        }
    }

    pub async fn post_json(
        &self,
        path: &str,
        user: Option<(&str, &[&str])>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.req(reqwest::Method::POST, path, user)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_json(
        &self,
        path: &str,
        user: Option<(&str, &[&str])>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.req(reqwest::Method::PATCH, path, user)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_as(&self, path: &str, user: Option<(&str, &[&str])>) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, user)
            .send()
            .await
            .unwrap()
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
    ]);
    env.extend(extra.iter().copied());
    Settings::from_parts("", None, &env).unwrap()
}

/// Starts the real server on a free port in the background.
pub async fn start_server(settings: Settings) -> String {
    if std::env::var("TEST_LOG").is_ok() {
        phi_gateway::telemetry::init(phi_gateway::config::LogFormat::Pretty);
    }
    let app = Application::build(&settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
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
        client: reqwest::Client::new(),
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

    /// Request helpers (shared with servers a test starts itself).
    pub fn remote(&self) -> Remote<'_> {
        TestApp::at(&self.address, &self.client)
    }

    /// A request as `user` with `roles` (None: anonymous).
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<(&str, &[&str])>,
    ) -> reqwest::RequestBuilder {
        self.remote().req(method, path, user)
    }

    pub async fn post_json(
        &self,
        path: &str,
        user: Option<(&str, &[&str])>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.remote().post_json(path, user, body).await
    }

    pub async fn patch_json(
        &self,
        path: &str,
        user: Option<(&str, &[&str])>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.remote().patch_json(path, user, body).await
    }

    pub async fn get_as(&self, path: &str, user: Option<(&str, &[&str])>) -> reqwest::Response {
        self.remote().get_as(path, user).await
    }

    pub async fn delete_as(&self, path: &str, user: Option<(&str, &[&str])>) -> reqwest::Response {
        self.remote()
            .req(reqwest::Method::DELETE, path, user)
            .send()
            .await
            .unwrap()
    }

    /// A superuser connection to this test's database (to look under RLS).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.db.admin_url()).await.unwrap()
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
