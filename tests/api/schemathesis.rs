//! The OpenAPI document against the running gateway: schemathesis (PyPI,
//! installed by deploy/test.sh) generates requests from it, as an editor, as
//! a patient and without credentials, and fails on any 5xx, any status the
//! document does not list, and any answer that does not match its schema.
//! `positive_data_acceptance` (a request the schema allows is accepted)
//! runs where it can hold (tests/schemathesis/schemathesis.toml says where,
//! and why not elsewhere).
//!
//! A stateful run as a patient then builds on documents that exist: it
//! creates submissions and follows the document's links to read, change
//! and delete them as their owner (with bodies narrowed to values the API
//! certainly accepts, tests/schemathesis/owner_hooks.py); the audit log
//! shows that those writes met real documents.

use std::process::Command;

use crate::helpers::{bearer, spawn_app};

#[tokio::test]
async fn generated_requests_get_documented_answers_that_match_their_schemas() {
    let python = std::env::var("PHI_TEST_PYTHON")
        .expect("PHI_TEST_PYTHON (deploy/test.sh installs schemathesis into .local/venv)");
    let st = std::path::Path::new(&python)
        .parent()
        .expect("the venv's bin folder")
        .join("schemathesis");
    let app = spawn_app().await;
    let schema = format!("{}/api/openapi.json", app.address);
    let work = std::env::temp_dir().join(format!("phi-st-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let config = here.join("schemathesis.toml");
    for (who, auth) in [
        ("an editor", Some(bearer("ed", &["editor"]))),
        ("a patient", Some(bearer("pat", &[]))),
        ("no credentials", None),
    ] {
        let mut cmd = Command::new(&st);
        cmd.current_dir(&work)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &schema])
            .args(["--max-examples", "25", "--seed", "1", "--workers", "1"])
            .args(["--no-color", "--request-timeout", "10"])
            // A logout ends the run's own credential: every later request
            // would be a 401 (tests/api/logout.rs covers it).
            .args(["--exclude-operation-id", "logout"])
            // The health checks answer 503 whenever the database does not
            // answer them within 5 s: their documented purpose, which a
            // loaded test machine triggers and schemathesis counts as a
            // server error whatever the document says (one CI run saw it on
            // /health/audit). tests/api/health.rs covers them.
            .args(["--exclude-path-regex", "^/health"]);
        if let Some(a) = &auth {
            cmd.args(["-H", &format!("Authorization: {a}")]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("schemathesis runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {who} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("passed"), "as {who}: {text}");
    }

    // The stateful run as the documents' owner.
    let mut cmd = Command::new(&st);
    cmd.current_dir(&work)
        .env("SCHEMATHESIS_HOOKS", "owner_hooks")
        .env("PYTHONPATH", &here)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &schema, "--phases", "stateful"])
        .args([
            "--include-path-regex",
            r"^/api/symptom-submissions(/\{id\})?$",
        ])
        .args(["--max-examples", "25", "--seed", "1", "--workers", "1"])
        .args(["--no-color", "--request-timeout", "10"])
        .args(["-H", &format!("Authorization: {}", bearer("owner", &[]))]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis's stateful run as the owner failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the owner's requests did to documents that existed, by the
    // audit log: created, then read, changed and deleted through the links.
    let pool = app.db.admin_pool().await;
    let done: Vec<(String, i64)> = sqlx::query_as(
        "SELECT action::text, count(DISTINCT entity_id) FROM audit.log \
         WHERE actor_user = 'users:owner' AND outcome = 'success' \
           AND entity_type = 'symptom_submissions' AND entity_id IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for action in ["CREATE", "READ", "UPDATE", "DELETE"] {
        assert!(
            done.iter().any(|(a, n)| a == action && *n > 0),
            "the stateful run never did {action} on a document that existed: {done:?}\n{text}"
        );
    }
    std::fs::remove_dir_all(work).ok();
}
