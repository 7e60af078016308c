//! Key-encryption keys against the real thing: OpenBao's transit engine
//! (`bao server -dev`, started by deploy/test.sh through deploy/bao.sh) and
//! file KEKs, driven through the real binary and the real server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{PAYLOAD_SECRET, TestApp, TestDb, json, signing, start_server, test_settings};

const ANN: Option<(&str, &[&str])> = Some(("ann", &[]));

fn body(notes: &str) -> Value {
    json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}],
           "notes": notes, "contactEmail": "ann@example.org"})
}

/// The test OpenBao server (deploy/bao.sh), with its root token.
struct Bao {
    addr: String,
    token: String,
    client: reqwest::Client,
}

fn bao() -> Bao {
    let addr = std::env::var("PHI_BAO_ADDR")
        .expect("PHI_BAO_ADDR: run the tests with deploy/test.sh, which starts OpenBao");
    let token = std::env::var("PHI_BAO_TOKEN").expect("PHI_BAO_TOKEN");
    Bao {
        addr,
        token,
        client: crate::helpers::http_client(),
    }
}

impl Bao {
    async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .client
            .post(format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A transit key of this test's own.
    async fn new_key(&self) -> String {
        let name = format!("t-{}", uuid::Uuid::new_v4().simple());
        self.post(&format!("transit/keys/{name}"), json!({})).await;
        name
    }

    async fn rotate(&self, name: &str) {
        self.post(&format!("transit/keys/{name}/rotate"), json!({}))
            .await;
    }

    async fn delete(&self, name: &str) {
        self.post(
            &format!("transit/keys/{name}/config"),
            json!({"deletion_allowed": true}),
        )
        .await;
        let res = self
            .client
            .delete(format!("{}/v1/transit/keys/{name}", self.addr))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }

    /// What the service decrypts a wrapped key to (to scan the file for it).
    async fn unwrap(&self, name: &str, ciphertext: &str, binding: &str) -> Vec<u8> {
        let v = self
            .post(
                &format!("transit/decrypt/{name}"),
                json!({"ciphertext": ciphertext, "associated_data": B64.encode(binding)}),
            )
            .await;
        B64.decode(v["data"]["plaintext"].as_str().unwrap())
            .unwrap()
    }

    fn uri(&self, name: &str) -> String {
        format!(
            "transit+http://{}/{name}",
            self.addr.trim_start_matches("http://")
        )
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phi-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real binary with a clean environment, the keyring at `ring`, and `extra`.
fn cli(db: &TestDb, ring: &Path, extra: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_phi-gateway"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.app_url())
        .env("MIGRATION_DATABASE_URL", db.admin_url())
        .env("PHI_KEYRING", ring)
        .env("PHI_CONFIG", "/dev/null")
        .env("PHI_ENVIRONMENT", "development")
        .env("DATABASE_TLS_MODE", "disable")
        .env("PHI_AUDIT_SIGNING_KEY", &signing().private)
        .env("PHI_AUDIT_VERIFY_KEY", &signing().public)
        .env("PAYLOAD_SECRET", PAYLOAD_SECRET)
        .env("RUST_LOG", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = crate::helpers::output_text(&out);
    (out.status.success(), text)
}

fn file_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every (purpose, id, wrapped, kek_version) in a keyring file; fails if a
/// key is in the clear.
fn wrapped_keys(ring: &Value) -> Vec<(&'static str, u64, String, String)> {
    let mut out = Vec::new();
    for (purpose, field) in [("data", "data_keys"), ("index", "index_keys")] {
        for k in ring[field].as_array().unwrap() {
            assert!(k.get("key").is_none(), "a key in the clear: {k}");
            out.push((
                purpose,
                k["id"].as_u64().unwrap(),
                k["wrapped"].as_str().unwrap().to_string(),
                k["kek_version"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The lines of `keys status` for data key versions.
fn data_key_lines(status: &str) -> Vec<String> {
    status
        .lines()
        .skip_while(|l| !l.starts_with("data keys:"))
        .skip(1)
        .take_while(|l| !l.starts_with("index keys:"))
        .map(str::to_string)
        .collect()
}

fn ring_settings<'a>(ring: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("PHI_KEYRING", ring),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
    ];
    v.extend_from_slice(extra);
    v
}

#[tokio::test]
async fn a_transit_wrapped_keyring_serves_and_its_file_holds_no_key_bytes() {
    let bao = bao();
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-transit");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let name = bao.new_key().await;
    let uri = bao.uri(&name);
    let token = [("PHI_KEK_TOKEN", bao.token.as_str())];

    let (ok, out) = cli(
        &db,
        &ring,
        &token,
        &["keys", "generate", "--out", ring_s, "--kek", &uri],
    );
    assert!(ok && out.contains(&format!("wrapped by {uri}")), "{out}");

    // The file names its KEK and holds only transit ciphertexts; the key
    // bytes they open to appear nowhere in it, in any encoding.
    let file = file_json(&ring);
    assert_eq!(file["kek"], json!(uri));
    let raw = std::fs::read(&ring).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    let keys = wrapped_keys(&file);
    assert_eq!(keys.len(), 2);
    for (purpose, id, wrapped, version) in &keys {
        assert!(wrapped.starts_with("vault:v1:"), "{wrapped}");
        assert_eq!(version, "1");
        let bytes = bao
            .unwrap(
                &name,
                wrapped,
                &format!("phi-gateway/keyring/v1/{purpose}/{id}"),
            )
            .await;
        assert_eq!(bytes.len(), 32);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        for enc in [B64.encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes), hex] {
            assert!(!text.contains(&enc));
            assert!(!text.to_lowercase().contains(&enc.to_lowercase()));
        }
        assert!(!raw.windows(32).any(|w| w == bytes.as_slice()));
    }

    // The gateway unwraps at start and seals and opens through it.
    let settings = ring_settings(ring_s, &token);
    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let client = crate::helpers::http_client();
    let app = TestApp::at(&address, &client);
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &body("wrapped"))
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    let doc = json(
        app.caller(ANN)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await,
    )
    .await;
    assert_eq!(doc["notes"], "wrapped");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn rewrap_follows_a_rotated_transit_key_and_moves_to_another_without_touching_rows() {
    let bao = bao();
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-rewrap");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let first = bao.new_key().await;
    let token = [("PHI_KEK_TOKEN", bao.token.as_str())];
    let (ok, out) = cli(
        &db,
        &ring,
        &token,
        &[
            "keys",
            "generate",
            "--out",
            ring_s,
            "--kek",
            &bao.uri(&first),
        ],
    );
    assert!(ok, "{out}");
    let settings = ring_settings(ring_s, &token);
    let client = crate::helpers::http_client();
    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let res = TestApp::at(&address, &client)
        .caller(ANN)
        .post("/api/symptom-submissions", &body("before rewrap"))
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    let admin = db.admin_pool().await;
    let sealed_before: Vec<u8> = sqlx::query_scalar("SELECT notes FROM symptom_submissions")
        .fetch_one(&admin)
        .await
        .unwrap();

    // A new version of the same transit key: every key wrapped anew under it.
    bao.rotate(&first).await;
    let (ok, out) = cli(
        &db,
        &ring,
        &token,
        &["keys", "rewrap", "--kek", &bao.uri(&first)],
    );
    assert!(ok, "{out}");
    for (_, _, wrapped, version) in wrapped_keys(&file_json(&ring)) {
        assert!(wrapped.starts_with("vault:v2:"), "{wrapped}");
        assert_eq!(version, "2");
    }
    let (ok, status) = cli(&db, &ring, &token, &["keys", "status"]);
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("keys wrapped by {}", bao.uri(&first))),
        "{status}"
    );
    assert!(
        data_key_lines(&status)
            .iter()
            .all(|l| l.contains("KEK version 2")),
        "{status}"
    );

    // Another transit key altogether; the old one can then go.
    let second = bao.new_key().await;
    let (ok, out) = cli(
        &db,
        &ring,
        &token,
        &["keys", "rewrap", "--kek", &bao.uri(&second)],
    );
    assert!(ok, "{out}");
    assert_eq!(file_json(&ring)["kek"], json!(bao.uri(&second)));
    bao.delete(&first).await;
    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let doc = json(
        TestApp::at(&address, &client)
            .caller(ANN)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await,
    )
    .await;
    assert_eq!(doc["notes"], "before rewrap");
    let sealed_after: Vec<u8> = sqlx::query_scalar("SELECT notes FROM symptom_submissions")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(sealed_before, sealed_after, "rewrap touches no row");

    // PHI_KEK names the KEK the keyring must be wrapped by.
    let mut pinned = token.to_vec();
    let old_uri = bao.uri(&first);
    pinned.push(("PHI_KEK", old_uri.as_str()));
    let (ok, out) = cli(&db, &ring, &pinned, &["keys", "status"]);
    assert!(
        !ok && out.contains("but the settings name") && out.contains("keys rewrap"),
        "{out}"
    );

    // A wrong token, and a deleted key, stop the start with the URI and the
    // cause; the process exits non-zero.
    let (ok, out) = cli(&db, &ring, &[("PHI_KEK_TOKEN", "not-a-token")], &["serve"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&bao.uri(&second)) && out.contains("permission denied"),
        "{out}"
    );
    assert!(!out.contains(&bao.token));
    bao.delete(&second).await;
    let (ok, out) = cli(&db, &ring, &token, &["serve"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&bao.uri(&second)) && out.contains("no such transit key"),
        "{out}"
    );

    // The key service unreachable.
    let mut moved = file_json(&ring);
    moved["kek"] = json!("transit+http://127.0.0.1:9/phi");
    std::fs::write(&ring, moved.to_string()).unwrap();
    let (ok, out) = cli(&db, &ring, &token, &["serve"]);
    assert!(
        !ok && out.contains("transit+http://127.0.0.1:9/phi")
            && out.contains("cannot reach the key service"),
        "{out}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn production_refuses_keys_in_the_clear_and_keys_wrap_migrates_them() {
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-wrap");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let kek = dir.join("kek.json");
    let kek_uri = format!("file://{}", kek.display());
    let production = [("PHI_ENVIRONMENT", "production")];

    let (ok, out) = cli(&db, &ring, &[], &["keys", "generate", "--out", ring_s]);
    assert!(ok && out.contains("in the clear"), "{out}");
    let settings = ring_settings(ring_s, &[]);
    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let client = crate::helpers::http_client();
    let res = TestApp::at(&address, &client)
        .caller(ANN)
        .post("/api/symptom-submissions", &body("from before"))
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();

    let (ok, out) = cli(&db, &ring, &production, &["keys", "status"]);
    assert!(
        !ok && out.contains("in the clear") && out.contains("keys wrap"),
        "{out}"
    );
    let env_keys = [
        ("PHI_ENVIRONMENT", "production"),
        ("DATABASE_ENCRYPTION_KEY", crate::helpers::TEST_DATA_KEY),
        ("DATABASE_BLIND_INDEX_KEY", crate::helpers::TEST_INDEX_KEY),
    ];
    let (ok, out) = cli(&db, &ring, &env_keys, &["keys", "status"]);
    assert!(!ok && out.contains("production refuses them"), "{out}");

    // One command wraps them, in place; the rows stay readable.
    let (ok, out) = cli(
        &db,
        &ring,
        &[],
        &["keys", "kek", "generate", "--out", kek.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let kek_key = file_json(&kek)["key"].as_str().unwrap().to_string();
    let (ok, out) = cli(&db, &ring, &[], &["keys", "wrap", "--kek", &kek_uri]);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&ring).unwrap();
    assert!(!text.contains(&kek_key));
    assert_eq!(wrapped_keys(&file_json(&ring)).len(), 2);
    let (ok, out) = cli(&db, &ring, &[], &["keys", "wrap", "--kek", &kek_uri]);
    assert!(!ok && out.contains("already wrapped"), "{out}");
    // Production takes the KEK from PHI_KEK, never from the file alone.
    let (ok, out) = cli(&db, &ring, &production, &["keys", "status"]);
    assert!(!ok && out.contains("PHI_KEK is not set"), "{out}");
    let mut named = production.to_vec();
    named.push(("PHI_KEK", kek_uri.as_str()));
    let (ok, status) = cli(&db, &ring, &named, &["keys", "status"]);
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("keys wrapped by {kek_uri}")),
        "{status}"
    );

    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let doc = json(
        TestApp::at(&address, &client)
            .caller(ANN)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await,
    )
    .await;
    assert_eq!(doc["notes"], "from before");

    // A wrapped key moved to another slot does not open.
    let mut swapped = file_json(&ring);
    let data = swapped["data_keys"][0]["wrapped"].clone();
    swapped["data_keys"][0]["wrapped"] = swapped["index_keys"][0]["wrapped"].clone();
    swapped["index_keys"][0]["wrapped"] = data;
    std::fs::write(&ring, swapped.to_string()).unwrap();
    let (ok, out) = cli(&db, &ring, &[], &["keys", "status"]);
    assert!(!ok && out.contains("does not open"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A gateway process of its own, killed when dropped.
struct Gateway {
    child: Child,
    log: PathBuf,
    address: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    async fn start(db: &TestDb, ring: &Path, dir: &Path) -> Gateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("gateway.log");
        let child = Command::new(env!("CARGO_BIN_EXE_phi-gateway"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.app_url())
            .env("AUDIT_SEALER_DATABASE_URL", db.sealer_url())
            .env("PHI_KEYRING", ring)
            .env("PHI_CONFIG", "/dev/null")
            .env("PHI_ENVIRONMENT", "development")
            .env("DATABASE_TLS_MODE", "disable")
            .env("PHI_AUDIT_SIGNING_KEY", &signing().private)
            .env("PAYLOAD_SECRET", PAYLOAD_SECRET)
            .env("PHI_PORT", port.to_string())
            .env("PHI_WORKERS", "1")
            .env("PHI_ANALYTICS_REFRESH_SECS", "0")
            .env("PHI_ANONYMOUS_PER_MINUTE", "0")
            .env("DATABASE_MIN_CONNECTIONS", "0")
            .env("PHI_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        let gw = Gateway {
            child,
            log,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = crate::helpers::http_client();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/health", gw.address)).send().await
                && r.status() == 200
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not start: {}", gw.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test]
async fn sighup_loads_a_new_keyring_and_a_broken_one_keeps_the_old() {
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-reload");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let kek = dir.join("kek.json");
    let kek_uri = format!("file://{}", kek.display());
    let (ok, out) = cli(
        &db,
        &ring,
        &[],
        &["keys", "kek", "generate", "--out", kek.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &db,
        &ring,
        &[],
        &["keys", "generate", "--out", ring_s, "--kek", &kek_uri],
    );
    assert!(ok, "{out}");
    let gw = Gateway::start(&db, &ring, &dir).await;
    let pid = gw.child.id().to_string();
    let client = crate::helpers::http_client();
    let app = TestApp::at(&gw.address, &client);
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &body("under v1"))
        .await;
    assert_eq!(res.status(), 201);
    let first = json(res).await["doc"]["id"].as_str().unwrap().to_string();

    // A new data key in the file (wrapped like the others), then SIGHUP:
    // new values are sealed under it without a restart.
    let (ok, out) = cli(&db, &ring, &[], &["keys", "rotate"]);
    assert!(ok && out.contains("data key 2 is now active"), "{out}");
    assert_eq!(wrapped_keys(&file_json(&ring)).len(), 3);
    let (ok, out) = cli(&db, &ring, &[], &["keys", "reload", "--pid", &pid]);
    assert!(ok, "{out}");
    let admin = db.admin_pool().await;
    let mut under_v2 = 0i64;
    for _ in 0..200 {
        let res = app
            .caller(ANN)
            .post("/api/symptom-submissions", &body("after reload"))
            .await;
        assert_eq!(res.status(), 201);
        under_v2 = sqlx::query_scalar(
            "SELECT count(*) FROM symptom_submissions WHERE get_byte(notes, 5) = 2",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if under_v2 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(under_v2 > 0, "not reloaded: {}", gw.log());
    // The log is written in batches by its own thread: wait for the line.
    let mut logged = false;
    for _ in 0..200 {
        if gw.log().contains("keyring reloaded") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged, "{}", gw.log());

    // A broken file: refused, the serving keyring stays, nothing fails.
    let good = std::fs::read_to_string(&ring).unwrap();
    std::fs::write(&ring, "{ not a keyring").unwrap();
    let (ok, out) = cli(&db, &ring, &[], &["keys", "reload", "--pid", &pid]);
    assert!(ok, "{out}");
    let mut refused = false;
    for _ in 0..200 {
        if gw.log().contains("keyring reload refused") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "{}", gw.log());
    let doc = json(
        app.caller(ANN)
            .get(&format!("/api/symptom-submissions/{first}"))
            .await,
    )
    .await;
    assert_eq!(doc["notes"], "under v1");
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &body("still serving"))
        .await;
    assert_eq!(res.status(), 201);
    // The log names no key material.
    let log = gw.log();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&kek).unwrap()).unwrap();
    assert!(!log.contains(v["key"].as_str().unwrap()));
    drop(gw);
    std::fs::write(&ring, good).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn approle_with_the_documented_policy_is_enough_to_serve() {
    // keys/README.md's policy for the gateway: read the key, encrypt and
    // decrypt with it; nothing else. Logged in with AppRole, not a token.
    let bao = bao();
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-approle");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let name = bao.new_key().await;
    let uri = bao.uri(&name);
    let res = bao
        .client
        .post(format!("{}/v1/sys/auth/approle", bao.addr))
        .header("X-Vault-Token", &bao.token)
        .json(&json!({"type": "approle"}))
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(text.is_empty() || text.contains("already in use"), "{text}");
    let policy = format!(
        "path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}\n\
         path \"transit/encrypt/{name}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/decrypt/{name}\" {{ capabilities = [\"update\"] }}\n"
    );
    bao.post(
        &format!("sys/policies/acl/{name}"),
        json!({"policy": policy}),
    )
    .await;
    bao.post(
        &format!("auth/approle/role/{name}"),
        json!({"token_policies": [name.clone()]}),
    )
    .await;
    let role = bao
        .client
        .get(format!("{}/v1/auth/approle/role/{name}/role-id", bao.addr))
        .header("X-Vault-Token", &bao.token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = bao
        .post(&format!("auth/approle/role/{name}/secret-id"), json!({}))
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_file = dir.join("secret-id");
    std::fs::write(&secret_file, &secret).unwrap();
    let approle = [
        ("PHI_KEK_ROLE_ID", role.as_str()),
        ("PHI_KEK_SECRET_ID_FILE", secret_file.to_str().unwrap()),
    ];
    let (ok, out) = cli(
        &db,
        &ring,
        &approle,
        &["keys", "generate", "--out", ring_s, "--kek", &uri],
    );
    assert!(ok, "{out}");
    let (ok, status) = cli(&db, &ring, &approle, &["keys", "status"]);
    assert!(
        ok && status.contains(&format!("keys wrapped by {uri}")),
        "{status}"
    );
    // A wrong secret: the login is refused, by name.
    std::fs::write(&secret_file, "not-the-secret").unwrap();
    let (ok, out) = cli(&db, &ring, &approle, &["keys", "status"]);
    assert!(!ok && out.contains("AppRole login refused"), "{out}");
    assert!(!out.contains(&secret));
    std::fs::remove_dir_all(dir).unwrap();
}

/// An OpenBao dev server with TLS of this test's own, killed when dropped.
struct TlsBao(Child);

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn transit_over_tls_checks_the_key_services_certificate() {
    let python = std::env::var("PHI_TEST_PYTHON").expect("PHI_TEST_PYTHON (deploy/test.sh)");
    let bin = Path::new(&python).parent().unwrap().join("bao");
    let dir = temp_dir("kek-tls");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("https://127.0.0.1:{port}");
    let _server = TlsBao(
        Command::new(&bin)
            .args(["server", "-dev", "-dev-tls", "-dev-no-store-token"])
            .arg(format!("-dev-tls-cert-dir={}", dir.display()))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg("-dev-root-token-id=tls-root")
            .env("HOME", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ca = dir.join("vault-ca.pem");
    let bao_cli = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("HOME", &dir)
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", "tls-root")
            .env("BAO_CACERT", &ca)
            .output()
            .unwrap()
    };
    let mut up = false;
    for _ in 0..100 {
        if ca.exists() && bao_cli(&["secrets", "enable", "transit"]).status.success() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the TLS dev server did not come up");
    assert!(
        bao_cli(&["write", "-f", "transit/keys/phi"])
            .status
            .success()
    );
    let db = TestDb::migrated().await;
    let ring = dir.join("keyring.json");
    let uri = format!("transit://127.0.0.1:{port}/phi");
    let ca_s = ca.to_str().unwrap();
    let with_ca = [("PHI_KEK_TOKEN", "tls-root"), ("PHI_KEK_CA_FILE", ca_s)];
    let (ok, out) = cli(
        &db,
        &ring,
        &with_ca,
        &[
            "keys",
            "generate",
            "--out",
            ring.to_str().unwrap(),
            "--kek",
            &uri,
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, &ring, &with_ca, &["keys", "status"]);
    assert!(ok, "{out}");
    // Without the CA the certificate is not trusted: refused, and said so.
    let (ok, out) = cli(
        &db,
        &ring,
        &[("PHI_KEK_TOKEN", "tls-root")],
        &["keys", "status"],
    );
    assert!(
        !ok && out.contains("UnknownIssuer") && out.contains(&uri),
        "{out}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A key service that redirects (a hijacked DNS name, a proxy, a service
/// moved): the gateway does not follow, so its token goes to the host the
/// KEK's URI names and nowhere else (issue 20).
#[tokio::test]
async fn a_redirecting_key_service_gets_no_token_elsewhere() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = bao();
    let key = b.new_key().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = b.addr.clone();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let path = String::from_utf8_lossy(&buf[..n])
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    let auth = phi_gateway::config::KekAuth {
        token: Some(secrecy::SecretString::from(b.token.clone())),
        ..Default::default()
    };
    let err = phi_gateway::crypto::Kek::connect(
        &format!("transit+http://127.0.0.1:{port}/{key}"),
        &auth,
        false,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("307"), "{err:#}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one request, not followed"
    );
    // The same URI pointed at the service itself connects.
    let direct = b.addr.replacen("http://", "transit+http://", 1);
    phi_gateway::crypto::Kek::connect(&format!("{direct}/{key}"), &auth, false)
        .await
        .unwrap();
}

/// A serving gateway keeps its keys in memory, so a KEK gone shows only at
/// the next reload or restart; `phi_kek_up` says so before then.
#[tokio::test]
async fn a_kek_that_stops_answering_is_reported_while_the_gateway_serves() {
    let bao = bao();
    let db = TestDb::migrated().await;
    let dir = temp_dir("kek-up");
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let name = bao.new_key().await;
    let uri = bao.uri(&name);
    let token = [("PHI_KEK_TOKEN", bao.token.as_str())];
    let (ok, out) = cli(
        &db,
        &ring,
        &token,
        &["keys", "generate", "--out", ring_s, "--kek", &uri],
    );
    assert!(ok, "{out}");
    let mut settings = ring_settings(ring_s, &token);
    settings.push(("PHI_KEK_CHECK_SECS", "1"));
    let address = start_server(test_settings(&db.app_url(), &settings)).await;
    let client = crate::helpers::http_client();
    let kek_up = async || -> Option<String> {
        let text = crate::helpers::scrape(&client, &address).await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("phi_kek_up{{kek=\"{uri}\"}} ")))
            .map(str::to_string)
    };
    let until = async |want: &str| {
        for _ in 0..100 {
            if kek_up().await.as_deref() == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("phi_kek_up never {want} (last {:?})", kek_up().await);
    };
    until("1").await;
    // The transit key deleted at the key service: reported, and requests
    // still served with the keys in memory.
    bao.delete(&name).await;
    until("0").await;
    let app = TestApp::at(&address, &client);
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &body("still served"))
        .await;
    assert_eq!(res.status(), 201);
    std::fs::remove_dir_all(dir).unwrap();
}
