use phi_gateway::audit::{chain, export};
use phi_gateway::crypto::Keyring;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Executor, PgPool};

use crate::helpers::{TEST_DATA_KEY, TEST_INDEX_KEY, TestApp, json, spawn_app};

const ANN: Option<(&str, &[&str])> = Some(("ann", &[]));
const BOB: Option<(&str, &[&str])> = Some(("bob", &[]));
const AUDITOR: Option<(&str, &[&str])> = Some(("aud", &["auditor"]));

fn keyring() -> Keyring {
    Keyring::from_single_keys(
        &SecretString::from(TEST_DATA_KEY),
        &SecretString::from(TEST_INDEX_KEY),
    )
    .unwrap()
}

fn body(notes: &str) -> Value {
    json!({"symptoms": [{"name": "Dizziness", "severity": 4, "onset": "2026-03-01"}], "notes": notes,
           "contactEmail": "ann@example.org"})
}

async fn entries(
    pool: &PgPool,
) -> Vec<(
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Vec<String>,
    Option<String>,
)> {
    sqlx::query_as(
        "SELECT action::text, entity_type, entity_id, actor_user, outcome, fields, request_id FROM audit.log ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn create(app: &TestApp, notes: &str) -> String {
    let res = app
        .req(reqwest::Method::POST, "/api/symptom-submissions", ANN)
        .header("x-request-id", "req-create-1")
        .json(&body(notes))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    json(res).await["doc"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_access_to_phi_is_recorded_without_values() {
    let app = spawn_app().await;
    let id = create(&app, "CANARY-AUDIT-NOTE").await;
    let path = format!("/api/symptom-submissions/{id}");
    assert_eq!(app.get_as(&path, ANN).await.status(), 200);
    assert_eq!(
        app.get_as("/api/symptom-submissions", ANN).await.status(),
        200
    );
    assert_eq!(
        app.patch_json(&path, ANN, &json!({"notes": "x", "status": "reviewed"}))
            .await
            .status(),
        200
    );
    assert_eq!(app.get_as(&path, BOB).await.status(), 404);
    assert_eq!(app.get_as(&path, None).await.status(), 401);
    let res = app
        .req(reqwest::Method::GET, &path, Some(("root", &["admin"])))
        .header("x-break-glass-reason", "ER admission 22:10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.delete_as(&path, ANN).await.status(), 200);

    let pool = app.db.admin_pool().await;
    let got = entries(&pool).await;
    let summary: Vec<(&str, Option<&str>, &str)> = got
        .iter()
        .map(|e| (e.0.as_str(), e.3.as_deref(), e.4.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("CREATE", Some("ann"), "success"),
            ("READ", Some("ann"), "success"),
            ("READ", Some("ann"), "success"),
            ("UPDATE", Some("ann"), "success"),
            ("ACCESS_DENIED", Some("bob"), "denied"),
            ("ACCESS_DENIED", None, "denied"),
            ("READ", Some("root"), "success"),
            ("BREAK_GLASS", Some("root"), "success"),
            ("DELETE", Some("ann"), "success"),
        ]
    );
    assert!(
        got.iter()
            .all(|e| e.1 == "symptom_submissions" && e.2.as_deref() == Some(id.as_str()))
    );
    assert_eq!(got[0].5, vec!["symptoms", "notes", "contactEmail"]);
    assert_eq!(got[0].6.as_deref(), Some("req-create-1"));
    assert_eq!(got[3].5, vec!["notes", "status"]);
    let reason: Option<String> =
        sqlx::query_scalar("SELECT reason FROM audit.log WHERE action = 'BREAK_GLASS'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("ER admission 22:10"));
    // No value anywhere in the audit schema.
    let dump: String = sqlx::query_scalar("SELECT string_agg(l::text, '|') FROM audit.log l")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !dump.contains("CANARY") && !dump.contains("ann@example.org"),
        "{dump}"
    );
}

#[tokio::test]
async fn a_failed_audit_write_fails_the_request_and_writes_nothing() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    admin
        .execute("REVOKE INSERT ON audit.log FROM phi_app")
        .await
        .unwrap();
    let res = app
        .post_json("/api/symptom-submissions", ANN, &body("n"))
        .await;
    assert_eq!(res.status(), 500);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["message"], "Something went wrong.");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 0, "the access was rolled back with its audit entry");
}

#[tokio::test]
async fn the_log_is_append_only_for_everyone() {
    let app = spawn_app().await;
    create(&app, "n").await;
    let mut as_app = app.db.app_conn().await;
    for sql in [
        "UPDATE audit.log SET outcome = 'x'",
        "DELETE FROM audit.log",
        "TRUNCATE audit.log",
    ] {
        let err = as_app.execute(sql).await.unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().unwrap(),
            "42501",
            "{sql}"
        );
    }
    // Only the defined actions can be written (the column is an enum).
    let err = as_app
        .execute(
            "INSERT INTO audit.log (action, entity_type, outcome) VALUES ('ERASE', 'symptom_submissions', 'success')",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().unwrap(),
        "22P02",
        "{err}"
    );
    // Even the owner (here a superuser) meets the triggers; row triggers
    // need rows, so seal and sign first.
    chain::checkpoint(&app.db.admin_pool().await, &keyring())
        .await
        .unwrap()
        .expect("a head");
    let mut admin = app.admin().await;
    let partition: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit.log LIMIT 1")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    for sql in [
        "UPDATE audit.log SET outcome = 'x'".to_string(),
        "DELETE FROM audit.log".to_string(),
        "TRUNCATE audit.log".to_string(),
        format!("TRUNCATE {partition}"),
        "UPDATE audit.chain SET hash = '\\x00'".to_string(),
        "DELETE FROM audit.checkpoints".to_string(),
    ] {
        let err = admin.execute(sql.as_str()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

async fn sealed_app(n: usize) -> (TestApp, PgPool) {
    let app = spawn_app().await;
    for i in 0..n {
        create(&app, &format!("n{i}")).await;
    }
    let pool = app.db.admin_pool().await;
    chain::checkpoint(&pool, &keyring())
        .await
        .unwrap()
        .expect("a head");
    let v = chain::verify(&pool, &keyring(), None, None).await.unwrap();
    assert_eq!(v.first_problem, None);
    assert_eq!(v.entries_checked, n as u64);
    (app, pool)
}

async fn tamper(pool: &PgPool, sql: &str) {
    let mut conn = pool.acquire().await.unwrap();
    conn.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    conn.execute(sql).await.unwrap();
    conn.execute("SET session_replication_role = origin")
        .await
        .unwrap();
}

async fn first_problem(pool: &PgPool) -> String {
    let v = chain::verify(pool, &keyring(), None, None).await.unwrap();
    v.first_problem.expect("tampering went unnoticed")
}

#[tokio::test]
async fn a_changed_field_is_detected_and_located() {
    let (_app, pool) = sealed_app(5).await;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM audit.log ORDER BY seq OFFSET 2 LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(
        &pool,
        &format!("UPDATE audit.log SET actor_user = 'mallory' WHERE seq = {seq}"),
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains(&format!("entry seq {seq} was altered")), "{p}");
}

#[tokio::test]
async fn a_deleted_entry_is_detected_and_located() {
    let (_app, pool) = sealed_app(5).await;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM audit.log ORDER BY seq OFFSET 1 LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(&pool, &format!("DELETE FROM audit.log WHERE seq = {seq}")).await;
    let p = first_problem(&pool).await;
    assert!(p.contains(&format!("entry seq {seq} was deleted")), "{p}");
}

#[tokio::test]
async fn a_forged_entry_is_detected_and_located() {
    let (_app, pool) = sealed_app(3).await;
    // Slipped in below the sealer's horizon: never chained.
    tamper(
        &pool,
        "INSERT INTO audit.log (seq, at, actor_user, action, entity_type, entity_id, outcome, txid) \
         VALUES (999999, now() - interval '2 days', 'nobody', 'READ', 'symptom_submissions', 'x', 'success', 1)",
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(
        p.contains("entry seq 999999") && p.contains("not in the chain"),
        "{p}"
    );

    // Inserted as a new entry, it is sealed, but its date gives it away.
    sqlx::query(
        "INSERT INTO audit.log (at, actor_user, action, entity_type, entity_id, outcome) \
         VALUES (now() - interval '3 days', 'nobody', 'READ', 'symptom_submissions', 'y', 'success')",
    )
    .execute(&pool)
    .await
    .unwrap();
    chain::seal_all(&pool).await.unwrap();
    let v = chain::verify(&pool, &keyring(), None, None).await.unwrap();
    assert_eq!(v.problems, 2, "{v:?}");
}

#[tokio::test]
async fn swapped_entries_are_detected_and_located() {
    let (_app, pool) = sealed_app(4).await;
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit.log ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let (a, b) = (seqs[1], seqs[2]);
    // Swap the two entries' contents (keeping each row's seq).
    tamper(
        &pool,
        &format!(
            "WITH x AS (SELECT seq, action, entity_id, request_id, fields FROM audit.log WHERE seq IN ({a}, {b})) \
             UPDATE audit.log l SET action = o.action, entity_id = o.entity_id, request_id = o.request_id, fields = o.fields \
             FROM x o WHERE l.seq IN ({a}, {b}) AND o.seq <> l.seq"
        ),
    )
    .await;
    // Make the swap visible whatever the two held: also swap their times.
    tamper(
        &pool,
        &format!(
            "WITH x AS (SELECT seq, at FROM audit.log WHERE seq IN ({a}, {b})) \
             UPDATE audit.log l SET request_id = coalesce(l.request_id, '') || '~' FROM x o WHERE l.seq = o.seq"
        ),
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains(&format!("entry seq {a} was altered")), "{p}");
}

#[tokio::test]
async fn a_forged_checkpoint_is_detected() {
    let (_app, pool) = sealed_app(2).await;
    tamper(
        &pool,
        "UPDATE audit.checkpoints SET signature = sha256(signature)",
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains("bad signature"), "{p}");
}

#[tokio::test]
async fn auditors_export_in_three_formats_that_verify_offline() {
    let app = spawn_app().await;
    for i in 0..7 {
        create(&app, &format!("n{i}")).await;
    }
    assert_eq!(app.get_as("/api/audit/export", ANN).await.status(), 403);
    assert_eq!(app.get_as("/api/audit/export", None).await.status(), 401);
    assert_eq!(
        app.get_as("/api/audit/export?format=xml", AUDITOR)
            .await
            .status(),
        400
    );
    for format in ["ndjson", "csv", "fhir"] {
        let res = app
            .get_as(
                &format!("/api/audit/export?format={format}&from=2020-01-01"),
                AUDITOR,
            )
            .await;
        assert_eq!(res.status(), 200, "{format}");
        let text = res.text().await.unwrap();
        let m =
            export::verify_file(&text, &keyring()).unwrap_or_else(|e| panic!("{format}: {e:#}"));
        assert!(m.rows >= 7, "{format}: {m:?}");
        assert!(m.checkpoint.is_some());
        if format == "fhir" {
            let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(first["resourceType"], "AuditEvent");
            assert_eq!(first["action"], "C");
            assert_eq!(first["outcome"], "0");
            assert_eq!(first["subtype"][0]["code"], "create");
            assert_eq!(first["agent"][0]["who"]["identifier"]["value"], "ann");
            assert_eq!(first["source"]["observer"]["display"], "phi-gateway");
            assert!(first["entity"][0]["what"]["identifier"]["value"].is_string());
        }
        // One changed character anywhere in an entry is caught.
        let tampered = text
            .replacen("\"ann\"", "\"eve\"", 1)
            .replacen(",ann,", ",eve,", 1);
        assert!(
            export::verify_file(&tampered, &keyring()).is_err(),
            "{format}: tampering not caught"
        );
        // A truncated export has no manifest.
        let cut: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(export::verify_file(&cut, &keyring()).is_err());
    }
    // Each export is itself an entry.
    let pool = app.db.admin_pool().await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'EXPORT' AND actor_user = 'aud'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 3);
    let denied: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'ACCESS_DENIED' AND entity_type = 'audit_log'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(denied, 1);
    // The background sealer keeps the chain whole under all this.
    chain::seal_all(&pool).await.unwrap();
    let v = chain::verify(&pool, &keyring(), None, None).await.unwrap();
    assert_eq!(v.first_problem, None);
}
