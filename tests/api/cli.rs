//! The operator commands, run as the real binary against a test database.

use std::process::Command;

use serde_json::json;

use crate::helpers::{TestDb, json, start_server, test_settings};

fn cli(db: &TestDb, keyring: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phi-gateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.app_url())
        .env("MIGRATION_DATABASE_URL", db.admin_url())
        .env("PHI_KEYRING", keyring)
        .env("PHI_CONFIG", "/dev/null")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn keys_reencrypt_and_audit_commands_work_end_to_end() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-cli-{}", uuid::Uuid::new_v4().simple()));
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();

    let (ok, out) = cli(&db, ring_s, &["keys", "generate", "--out", ring_s]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "generate", "--out", ring_s]);
    assert!(!ok && out.contains("refusing to overwrite"), "{out}");

    let extra = [
        ("PHI_KEYRING", ring_s),
        ("DATABASE_ENCRYPTION_KEY", ""),
        ("DATABASE_BLIND_INDEX_KEY", ""),
    ];
    let address = start_server(test_settings(&db.app_url(), &extra)).await;
    let client = reqwest::Client::new();
    let app = crate::helpers::TestApp::at(&address, &client);
    for i in 0..5 {
        let body = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": format!("n{i}")});
        assert_eq!(
            app.post_json("/api/symptom-submissions", Some(("ann", &[])), &body)
                .await
                .status(),
            201
        );
    }

    let (ok, out) = cli(&db, ring_s, &["keys", "rotate"]);
    assert!(ok && out.contains("data key 2 is now active"), "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "status"]);
    assert!(ok, "{out}");
    assert!(out.contains("v1    DecryptOnly   10 values"), "{out}");
    assert!(out.contains("v2    Active        0 values"), "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "retire", "1"]);
    assert!(
        !ok && out.contains("10 values still use version 1"),
        "{out}"
    );

    let (ok, out) = cli(&db, ring_s, &["reencrypt", "--dry-run"]);
    assert!(ok && out.contains("would re-seal 5"), "{out}");
    let (ok, out) = cli(&db, ring_s, &["reencrypt"]);
    assert!(ok && out.contains("re-sealed 5"), "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "status"]);
    assert!(
        ok && out.contains("v1    DecryptOnly   0 values")
            && out.contains("v2    Active        10 values"),
        "{out}"
    );
    let (ok, out) = cli(&db, ring_s, &["keys", "retire", "1"]);
    assert!(ok, "{out}");

    // Reads through a gateway holding the new keyring still work.
    let fresh = start_server(test_settings(&db.app_url(), &extra)).await;
    let list = json(
        crate::helpers::TestApp::at(&fresh, &client)
            .get_as("/api/symptom-submissions", Some(("ann", &[])))
            .await,
    )
    .await;
    assert_eq!(list["totalDocs"], 5);

    let (ok, out) = cli(&db, ring_s, &["audit", "verify"]);
    assert!(ok && out.starts_with("ok: "), "{out}");
    let export = dir.join("audit.fhir.ndjson");
    let export_s = export.to_str().unwrap();
    let (ok, out) = cli(
        &db,
        ring_s,
        &["audit", "export", "--format", "fhir", "--out", export_s],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, ring_s, &["audit", "verify-export", export_s]);
    assert!(ok && out.starts_with("ok: "), "{out}");
    // The re-encryption itself is in the log, as KEY_ROTATION entries.
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(
        text.contains("key-rotation"),
        "no KEY_ROTATION entries exported"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
