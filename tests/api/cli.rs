//! The operator commands, run as the real binary against a test database.

use std::process::Command;

use serde_json::json;
use sqlx::Connection;

use crate::helpers::{TestDb, json, signing, start_server, test_settings};

pub fn cli(db: &TestDb, keyring: &str, args: &[&str]) -> (bool, String) {
    cli_in(db, keyring, "development", args)
}

fn cli_in(db: &TestDb, keyring: &str, environment: &str, args: &[&str]) -> (bool, String) {
    cli_env(db, keyring, environment, args, &[])
}

/// The command with more environment (after the tests' own).
pub fn cli_env(
    db: &TestDb,
    keyring: &str,
    environment: &str,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phi-gateway"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.app_url())
        .env("MIGRATION_DATABASE_URL", db.admin_url())
        .env("PHI_KEYRING", keyring)
        .env("PHI_CONFIG", "/dev/null")
        .env("PHI_ENVIRONMENT", environment)
        .env("PHI_AUDIT_SIGNING_KEY", &signing().private)
        .env("PHI_AUDIT_VERIFY_KEY", &signing().public)
        .env("PAYLOAD_SECRET", "cli-test-secret")
        .env("RUST_LOG", "warn")
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = crate::helpers::output_text(&out);
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
    let client = crate::helpers::http_client();
    let app = crate::helpers::TestApp::at(&address, &client);
    for i in 0..5 {
        let body = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": format!("n{i}")});
        assert_eq!(
            app.caller(Some(("ann", &[])))
                .post("/api/symptom-submissions", &body)
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
            .caller(Some(("ann", &[])))
            .get("/api/symptom-submissions")
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
    let public = signing().public.to_str().unwrap();
    let (ok, out) = cli(
        &db,
        ring_s,
        &["audit", "verify-export", export_s, "--public-key", public],
    );
    assert!(ok && out.starts_with("ok: "), "{out}");
    // An auditor is handed the public key, never the keyring: a keyring (or
    // the private signing key) is not accepted as one.
    let (ok, out) = cli(
        &db,
        ring_s,
        &["audit", "verify-export", export_s, "--public-key", ring_s],
    );
    assert!(!ok && out.contains("public key"), "{out}");
    // CSV: the manifest beside the file.
    let csv = dir.join("audit.csv");
    let csv_s = csv.to_str().unwrap();
    let (ok, out) = cli(
        &db,
        ring_s,
        &["audit", "export", "--format", "csv", "--out", csv_s],
    );
    assert!(ok && out.contains("manifest written"), "{out}");
    let (ok, out) = cli(
        &db,
        ring_s,
        &["audit", "verify-export", csv_s, "--public-key", public],
    );
    assert!(ok && out.starts_with("ok: "), "{out}");
    // The re-encryption itself is in the log, as KEY_ROTATION entries.
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(
        text.contains("key-rotation"),
        "no KEY_ROTATION entries exported"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn destructive_operator_paths_are_guarded() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-cli-{}", uuid::Uuid::new_v4().simple()));
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    assert!(cli(&db, ring_s, &["keys", "generate", "--out", ring_s]).0);

    // A revert below the audit migration destroys the audit log: refused in
    // production, and elsewhere until the operator names what goes.
    let (ok, out) = cli_in(&db, ring_s, "production", &["migrate", "--revert-to", "3"]);
    assert!(!ok && out.contains("refused in production"), "{out}");
    let (ok, out) = cli(&db, ring_s, &["migrate", "--revert-to", "1"]);
    assert!(!ok && out.contains("--destroy audit-log,consents"), "{out}");
    let (ok, out) = cli(
        &db,
        ring_s,
        &["migrate", "--revert-to", "3", "--destroy", "consents"],
    );
    assert!(!ok && out.contains("destroys audit-log"), "{out}");
    let mut admin = sqlx::PgConnection::connect(&db.admin_url()).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(version >= 9, "nothing was reverted");

    // API keys are hashed under the index key: retiring it would lock out
    // every machine, so it is refused while a key needs it.
    let (ok, out) = cli(
        &db,
        ring_s,
        &[
            "apikeys",
            "create",
            "--role",
            "auditor",
            "--name",
            "auditor-1",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "rotate", "--index"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, ring_s, &["keys", "retire", "--index", "1"]);
    assert!(!ok && out.contains("API-key hashes"), "{out}");
    // Creating and revoking keys is in the audit log.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_keys")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let (ok, out) = cli(&db, ring_s, &["apikeys", "revoke", &id.to_string()]);
    assert!(ok, "{out}");
    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT action::text, actor_user FROM audit.log WHERE entity_type = 'api_keys' ORDER BY seq",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        logged,
        vec![
            ("CREATE".to_string(), "operator:apikeys".to_string()),
            ("UPDATE".to_string(), "operator:apikeys".to_string())
        ]
    );

    // dev-token is for development only, whatever the setting's case.
    for env in ["production", "PRODUCTION", "Prod", ""] {
        let (ok, out) = cli_in(&db, ring_s, env, &["dev-token", "--user", "x"]);
        assert!(!ok && out.contains("development only"), "{env:?}: {out}");
    }
    let (ok, out) = cli_in(&db, ring_s, "Development", &["dev-token", "--user", "x"]);
    assert!(ok && out.matches('.').count() == 2, "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `audit verify` with nothing signed to hold the chain against (no
/// checkpoint, no anchor) proves only that the chain is a chain: it fails
/// in production and warns elsewhere (issue 20).
#[tokio::test]
async fn verify_without_a_checkpoint_or_an_anchor_is_not_an_ok() {
    let db = TestDb::migrated().await;
    // No sealer in the gateway: entries are written, nothing is signed.
    let address = start_server(test_settings(
        &db.app_url(),
        &[("AUDIT_SEALER_DATABASE_URL", "")],
    ))
    .await;
    let client = crate::helpers::http_client();
    let app = crate::helpers::TestApp::at(&address, &client);
    let body = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]});
    assert_eq!(
        app.caller(Some(("ann", &[])))
            .post("/api/symptom-submissions", &body)
            .await
            .status(),
        201
    );
    let ring = "/nonexistent/keyring.json";
    // Production wants the anchor named, or its absence said out loud.
    let (ok, out) = cli_in(&db, ring, "production", &["audit", "verify"]);
    assert!(
        !ok && out.contains("no anchor:") && out.contains("--no-anchor"),
        "{out}"
    );
    let (ok, out) = cli_in(&db, ring, "production", &["audit", "verify", "--no-anchor"]);
    assert!(
        !ok && out.contains("no signed checkpoint and no anchor"),
        "{out}"
    );
    let (ok, out) = cli(&db, ring, &["audit", "verify"]);
    assert!(
        ok && out.contains("WARNING") && out.contains("ok: "),
        "{out}"
    );
    // Once a checkpoint is signed, production's verify is an ok.
    let (ok, out) = cli_in(&db, ring, "production", &["audit", "seal"]);
    assert!(ok, "{out}");
    let (ok, out) = cli_in(&db, ring, "production", &["audit", "verify", "--no-anchor"]);
    assert!(
        ok && out.starts_with("ok: ") && !out.contains("WARNING"),
        "{out}"
    );
}

/// compose.yaml seeds the demo records for its Payload users' numeric ids
/// (`seed --demo --demo-patient 3 --demo-practitioner 2`): the patient
/// owns the submissions and the consent, the practitioner is linked.
#[tokio::test]
async fn the_demo_seed_belongs_to_the_users_it_is_told() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("phi-seed-{}", uuid::Uuid::new_v4().simple()));
    let ring = dir.join("keyring.json");
    let ring_s = ring.to_str().unwrap();
    let (ok, out) = cli(&db, ring_s, &["keys", "generate", "--out", ring_s]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&db, ring_s, &["seed", "--demo-patient", "3"]);
    assert!(!ok && out.contains("--demo"), "only with --demo: {out}");
    let (ok, out) = cli(
        &db,
        ring_s,
        &[
            "seed",
            "--demo",
            "--demo-patient",
            "3",
            "--demo-practitioner",
            "2",
        ],
    );
    assert!(ok && out.contains("1 consent"), "{out}");
    let mut admin = sqlx::PgConnection::connect(&db.admin_url()).await.unwrap();
    let (consent_owner, linked): (String, String) = sqlx::query_as(
        "SELECT c.owner_id, p.user_id FROM consents c JOIN practitioners p ON p.id = c.practitioner_id",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        (consent_owner.as_str(), linked.as_str()),
        ("users:3", "users:2")
    );
    let owned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM symptom_submissions WHERE owner_id = 'users:3'")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(owned, 2);
    std::fs::remove_dir_all(dir).unwrap();
}
