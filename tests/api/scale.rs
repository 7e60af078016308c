//! More than one gateway (issue 16): two gateways behind PgBouncer in
//! transaction mode against one primary. What one writes the other reads;
//! both run a sealer and the chain stays one chain; a data key rotation in
//! the documented order (stage, roll, activate, roll, re-encrypt) never
//! leaves a gateway unable to open what the other wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phi_gateway::crypto::{Keyring, KeyringHandle};
use phi_gateway::startup::Application;
use serde_json::json;

use crate::helpers::{Remote, TestApp, http_client, json, test_settings};
use crate::testdb::{TestDb, app_password};

const PAT: Option<(&str, &[&str])> = Some(("pat", &[]));

struct Gateway {
    address: String,
    keyring: Arc<KeyringHandle>,
    settings: phi_gateway::config::Settings,
    pool: phi_gateway::store::Db,
}

async fn gateway(db: &TestDb, ring: &str) -> Gateway {
    let port = std::env::var("PHI_PGBOUNCER_PORT")
        .expect("PHI_PGBOUNCER_PORT: run the tests with deploy/test.sh");
    let url = format!(
        "postgres://phi_app:{}@127.0.0.1:{port}/{}",
        app_password(),
        db.name
    );
    let sealer = db.sealer_url();
    let settings = test_settings(
        &url,
        &[
            ("DATABASE_POOLER", "true"),
            ("DATABASE_MAX_CONNECTIONS", "6"),
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "30"),
            ("AUDIT_SEALER_DATABASE_URL", sealer.as_str()),
            ("PHI_AUDIT_SEAL_INTERVAL_MS", "100"),
            ("PHI_KEYRING", ring),
            ("DATABASE_ENCRYPTION_KEY", ""),
            ("DATABASE_BLIND_INDEX_KEY", ""),
        ],
    );
    let app = Application::build(&settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let keyring = app.keyring.clone();
    let pool = app.service_pool();
    tokio::spawn(app.run_until_stopped());
    Gateway {
        address,
        keyring,
        settings,
        pool,
    }
}

fn body(n: &str) -> serde_json::Value {
    json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": n})
}

async fn create(app: &Remote<'_>, n: &str) -> String {
    let res = app
        .caller(PAT)
        .post("/api/symptom-submissions", &body(n))
        .await;
    let status = res.status();
    let b = json(res).await;
    assert_eq!(status, 201, "{b}");
    b["doc"]["id"].as_str().unwrap().to_string()
}

async fn read(app: &Remote<'_>, id: &str) -> (u16, serde_json::Value) {
    let res = app
        .caller(PAT)
        .get(&format!("/api/symptom-submissions/{id}"))
        .await;
    (res.status().as_u16(), json(res).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_database_one_chain_and_a_rotation() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-two-{}", uuid::Uuid::new_v4().simple()));
    let ring = dir.join("keyring.json");
    Keyring::generate(false)
        .unwrap()
        .write_file(&ring, false)
        .unwrap();
    let ring_s = ring.to_str().unwrap();
    let a = gateway(&db, ring_s).await;
    let b = gateway(&db, ring_s).await;
    let client = http_client();
    let (on_a, on_b) = (
        TestApp::at(&a.address, &client),
        TestApp::at(&b.address, &client),
    );

    // What one writes, the other reads.
    let mut ids = Vec::new();
    for i in 0..10 {
        let (from, to) = if i % 2 == 0 {
            (&on_a, &on_b)
        } else {
            (&on_b, &on_a)
        };
        let id = create(from, &format!("n{i}")).await;
        let (status, doc) = read(to, &id).await;
        assert_eq!(status, 200);
        assert_eq!(doc["notes"], format!("n{i}"));
        ids.push(id);
    }

    // Rotation across both, in the documented order. 1: stage v2 (opens,
    // seals nothing) and roll it to both.
    let mut r = Keyring::load_file(&ring, false).unwrap();
    assert_eq!(r.stage().unwrap(), 2);
    r.write_file(&ring, true).unwrap();
    phi_gateway::keyreload::reload(&a.keyring, &a.settings, &a.pool)
        .await
        .unwrap();
    phi_gateway::keyreload::reload(&b.keyring, &b.settings, &b.pool)
        .await
        .unwrap();
    // 2: activate it; roll to A first. A now seals under v2, and B, not yet
    // rolled, still opens what A writes (it holds v2 from step 1).
    let mut r = Keyring::load_file(&ring, false).unwrap();
    r.activate(2).unwrap();
    r.write_file(&ring, true).unwrap();
    phi_gateway::keyreload::reload(&a.keyring, &a.settings, &a.pool)
        .await
        .unwrap();
    let fresh = create(&on_a, "under v2").await;
    let (status, doc) = read(&on_b, &fresh).await;
    assert_eq!(
        status, 200,
        "B opens a v2 value before its second roll: {doc}"
    );
    assert_eq!(doc["notes"], "under v2");
    phi_gateway::keyreload::reload(&b.keyring, &b.settings, &b.pool)
        .await
        .unwrap();
    let fresh_b = create(&on_b, "b under v2").await;
    let admin = db.admin_pool().await;
    let keys: Vec<(String, i32)> = sqlx::query_as(
        "SELECT id::text, get_byte(notes, 5) FROM symptom_submissions WHERE id::text = ANY($1)",
    )
    .bind(vec![fresh.clone(), fresh_b.clone()])
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(keys.iter().all(|(_, k)| *k == 2), "{keys:?}");
    // 3: re-encrypt; everything reads on both.
    let ring_now = Keyring::load_file(&ring, false).unwrap();
    phi_gateway::rekey::reencrypt(&admin, &ring_now, false, &phi_gateway::progress::Quiet)
        .await
        .unwrap();
    for id in ids.iter().chain([&fresh, &fresh_b]) {
        assert_eq!(read(&on_a, id).await.0, 200);
        assert_eq!(read(&on_b, id).await.0, 200);
    }

    // Both ran a sealer; the chain is one chain: every entry sealed once,
    // positions without gaps, and it verifies.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unsealed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit.log l WHERE NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.seq = l.seq)",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if unsealed == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unsealed} entries left unsealed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (n, distinct, max): (i64, i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), count(DISTINCT pos), max(pos) FROM audit.chain")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(
        (n, distinct),
        (max.unwrap_or(0), max.unwrap_or(0)),
        "one chain, no gaps"
    );
    let v = phi_gateway::audit::verify::verify(
        &admin,
        phi_gateway::audit::chain::VerifyKeys {
            public: Some(&crate::helpers::verifying_keys()),
            keyring: None,
        },
        None,
        None,
        None,
    )
    .await
    .unwrap();
    assert!(v.first_problem.is_none(), "{:?}", v.first_problem);
    assert!(v.entries_checked > 0);
    std::fs::remove_dir_all(dir).ok();
}
