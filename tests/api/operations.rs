//! Tokens over HTTP, demo data, and backups that restore whole.

use std::process::Command;

use phi_gateway::auth::JwtVerifier;
use phi_gateway::crypto::{Keyring, Purpose};
use secrecy::SecretString;
use serde_json::json;
use sqlx::Executor;

use crate::helpers::{PAYLOAD_SECRET, TestDb, error_message, json, spawn_app};

#[tokio::test]
async fn bad_tokens_are_401_in_payloads_shape_and_good_ones_pass() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().timestamp();
    let good = JwtVerifier::new(
        &SecretString::from(PAYLOAD_SECRET),
        vec!["users".into()],
        30,
    );
    let wrong = JwtVerifier::new(
        &SecretString::from("not-the-secret"),
        vec!["users".into()],
        30,
    );
    let claims = |exp: i64| json!({"id": 7, "collection": "users", "email": "u@example.org", "iat": now - 5, "exp": exp});
    for (name, header) in [
        ("expired", format!("JWT {}", good.sign(&claims(now - 3600)))),
        (
            "wrong secret",
            format!("JWT {}", wrong.sign(&claims(now + 3600))),
        ),
        ("malformed", "Bearer not.a.token".to_string()),
        (
            "unknown scheme",
            format!("Basic {}", good.sign(&claims(now + 3600))),
        ),
    ] {
        let res = app
            .client
            .get(app.url("/api/symptom-submissions"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name}");
        let body = json(res).await;
        assert!(
            error_message(&body).starts_with("Unauthorized"),
            "{name}: {body}"
        );
    }
    // Numeric ids, either header form.
    for scheme in ["JWT", "Bearer"] {
        let res = app
            .client
            .get(app.url("/api/symptom-submissions"))
            .header(
                "authorization",
                format!("{scheme} {}", good.sign(&claims(now + 3600))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn demo_and_bulk_seeds_load_and_read_back() {
    let db = TestDb::migrated().await;
    let pool = db.admin_pool().await;
    let ring = std::sync::Arc::new(phi_gateway::crypto::KeyringHandle::new(
        Keyring::generate(true).unwrap(),
    ));
    let said = phi_gateway::seed::demo(
        &phi_gateway::store::Db::new(pool.clone(), phi_gateway::store::Mode::default()),
        ring.clone(),
        &phi_gateway::seed::DemoUsers::default(),
    )
    .await
    .unwrap();
    assert!(
        said.contains("51 herbs") && said.contains("1 consent"),
        "{said}"
    );
    // Every role has something to see: demo-patient-1 shares symptoms
    // and notes with the practitioner linked to users:demo-practitioner.
    let consent: (String, String) = sqlx::query_as(
        "SELECT c.owner_id, p.user_id FROM consents c JOIN practitioners p ON p.id = c.practitioner_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        consent,
        (
            "users:demo-patient-1".into(),
            "users:demo-practitioner".into()
        )
    );
    let again = phi_gateway::seed::demo(
        &phi_gateway::store::Db::new(pool.clone(), phi_gateway::store::Mode::default()),
        ring.clone(),
        &phi_gateway::seed::DemoUsers::default(),
    )
    .await
    .unwrap();
    assert!(
        again.contains("already"),
        "demo seeding is idempotent: {again}"
    );
    phi_gateway::seed::bulk(
        &pool,
        &ring.current(),
        300,
        200,
        100,
        &phi_gateway::progress::Quiet,
    )
    .await
    .unwrap();
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM practitioners), (SELECT count(*) FROM herbs), (SELECT count(*) FROM symptom_submissions)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (360, 251, 103));
    // Bulk rows are sealed exactly as the services seal them.
    let usage = phi_gateway::rekey::usage(&pool).await.unwrap();
    // demo: 60 practitioners x 3 sealed fields + 3 submissions x 5 (with
    // the region); bulk: 300 practitioners x 1 (email) + 100 submissions x 3.
    assert_eq!(
        usage.rows_under(Purpose::Data, 1),
        60 * 3 + 3 * 5 + 300 + 100 * 3
    );
    // Every submission has its de-identified facts.
    let facts: i64 = sqlx::query_scalar("SELECT count(*) FROM submission_facts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(facts, 103);
}

/// pg_dump / pg_restore keep the proximity index (an index on plain
/// ll_to_earth would be silently lost on PostgreSQL 15).
#[tokio::test]
async fn a_dump_restores_with_every_index() {
    let db = TestDb::migrated().await;
    let restored = TestDb::empty().await;
    let bindir =
        std::env::var("PHI_PG_BINDIR").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let file = std::env::temp_dir().join(format!("{}.dump", db.name));
    let dump = Command::new(format!("{bindir}/pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&file)
        .arg(db.admin_url())
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    // --enable-row-security: the analysts' materialized views are
    // refreshed by their owner, which meets row-level security (as it does
    // in service); pg_restore's default (row_security = off) would make that
    // refresh an error instead. deploy/README.md says the same.
    let restore = Command::new(format!("{bindir}/pg_restore"))
        .args(["--exit-on-error", "--enable-row-security", "--dbname"])
        .arg(restored.admin_url())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    std::fs::remove_file(&file).unwrap();
    let index_names = |url: String| async move {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let v: Vec<String> = sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname IN ('public', 'audit', 'analytics') ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
        v
    };
    let before = index_names(db.admin_url()).await;
    let after = index_names(restored.admin_url()).await;
    assert!(before.contains(&"practitioners_earth".to_string()));
    assert_eq!(before, after);
    // And the restored copy answers a proximity query from the index.
    let pool = restored.admin_pool().await;
    pool.execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM practitioners ORDER BY earth <-> phi_earth(51.5, -0.1) LIMIT 5",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(plan.join("\n").contains("practitioners_earth"), "{plan:?}");
    // The stored points came back as data, and new rows still get theirs.
    let (missing, moved): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE earth IS NULL),
                count(*) FILTER (WHERE earth_distance(earth, phi_earth(lat, lon)) > 0.001)
         FROM practitioners",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((missing, moved), (0, 0));
}

#[tokio::test]
async fn api_keys_identify_machines_until_revoked_or_expired() {
    use phi_gateway::auth::Role;
    let app = spawn_app().await;
    let pool = app.db.admin_pool().await;
    let operator = phi_gateway::store::Db::new(pool.clone(), phi_gateway::store::Mode::default());
    let ring = Keyring::from_single_keys(
        &SecretString::from(crate::helpers::TEST_DATA_KEY),
        &SecretString::from(crate::helpers::TEST_INDEX_KEY),
    )
    .unwrap();
    let (id, secret) =
        phi_gateway::apikeys::create(&operator, &ring, "compliance bot", Role::Auditor, None)
            .await
            .unwrap();
    let export = |key: String| {
        app.client
            .get(app.url("/api/audit/export?format=ndjson"))
            .header("authorization", format!("services API-Key {key}"))
            .send()
    };
    assert_eq!(export(secret.to_string()).await.unwrap().status(), 200);
    // Stored only as a hash.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !stored
            .windows(8)
            .any(|w| secret.as_bytes().windows(8).any(|x| x == w))
    );
    // phi_app cannot read the table.
    let mut as_app = app.db.app_conn().await;
    let err = sqlx::query("SELECT * FROM api_keys")
        .fetch_all(&mut as_app)
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "42501");
    // A service key is not an auditor.
    let (_, service) = phi_gateway::apikeys::create(&operator, &ring, "cms", Role::Service, None)
        .await
        .unwrap();
    assert_eq!(export(service.to_string()).await.unwrap().status(), 403);
    // ...nor a patient: it owns no submission (whose would it be?).
    let res = app
        .client
        .post(app.url("/api/symptom-submissions"))
        .header("authorization", format!("services API-Key {}", service.as_str()))
        .json(&serde_json::json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let owned: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(owned, 0);
    // Wrong, revoked and expired keys are 401s.
    assert_eq!(export("phk_nope".into()).await.unwrap().status(), 401);
    assert!(phi_gateway::apikeys::revoke(&operator, id).await.unwrap());
    assert_eq!(export(secret.to_string()).await.unwrap().status(), 401);
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(500);
    let (_, short) =
        phi_gateway::apikeys::create(&operator, &ring, "short", Role::Auditor, Some(soon))
            .await
            .unwrap();
    assert_eq!(export(short.to_string()).await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(export(short.to_string()).await.unwrap().status(), 401);
    // The audit log names the key.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'EXPORT' AND entity_id = 'export' AND api_key_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_the_ui_is_served() {
    let app = spawn_app().await;
    let res = app.get("/api/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc = json(res).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // The operations listener's routes are not the API's.
    assert!(!paths.contains_key("/metrics"));
    for (path, methods) in [
        ("/api/practitioners", &["get", "post"][..]),
        ("/api/practitioners/{id}", &["get", "patch", "delete"]),
        ("/api/practitioners/near", &["get"]),
        ("/api/herbs", &["get", "post"]),
        ("/api/herbs/{id}", &["get", "patch", "delete"]),
        ("/api/symptom-submissions", &["get", "post"]),
        ("/api/symptom-submissions/{id}", &["get", "patch", "delete"]),
        ("/api/consents", &["get", "post"]),
        ("/api/consents/{id}", &["delete"]),
        ("/api/audit/export", &["get"]),
        ("/health", &["get"]),
        ("/health/database", &["get"]),
        ("/health/audit", &["get"]),
    ] {
        let p = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for m in methods {
            assert!(p.get(*m).is_some(), "{m} {path} missing");
        }
    }
    // Error responses are documented in Payload's shape.
    let post = &paths["/api/symptom-submissions"]["post"]["responses"];
    for status in ["201", "400", "401", "413", "415"] {
        assert!(
            post.get(status).is_some(),
            "POST submissions lacks {status}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "PractitionerDoc",
        "HerbDoc",
        "SubmissionDoc",
        "SubmissionFields",
        "TcmProperties",
        "Taste",
        "Meridian",
        "ErrorBody",
        "ConsentInput",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert_eq!(schemas["Taste"]["enum"].as_array().unwrap().len(), 7);
    assert_eq!(schemas["Meridian"]["enum"].as_array().unwrap().len(), 12);
    // The vendored Swagger UI.
    let res = app.get("/api/docs/").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text().await.unwrap().contains("swagger"),
        "not the Swagger UI page"
    );
}
