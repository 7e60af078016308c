//! The restore drill, in the suite: pgBackRest (Debian's package) archives a
//! cluster of the test's own, a full backup is taken, more is written, and
//! a point-in-time restore into a new cluster brings back exactly what was
//! committed before the point, with every index, a chain that verifies, and
//! a gateway that serves from it with the keyring kept apart.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::cluster::{OwnCluster, script};
use crate::helpers::{
    PAYLOAD_SECRET, TestApp, http_client, json, signing, start_server, test_settings,
};

/// The real binary against a cluster's `phi` database.
fn cli(c: &OwnCluster, ring: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_phi-gateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", c.app("phi"))
        .env("MIGRATION_DATABASE_URL", c.admin("phi"))
        .env("AUDIT_SEALER_DATABASE_URL", c.sealer("phi"))
        .env("PHI_KEYRING", ring)
        .env("PHI_CONFIG", "/dev/null")
        .env("PHI_ENVIRONMENT", "development")
        .env("DATABASE_TLS_MODE", "disable")
        .env("PHI_AUDIT_SIGNING_KEY", &signing().private)
        .env("PHI_AUDIT_VERIFY_KEY", &signing().public)
        .env("PAYLOAD_SECRET", PAYLOAD_SECRET)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = crate::helpers::output_text(&out);
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

async fn psql(url: &str, sql: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar::<_, String>(sql)
        .fetch_all(&mut c)
        .await
        .unwrap()
}

const INDEXES: &str = "SELECT schemaname || '.' || indexname FROM pg_indexes \
     WHERE schemaname IN ('public', 'audit', 'analytics') ORDER BY 1";

#[tokio::test]
async fn a_point_in_time_restore_brings_back_exactly_what_was_committed_before_the_point() {
    let base = std::env::temp_dir().join(format!("phi-drill-{}", uuid::Uuid::new_v4().simple()));
    let src = OwnCluster::start(&base.join("primary"), true);
    let dst = OwnCluster::at(&base.join("restored"), true);
    script("pgbackrest.sh", &["setup", src.dir_str()], true);
    psql(&src.admin("postgres"), "CREATE DATABASE phi").await;
    // The keyring lives apart from the cluster and its backups.
    let keys = base.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let ring = keys.join("keyring.json");
    cli(
        &src,
        &ring,
        &["keys", "generate", "--out", ring.to_str().unwrap()],
    );
    cli(&src, &ring, &["migrate"]);
    script("pgbackrest.sh", &["backup", src.dir_str(), "full"], true);

    let ring_s = ring.to_str().unwrap();
    let sealer = src.sealer("phi");
    let settings = [
        ("PHI_KEYRING", ring_s),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
        ("AUDIT_SEALER_DATABASE_URL", sealer.as_str()),
    ];
    let address = start_server(test_settings(&src.app("phi"), &settings)).await;
    let client = http_client();
    let app = TestApp::at(&address, &client);
    let patient = Some(("pat", &[][..]));
    let body = |n: &str| json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": n});
    let mut before = Vec::new();
    for i in 0..5 {
        let res = app
            .caller(patient)
            .post("/api/symptom-submissions", &body(&format!("before {i}")))
            .await;
        assert_eq!(res.status(), 201);
        before.push(json(res).await["doc"]["id"].as_str().unwrap().to_string());
    }
    let res = app
        .caller(Some(("adm", &["admin"][..])))
        .post(
            "/api/practitioners",
            &json!({"name": "Dr Drill", "slug": "dr-drill", "status": "published",
                    "location": {"lat": 51.5, "lon": -0.12}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    // The point, then more writes that the restore must not bring back.
    psql(
        &src.admin("phi"),
        "SELECT pg_create_restore_point('drill')::text",
    )
    .await;
    let mut after = Vec::new();
    for i in 0..3 {
        let res = app
            .caller(patient)
            .post("/api/symptom-submissions", &body(&format!("after {i}")))
            .await;
        assert_eq!(res.status(), 201);
        after.push(json(res).await["doc"]["id"].as_str().unwrap().to_string());
    }
    psql(&src.admin("phi"), "SELECT pg_switch_wal()::text").await;

    script(
        "pgbackrest.sh",
        &["restore", src.dir_str(), dst.dir_str(), "--name", "drill"],
        true,
    );

    // Exactly the rows committed before the point.
    let mut restored = psql(
        &dst.admin("phi"),
        "SELECT id::text FROM symptom_submissions ORDER BY 1",
    )
    .await;
    restored.sort();
    let mut want = before.clone();
    want.sort();
    assert_eq!(restored, want);
    // Every index, the proximity index among them.
    let indexes = psql(&dst.admin("phi"), INDEXES).await;
    assert_eq!(indexes, psql(&src.admin("phi"), INDEXES).await);
    assert!(
        indexes.contains(&"public.practitioners_earth".to_string()),
        "{indexes:?}"
    );
    // The chain as far as it goes verifies, from position 1.
    cli(&dst, &ring, &["audit", "seal"]);
    let verified = cli(&dst, &ring, &["audit", "verify"]);
    assert!(verified.contains("ok"), "{verified}");

    // A gateway serves from it, with the keyring kept apart.
    let settings = [
        ("PHI_KEYRING", ring_s),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
    ];
    let address = start_server(test_settings(&dst.app("phi"), &settings)).await;
    let app = TestApp::at(&address, &client);
    let doc = json(
        app.caller(patient)
            .get(&format!("/api/symptom-submissions/{}", before[0]))
            .await,
    )
    .await;
    assert_eq!(doc["notes"], "before 0");
    assert_eq!(
        app.caller(patient)
            .get(&format!("/api/symptom-submissions/{}", after[0]))
            .await
            .status(),
        404
    );
    let near = json(
        app.caller(None)
            .get("/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=5")
            .await,
    )
    .await;
    assert_eq!(near["docs"][0]["name"], "Dr Drill");
    drop(src);
    drop(dst);
    std::fs::remove_dir_all(base).ok();
}
