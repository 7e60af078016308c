//! Key rotation end to end: rows under v1, rotate, new rows under v2, old
//! rows still read, `reencrypt` moves everything to v2 while a writer keeps
//! creating and changing rows, and afterwards no value uses v1 and nothing
//! was lost or left unreadable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use phi_gateway::crypto::{Keyring, Purpose};
use phi_gateway::rekey;
use serde_json::json;

use crate::helpers::{TestDb, json, start_server, test_settings};

const ANN: Option<(&str, &[&str])> = Some(("ann", &[]));

fn body(notes: &str) -> serde_json::Value {
    json!({"symptoms": [{"name": "Headache", "severity": 3, "onset": "2026-01-02"}],
           "notes": notes, "contactEmail": "ann@example.org", "dateOfBirth": "1990-01-01"})
}

async fn key_ids(pool: &sqlx::PgPool) -> Vec<(i32, i64)> {
    sqlx::query_as(
        "SELECT get_byte(notes, 5) AS k, count(*) FROM symptom_submissions GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rotate_then_reencrypt_online_loses_nothing() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-rot-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("keyring.json");
    Keyring::generate(false)
        .unwrap()
        .write_file(&path, false)
        .unwrap();
    let path_s = path.to_str().unwrap().to_string();
    let no_env_keys = [
        ("PHI_KEYRING", path_s.as_str()),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
    ];
    let v1 = start_server(test_settings(&db.app_url(), &no_env_keys)).await;
    let client = crate::helpers::http_client();
    let app = |base: &str| crate::helpers::TestApp::at(base, &client);

    let mut ids = Vec::new();
    for i in 0..30 {
        let res = app(&v1)
            .caller(ANN)
            .post("/api/symptom-submissions", &body(&format!("note {i}")))
            .await;
        assert_eq!(res.status(), 201);
        ids.push(json(res).await["doc"]["id"].as_str().unwrap().to_string());
    }
    let admin = db.admin_pool().await;
    assert_eq!(key_ids(&admin).await, vec![(1, 30)]);

    // Rotate: v2 active, v1 decrypt-only. A restarted gateway picks it up.
    let mut ring = Keyring::load_file(&path, false).unwrap();
    assert_eq!(ring.rotate(Purpose::Data).unwrap(), 2);
    ring.write_file(&path, true).unwrap();
    let v2 = start_server(test_settings(&db.app_url(), &no_env_keys)).await;
    let res = app(&v2)
        .caller(ANN)
        .post("/api/symptom-submissions", &body("fresh"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(key_ids(&admin).await, vec![(1, 30), (2, 1)]);
    let old = json(
        app(&v2)
            .caller(ANN)
            .get(&format!("/api/symptom-submissions/{}", ids[0]))
            .await,
    )
    .await;
    assert_eq!(old["notes"], "note 0");

    // A writer keeps creating rows and changing old ones during reencrypt.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let base = v2.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let client = crate::helpers::http_client();
            let app = crate::helpers::TestApp::at(&base, &client);
            let mut last: HashMap<String, String> = HashMap::new();
            let mut created = 0;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 20 {
                n += 1;
                let res = app
                    .caller(ANN)
                    .post("/api/symptom-submissions", &body(&format!("live {n}")))
                    .await;
                assert_eq!(res.status(), 201);
                created += 1;
                let id = &ids[n % ids.len()];
                let value = format!("patched {n}");
                let res = app
                    .caller(ANN)
                    .patch(
                        &format!("/api/symptom-submissions/{id}"),
                        &json!({"notes": value}),
                    )
                    .await;
                assert_eq!(res.status(), 200);
                last.insert(id.clone(), value);
            }
            (created, last)
        })
    };
    let report = rekey::reencrypt(&admin, &ring, false, &phi_gateway::progress::Quiet)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (created, last) = writer.await.unwrap();
    assert!(report.scanned >= 31, "{report:?}");

    // Nothing under v1 remains (rows raced by the writer were written under v2).
    let usage = rekey::usage(&admin).await.unwrap();
    assert_eq!(usage.rows_under(Purpose::Data, 1), 0, "{usage:?}");
    assert!(usage.rows_under(Purpose::Data, 2) > 0);

    // Nothing lost: every row reads, old ones hold their last written value.
    let mut seen = 0;
    let mut page = 1;
    loop {
        let list = json(
            app(&v2)
                .caller(ANN)
                .get(&format!("/api/symptom-submissions?limit=100&page={page}"))
                .await,
        )
        .await;
        for d in list["docs"].as_array().unwrap() {
            seen += 1;
            let id = d["id"].as_str().unwrap();
            if let Some(v) = last.get(id) {
                assert_eq!(d["notes"], v.as_str(), "a concurrent update was lost");
            } else if let Some(i) = ids.iter().position(|x| x == id) {
                assert_eq!(d["notes"], format!("note {i}"));
            }
            assert_eq!(d["contactEmail"], "ann@example.org");
        }
        if list["hasNextPage"] != true {
            break;
        }
        page += 1;
    }
    assert_eq!(seen, 31 + created);

    // Blind-index lookups still work, and v1 can now be retired.
    let found = json(
        app(&v2)
            .caller(ANN)
            .get("/api/symptom-submissions?where[contactEmail][equals]=ann@example.org&limit=1")
            .await,
    )
    .await;
    assert_eq!(found["totalDocs"].as_u64().unwrap() as usize, seen);
    rekey::retire(&admin, &mut ring, Purpose::Data, 1)
        .await
        .unwrap();
    let again = rekey::reencrypt(&admin, &ring, true, &phi_gateway::progress::Quiet)
        .await
        .unwrap();
    assert_eq!(again.rewritten, 0, "a second pass finds nothing to do");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn index_key_rotation_reindexes_and_lookups_work_throughout() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-rot-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("keyring.json");
    Keyring::generate(false)
        .unwrap()
        .write_file(&path, false)
        .unwrap();
    let path_s = path.to_str().unwrap().to_string();
    let extra = [
        ("PHI_KEYRING", path_s.as_str()),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
    ];
    let client = crate::helpers::http_client();
    let before = start_server(test_settings(&db.app_url(), &extra)).await;
    let a = crate::helpers::TestApp::at(&before, &client);
    assert_eq!(
        a.caller(ANN)
            .post("/api/symptom-submissions", &body("x"))
            .await
            .status(),
        201
    );

    let mut ring = Keyring::load_file(&path, false).unwrap();
    ring.rotate(Purpose::Index).unwrap();
    ring.write_file(&path, true).unwrap();
    let after = start_server(test_settings(&db.app_url(), &extra)).await;
    let b = crate::helpers::TestApp::at(&after, &client);
    let q = "/api/symptom-submissions?where[contactEmail][equals]=ann@example.org";
    assert_eq!(
        json(b.caller(ANN).get(q).await).await["totalDocs"],
        1,
        "old index found by the new gateway"
    );
    assert_eq!(
        b.caller(ANN)
            .post("/api/symptom-submissions", &body("y"))
            .await
            .status(),
        201
    );
    assert_eq!(json(b.caller(ANN).get(q).await).await["totalDocs"], 2);

    let admin = db.admin_pool().await;
    // The library refuses to retire a key that values still use.
    let refused = rekey::retire(&admin, &mut ring, Purpose::Index, 1)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("still use"), "{refused}");
    rekey::reencrypt(&admin, &ring, false, &phi_gateway::progress::Quiet)
        .await
        .unwrap();
    let usage = rekey::usage(&admin).await.unwrap();
    assert_eq!(usage.rows_under(Purpose::Index, 1), 0, "{usage:?}");
    // Two email indexes and the two submissions' analytics keys.
    assert_eq!(usage.rows_under(Purpose::Index, 2), 4, "{usage:?}");
    rekey::retire(&admin, &mut ring, Purpose::Index, 1)
        .await
        .unwrap();
    ring.write_file(&path, true).unwrap();
    let last = start_server(test_settings(&db.app_url(), &extra)).await;
    let c = crate::helpers::TestApp::at(&last, &client);
    assert_eq!(json(c.caller(ANN).get(q).await).await["totalDocs"], 2);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A keyring whose ids match the database's but whose keys differ (another
/// deployment's file, one regenerated by mistake) is refused at start and
/// on reload, before it seals a value under a second "key 1"; the key
/// check values say so without a key leaving the keyring (issue 20).
#[tokio::test]
async fn a_keyring_with_the_same_ids_but_other_keys_is_refused() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-kcv-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("keyring.json");
    Keyring::generate(false)
        .unwrap()
        .write_file(&path, false)
        .unwrap();
    let path_s = path.to_str().unwrap().to_string();
    let settings = test_settings(
        &db.app_url(),
        &[
            ("PHI_KEYRING", path_s.as_str()),
            ("DATABASE_ENCRYPTION_KEY", ""),
            ("DATABASE_BLIND_INDEX_KEY", ""),
        ],
    );
    let app = phi_gateway::startup::Application::build(&settings)
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let (handle, pool) = (app.keyring.clone(), app.service_pool());
    tokio::spawn(app.run_until_stopped());
    let client = crate::helpers::http_client();
    let gw = crate::helpers::TestApp::at(&address, &client);
    let res = gw
        .caller(ANN)
        .post("/api/symptom-submissions", &body("first"))
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    // The database recorded key 1 of each purpose when the gateway started.
    let admin = db.admin_pool().await;
    let recorded: Vec<(String, i32)> =
        sqlx::query_as("SELECT purpose, key_id FROM key_checks ORDER BY 1, 2")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(recorded, vec![("data".into(), 1), ("index".into(), 1)]);

    // Another keyring with the same ids: a reload is refused, the serving
    // keyring stays and still reads.
    let stranger = dir.join("other.json");
    Keyring::generate(false)
        .unwrap()
        .write_file(&stranger, false)
        .unwrap();
    std::fs::copy(&stranger, &path).unwrap();
    let err = phi_gateway::keyreload::reload(&handle, &settings, &pool)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("differs from the serving keyring"),
        "{err:#}"
    );
    let res = gw
        .caller(ANN)
        .get(&format!("/api/symptom-submissions/{id}"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["notes"], "first");
    // ...and a gateway started with it does not start.
    let err = match phi_gateway::startup::Application::build(&settings).await {
        Ok(_) => panic!("a gateway started with another deployment's keyring"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("check values differ"), "{err}");
    // Nothing was sealed under the stranger's "key 1".
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    std::fs::remove_dir_all(dir).ok();
}
