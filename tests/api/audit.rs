//! The audit log: what is recorded, that nobody (the service's role above
//! all) can cut, forge or stop it, and that exports verify with the public
//! key alone.

use std::sync::Arc;

use phi_gateway::audit::anchor::Anchor;
use phi_gateway::audit::chain::{self, VerifyKeys};
use phi_gateway::audit::export;
use phi_gateway::audit::sealer::{self, Sealer};
use phi_gateway::audit::verify;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgPool};

use crate::helpers::{TestApp, json, signing_keys, spawn_app, spawn_app_with, verifying_keys};

const ANN: Option<(&str, &[&str])> = Some(("ann", &[]));
const BOB: Option<(&str, &[&str])> = Some(("bob", &[]));
const AUDITOR: Option<(&str, &[&str])> = Some(("aud", &["auditor"]));

fn body(notes: &str) -> Value {
    json!({"symptoms": [{"name": "Dizziness", "severity": 4, "onset": "2026-03-01"}], "notes": notes,
           "contactEmail": "ann@example.org"})
}

type EntryRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Vec<String>,
    Option<String>,
    Option<String>,
);

async fn entries(pool: &PgPool) -> Vec<EntryRow> {
    sqlx::query_as(
        "SELECT action::text, entity_type, entity_id, actor_user, outcome, fields, request_id, client_request_id \
         FROM audit.log ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn create(app: &TestApp, notes: &str) -> String {
    let res = app
        .caller(ANN)
        .req(reqwest::Method::POST, "/api/symptom-submissions")
        .header("x-request-id", "req-create-1")
        .json(&body(notes))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    json(res).await["doc"]["id"].as_str().unwrap().to_string()
}

/// A sealer over the superuser's pool (the operator's), with the tests'
/// signing key.
fn sealer(pool: &PgPool, anchor: Option<Anchor>) -> Sealer {
    Sealer {
        pool: pool.clone(),
        signing: Arc::new(signing_keys()),
        anchor,
    }
}

fn public() -> phi_gateway::audit::signing::VerifyingKeys {
    verifying_keys()
}

async fn verify(pool: &PgPool, anchor: Option<&[chain::Checkpoint]>) -> verify::Verification {
    let keys = public();
    verify::verify(
        pool,
        VerifyKeys {
            public: Some(&keys),
            keyring: None,
        },
        anchor,
        None,
        None,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn every_access_to_phi_is_recorded_without_values() {
    let app = spawn_app().await;
    let id = create(&app, "CANARY-AUDIT-NOTE").await;
    let path = format!("/api/symptom-submissions/{id}");
    assert_eq!(app.caller(ANN).get(&path).await.status(), 200);
    assert_eq!(
        app.caller(ANN)
            .get("/api/symptom-submissions")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.caller(ANN)
            .patch(&path, &json!({"notes": "x", "status": "archived"}))
            .await
            .status(),
        200
    );
    assert_eq!(app.caller(BOB).get(&path).await.status(), 404);
    // Anonymous refusals are counted per client and minute, not one row each.
    assert_eq!(app.caller(None).get(&path).await.status(), 401);
    let res = app
        .caller(Some(("root", &["admin"])))
        .req(reqwest::Method::GET, &path)
        .header("x-break-glass-reason", "ER admission 22:10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.caller(ANN).delete(&path).await.status(), 200);

    let pool = app.db.admin_pool().await;
    let got = entries(&pool).await;
    let summary: Vec<(&str, Option<&str>, &str)> = got
        .iter()
        .map(|e| (e.0.as_str(), e.3.as_deref(), e.4.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("CREATE", Some("users:ann"), "success"),
            ("READ", Some("users:ann"), "success"),
            ("LIST", Some("users:ann"), "success"),
            ("READ", Some("users:ann"), "success"),
            ("UPDATE", Some("users:ann"), "success"),
            ("READ", Some("users:ann"), "success"),
            ("ACCESS_DENIED", Some("users:bob"), "denied"),
            ("READ", Some("users:root"), "success"),
            ("BREAK_GLASS", Some("users:root"), "success"),
            ("DELETE", Some("users:ann"), "success"),
            // The delete's answer shows the document as it was.
            ("READ", Some("users:ann"), "success"),
        ]
    );
    assert!(
        got.iter().all(|e| e.1 == "symptom_submissions"
            && (e.2.as_deref() == Some(id.as_str()) || e.0 == "LIST"))
    );
    assert_eq!(got[0].5, vec!["symptoms", "notes", "contactEmail"]);
    // A READ entry names the fields the answer showed (here all of them),
    // never an empty list standing for "all".
    for e in got.iter().filter(|e| e.0 == "READ") {
        assert_eq!(e.5, phi_gateway::schema::SUBMISSIONS.document, "{e:?}");
    }
    // Our own request id, always; the client's beside it.
    assert_ne!(got[0].6.as_deref(), Some("req-create-1"));
    assert!(uuid::Uuid::parse_str(got[0].6.as_deref().unwrap()).is_ok());
    assert_eq!(got[0].7.as_deref(), Some("req-create-1"));
    assert_eq!(got[4].5, vec!["notes", "status"]);
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
    // The triggers write as the log's owner; take the owner's own right away.
    admin
        .execute("REVOKE INSERT ON audit.log FROM phi_owner")
        .await
        .unwrap();
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &body("n"))
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

/// What the service's role could do to the log before migration 0009, each
/// now refused.
#[tokio::test]
async fn the_service_role_can_only_append_through_the_database() {
    let app = spawn_app().await;
    create(&app, "n").await;
    let mut as_app = app.db.app_conn().await;
    for sql in [
        "UPDATE audit.log SET outcome = 'x'",
        "DELETE FROM audit.log",
        "TRUNCATE audit.log",
        // A row with a sealed seq used to stop the sealer for good.
        "INSERT INTO audit.log (seq, at, txid, actor_user, action, entity_type, outcome) \
         VALUES (1, now(), 1, 'mallory', 'READ', 'x', 'success')",
        "INSERT INTO audit.log (action, entity_type, outcome) VALUES ('READ', 'x', 'success')",
        "INSERT INTO audit.chain (pos, seq, txid, prev_hash, hash) VALUES (999, 999, 1, '\\x00', '\\x00')",
        "INSERT INTO audit.checkpoints (pos, hash, key_id, signature) VALUES (1, '\\x00', 1, '\\x00')",
        "UPDATE audit.sealer_state SET lo = 0",
        "SELECT audit.ensure_partitions(100000)",
        "SELECT nextval('audit.log_seq')",
    ] {
        let err = as_app.execute(sql).await.expect_err(sql);
        assert_eq!(
            err.as_database_error().unwrap().code().unwrap(),
            "42501",
            "{sql}: {err}"
        );
    }
    // What it may do: append through the function, which sets seq, time
    // and transaction id itself.
    as_app
        .execute(
            "SELECT audit.append('users:x', 'users', 'patient', NULL, 'r', NULL, NULL, \
             ARRAY['READ']::audit.action[], ARRAY['t'], ARRAY['1'], ARRAY['success'], ARRAY[NULL], ARRAY[''], ARRAY[NULL])",
        )
        .await
        .unwrap();
    // Partition creation is bounded, even for the sealer.
    let sealer = app.db.sealer_pool().await;
    let err = sqlx::query("SELECT audit.ensure_partitions(100000)")
        .execute(&sealer)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0 to 24"), "{err}");
    sqlx::query("SELECT audit.ensure_partitions(2)")
        .execute(&sealer)
        .await
        .unwrap();
    // Even the owner (here a superuser) meets the triggers; row triggers
    // need rows, so seal and sign first.
    let admin_pool = app.db.admin_pool().await;
    sealer_for(&admin_pool)
        .checkpoint()
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
    // Only the defined actions can be written (the column is an enum).
    let err = admin
        .execute(
            "INSERT INTO audit.log (action, entity_type, outcome) VALUES ('ERASE', 'symptom_submissions', 'success')",
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "22P02");
}

fn sealer_for(pool: &PgPool) -> Sealer {
    sealer(pool, None)
}

#[tokio::test]
async fn the_sealer_role_seals_and_an_unsealable_entry_is_quarantined_not_a_stop() {
    let app = spawn_app_with(&[("PHI_AUDIT_SEAL_INTERVAL_MS", "100")]).await;
    create(&app, "a").await;
    let admin = app.db.admin_pool().await;
    sealer::seal_all(&app.db.sealer_pool().await).await.unwrap();
    // A superuser slips in an entry that reuses a sealed sequence number.
    let seq: i64 = sqlx::query_scalar("SELECT min(seq) FROM audit.chain")
        .fetch_one(&admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO audit.log (seq, actor_user, action, entity_type, outcome) \
         VALUES ({seq}, 'mallory', 'READ', 'symptom_submissions', 'success')"
    ))
    .execute(&admin)
    .await
    .unwrap();
    // Sealing goes on: later entries are sealed by the background sealer.
    create(&app, "b").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (sealed, quarantined): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM audit.chain), (SELECT count(*) FROM audit.quarantine)",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if sealed >= 2 && quarantined == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sealing stopped");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // ...and the quarantine is reported: by the health route, the metric
    // and verification.
    let h = json(app.ops_get("/health/audit").await).await;
    assert_eq!(h["status"], "behind", "{h}");
    assert_eq!(h["seal"]["quarantined"], 1, "{h}");
    let public = json(app.get("/health/audit").await).await;
    assert_eq!(public, json!({"status": "behind"}));
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("phi_audit_quarantined_entries 1"),
        "{metrics}"
    );
    let v = verify(&admin, None).await;
    assert!(
        v.first_problem
            .as_deref()
            .unwrap_or("")
            .contains("quarantined"),
        "{v:?}"
    );
}

async fn sealed_app(n: usize) -> (TestApp, PgPool) {
    let app = spawn_app().await;
    for i in 0..n {
        create(&app, &format!("n{i}")).await;
    }
    let pool = app.db.admin_pool().await;
    sealer_for(&pool)
        .checkpoint()
        .await
        .unwrap()
        .expect("a head");
    let v = verify(&pool, None).await;
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
    verify(pool, None)
        .await
        .first_problem
        .expect("tampering went unnoticed")
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
    sealer::seal_all(&pool).await.unwrap();
    let v = verify(&pool, None).await;
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
    tamper(
        &pool,
        &format!(
            "WITH x AS (SELECT seq, action, entity_id, request_id, fields FROM audit.log WHERE seq IN ({a}, {b})) \
             UPDATE audit.log l SET action = o.action, entity_id = o.entity_id, request_id = o.request_id, fields = o.fields \
             FROM x o WHERE l.seq IN ({a}, {b}) AND o.seq <> l.seq"
        ),
    )
    .await;
    tamper(
        &pool,
        &format!(
            "UPDATE audit.log SET request_id = coalesce(request_id, '') || '~' WHERE seq IN ({a}, {b})"
        ),
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains(&format!("entry seq {a} was altered")), "{p}");
}

#[tokio::test]
async fn checkpoints_verify_with_the_public_key_alone_and_cannot_be_forged() {
    let (_app, pool) = sealed_app(2).await;
    tamper(
        &pool,
        "UPDATE audit.checkpoints SET signature = sha256(signature)",
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains("bad signature"), "{p}");
    // A checkpoint made with another key (say, the HMAC of the old scheme,
    // computed by whoever holds the keyring) does not pass as ours.
    tamper(&pool, "UPDATE audit.checkpoints SET alg = 'hmac-sha256'").await;
    let p = first_problem(&pool).await;
    assert!(p.contains("needs the keyring"), "{p}");
}

#[tokio::test]
async fn an_hmac_checkpoint_after_the_signed_ones_began_is_refused() {
    // Whoever holds the keyring could compute an old-scheme HMAC checkpoint
    // at any position: after the first Ed25519 one, none is taken.
    let (app, pool) = sealed_app(2).await;
    create(&app, "one more").await;
    sealer_for(&pool)
        .checkpoint()
        .await
        .unwrap()
        .expect("a head");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.checkpoints")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(n >= 2, "{n} checkpoints");
    tamper(
        &pool,
        "UPDATE audit.checkpoints SET alg = 'hmac-sha256' WHERE id = (SELECT max(id) FROM audit.checkpoints)",
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains("after the Ed25519 ones began"), "{p}");
}

/// The three cuts that verified as ok before anchoring: the head, the tail,
/// and every checkpoint plus a rewrite of the chain.
#[tokio::test]
async fn cuts_and_rewrites_of_the_chain_are_caught_with_the_anchor() {
    let dir = std::env::temp_dir().join(format!("phi-anchor-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let anchor_path = dir.join("anchor.jsonl");
    let app = spawn_app().await;
    for i in 0..6 {
        create(&app, &format!("n{i}")).await;
    }
    let pool = app.db.admin_pool().await;
    let s = sealer(&pool, Some(Anchor::new(&anchor_path)));
    s.checkpoint().await.unwrap().expect("a head");
    let anchored = Anchor::read(&anchor_path).unwrap();
    assert_eq!(anchored.len(), 1);
    assert_eq!(verify(&pool, Some(&anchored)).await.first_problem, None);

    // Two gateways, each appending to its own file in one directory (the
    // Kubernetes kit's pods): read together, by position.
    let pods = dir.join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    std::fs::copy(&anchor_path, pods.join("phi-gateway-b.jsonl")).unwrap();
    std::fs::write(pods.join("notes.txt"), "not an anchor").unwrap();
    create(&app, "n6").await;
    let other = sealer(&pool, Some(Anchor::new(pods.join("phi-gateway-a.jsonl"))));
    other.checkpoint().await.unwrap().expect("a head");
    let both = Anchor::read(&pods).unwrap();
    assert_eq!(both.len(), 2);
    assert!(both[0].pos < both[1].pos, "by position");
    assert_eq!(verify(&pool, Some(&both)).await.first_problem, None);
    assert_eq!(verify(&pool, Some(&both)).await.anchored_checked, 2);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(format!("{:#}", Anchor::read(&empty).unwrap_err()).contains("no *.jsonl file"));

    // The tail: the newest entries and their checkpoint removed from the
    // database. Without the anchor, what is left is a consistent chain.
    let head: i64 = sqlx::query_scalar("SELECT max(pos) FROM audit.chain")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(
        &pool,
        &format!(
            "DELETE FROM audit.log l USING audit.chain c WHERE l.seq = c.seq AND c.pos > {};
             DELETE FROM audit.chain WHERE pos > {}; DELETE FROM audit.checkpoints;",
            head - 2,
            head - 2
        ),
    )
    .await;
    assert_eq!(
        verify(&pool, None).await.first_problem,
        None,
        "undetectable in the database alone"
    );
    let p = verify(&pool, Some(&anchored))
        .await
        .first_problem
        .expect("the anchor catches a cut tail");
    assert!(p.contains("past the chain's end"), "{p}");

    // The head: the oldest entries removed.
    tamper(
        &pool,
        "DELETE FROM audit.log l USING audit.chain c WHERE l.seq = c.seq AND c.pos <= 2; \
         DELETE FROM audit.chain WHERE pos <= 2;",
    )
    .await;
    let p = first_problem(&pool).await;
    assert!(p.contains("starts at position 3"), "{p}");

    // Every checkpoint gone and the chain rewritten from the genesis: the
    // anchored checkpoint's hash is not the chain's.
    let app2 = spawn_app().await;
    for i in 0..3 {
        create(&app2, &format!("m{i}")).await;
    }
    let pool2 = app2.db.admin_pool().await;
    let s2 = sealer(&pool2, Some(Anchor::new(&anchor_path)));
    let c = s2.checkpoint().await.unwrap().unwrap();
    let mine: Vec<chain::Checkpoint> = vec![c.clone()];
    tamper(
        &pool2,
        "UPDATE audit.log SET actor_user = 'rewritten'; DELETE FROM audit.checkpoints; DELETE FROM audit.chain; \
         UPDATE audit.sealer_state SET lo = 0, hi = NULL, after_seq = 0;",
    )
    .await;
    sealer::seal_all(&pool2).await.unwrap();
    assert_eq!(
        verify(&pool2, None).await.first_problem,
        None,
        "a rewrite verifies alone"
    );
    let p = verify(&pool2, Some(&mine))
        .await
        .first_problem
        .expect("the anchor catches a rewrite");
    assert!(p.contains("does not match the chain"), "{p}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn auditors_export_in_three_formats_that_verify_with_the_public_key() {
    let app = spawn_app().await;
    for i in 0..7 {
        create(&app, &format!("n{i}")).await;
    }
    // A break-glass reason that a spreadsheet would run as a formula.
    let res = app
        .caller(Some(("root", &["admin"])))
        .req(reqwest::Method::GET, "/api/symptom-submissions")
        .header("x-break-glass-reason", "=HYPERLINK(\"http://evil\")")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.caller(ANN).get("/api/audit/export").await.status(), 403);
    assert_eq!(
        app.caller(None).get("/api/audit/export").await.status(),
        401
    );
    assert_eq!(
        app.caller(AUDITOR)
            .get("/api/audit/export?format=xml")
            .await
            .status(),
        400
    );
    let keys = public();
    for format in ["ndjson", "csv", "fhir"] {
        let res = app
            .caller(AUDITOR)
            .get(&format!("/api/audit/export?format={format}"))
            .await;
        assert_eq!(res.status(), 200, "{format}");
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let text = res.text().await.unwrap();
        let manifest: Option<export::SignedManifest> = if format == "csv" {
            // CSV carries no manifest inline: it is fetched by request id.
            let m = app
                .caller(AUDITOR)
                .get(&format!("/api/audit/exports/{request_id}/manifest"))
                .await;
            assert_eq!(m.status(), 200);
            Some(serde_json::from_value(json(m).await).unwrap())
        } else {
            // Every line of NDJSON and FHIR is one JSON document.
            for line in text.lines() {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("{format}: not JSON ({e}): {line}"));
            }
            None
        };
        let check = |t: &str| export::verify_file(t.as_bytes(), manifest.as_ref(), &keys);
        let m = check(&text).unwrap_or_else(|e| panic!("{format}: {e:#}"));
        assert!(m.rows >= 8, "{format}: {m:?}");
        assert!(m.checkpoint.is_some());
        let lines: Vec<&str> = text.lines().collect();
        if format == "fhir" {
            let first: Value = serde_json::from_str(lines[0]).unwrap();
            assert_eq!(first["resourceType"], "AuditEvent");
            assert_eq!(first["action"], "C");
            assert_eq!(first["outcome"], "0");
            assert_eq!(first["subtype"][0]["code"], "create");
            assert_eq!(first["agent"][0]["who"]["identifier"]["value"], "users:ann");
            let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
            assert_eq!(last["resourceType"], "Provenance");
        }
        if format == "csv" {
            assert!(text.contains("'=HYPERLINK("), "formula neutralised: {text}");
            assert!(!text.contains(",=HYPERLINK(") && !text.contains("\"=HYPERLINK("));
        }
        // One changed character anywhere in an entry is caught.
        let tampered = text.replacen("users:ann", "users:eve", 1);
        assert!(check(&tampered).is_err(), "{format}: tampering not caught");
        // A dropped line (entries only) is caught.
        let body_lines = if format == "csv" {
            &lines[1..]
        } else {
            &lines[..lines.len() - 1]
        };
        let dropped: String = {
            let mut v: Vec<&str> = lines.clone();
            let i = lines.iter().position(|l| *l == body_lines[2]).unwrap();
            v.remove(i);
            v.join("\n") + "\n"
        };
        assert!(
            check(&dropped).is_err(),
            "{format}: dropped line not caught"
        );
        // A cut tail is caught.
        let cut: String = lines[..4].join("\n") + "\n";
        assert!(check(&cut).is_err(), "{format}: cut not caught");
    }
    // A window is a contiguous range, signed like the rest.
    let res = app
        .caller(AUDITOR)
        .get("/api/audit/export?format=ndjson&from=2020-01-01&to=2100-01-01")
        .await;
    let text = res.text().await.unwrap();
    assert!(export::verify_file(text.as_bytes(), None, &keys).is_ok());
    // A fabricated window: two entries cut out of it, with the manifest
    // edited to describe just them. Before, the manifest was not signed as a
    // whole; now the edit breaks its signature.
    let lines: Vec<&str> = text.lines().collect();
    let mut last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let mut m: Value = serde_json::from_str(last["phiGatewayManifest"].as_str().unwrap()).unwrap();
    let second: Value = serde_json::from_str(lines[1]).unwrap();
    m["rows"] = json!(2);
    m["lastPos"] = second["pos"].clone();
    m["lastSeq"] = second["seq"].clone();
    m["headHash"] = second["hash"].clone();
    last["phiGatewayManifest"] = json!(m.to_string());
    let fabricated = format!("{}\n{}\n{}\n", lines[0], lines[1], last);
    let err = export::verify_file(fabricated.as_bytes(), None, &keys).unwrap_err();
    assert!(err.to_string().contains("signature"), "{err:#}");
    // Each export is itself in the log, before and after.
    let pool = app.db.admin_pool().await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'EXPORT' AND actor_user = 'users:aud' AND entity_id = 'export'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 4);
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'ACCESS_DENIED' AND entity_type = 'audit_log'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, 1);
    sealer::seal_all(&pool).await.unwrap();
    assert_eq!(verify(&pool, None).await.first_problem, None);
}

/// A value that does not open is a 500 and a DECRYPT_FAILURE entry, written
/// on the request's own connection: with a pool of one (the request holds
/// it) the entry is still there.
#[tokio::test]
async fn a_decrypt_failure_is_recorded_even_with_a_pool_of_one() {
    let app = spawn_app_with(&[
        ("DATABASE_MAX_CONNECTIONS", "1"),
        ("DATABASE_AUDIT_POOL_SIZE", "1"),
    ])
    .await;
    let id = create(&app, "n").await;
    let pool = app.db.admin_pool().await;
    // Flip one bit of the sealed notes, behind the service's back.
    sqlx::query(
        "UPDATE symptom_submissions SET notes = set_byte(notes, 30, get_byte(notes, 30) # 1) WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    for path in [
        format!("/api/symptom-submissions/{id}"),
        "/api/symptom-submissions".to_string(),
    ] {
        let res = app.caller(ANN).get(&path).await;
        assert_eq!(res.status(), 500, "{path}");
        assert_eq!(
            json(res).await["errors"][0]["message"],
            "Something went wrong."
        );
    }
    let failures: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT outcome, entity_id FROM audit.log WHERE action = 'DECRYPT_FAILURE' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        failures,
        vec![
            ("failure".to_string(), Some(id.clone())),
            ("failure".to_string(), Some(id.clone()))
        ]
    );
}

pub fn fhir_validate(text: &str) -> Result<String, String> {
    let python = std::env::var("PHI_TEST_PYTHON")
        .expect("PHI_TEST_PYTHON (deploy/test.sh installs the FHIR validator)");
    let file = std::env::temp_dir().join(format!("fhir-{}.ndjson", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fhir/validate.py"
        ))
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

/// Every line of the FHIR export, the signed Provenance included, passes a
/// real FHIR R4 validator (fhir.resources, from PyPI), not only our own
/// assertions; and the validator does refuse what is not valid.
#[tokio::test]
async fn the_fhir_export_is_valid_fhir_r4() {
    let app = spawn_app().await;
    create(&app, "n").await;
    let res = app
        .caller(Some(("root", &["admin"])))
        .req(reqwest::Method::GET, "/api/symptom-submissions")
        .header("x-break-glass-reason", "ER admission")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.caller(None)
            .get("/api/symptom-submissions/x")
            .await
            .status(),
        404
    );
    let text = app
        .as_auditor()
        .get("/api/audit/export?format=fhir")
        .await
        .text()
        .await
        .unwrap();
    assert!(text.lines().count() >= 5, "{text}");
    let said = fhir_validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(said.contains("valid"), "{said}");
    // The validator is not a rubber stamp.
    let mut event: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    event.as_object_mut().unwrap().remove("source");
    assert!(fhir_validate(&(event.to_string() + "\n")).is_err());
}

/// A retired signing key's private half that leaked (an old copy of the
/// signing file) signs nothing that verifies for a time after it was
/// retired: rotation dropped it from the file and recorded its notAfter in
/// the public one (issue 20).
#[tokio::test]
async fn a_stolen_retired_signing_key_signs_nothing_that_verifies() {
    use phi_gateway::audit::signing::SigningKeys;
    // No sealer in the gateway: this test seals with keys of its own.
    let app = spawn_app_with(&[("AUDIT_SEALER_DATABASE_URL", "")]).await;
    let pool = app.db.admin_pool().await;
    let mut keys = SigningKeys::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("phi-sign-{}", uuid::Uuid::new_v4().simple()));
    let stolen_path = dir.join("stolen.json");
    keys.write_file(&stolen_path, false).unwrap();
    create(&app, "before the rotation").await;
    let with = |k: SigningKeys| Sealer {
        pool: pool.clone(),
        signing: Arc::new(k),
        anchor: None,
    };
    with(SigningKeys::load_file(&stolen_path).unwrap())
        .checkpoint()
        .await
        .unwrap()
        .expect("a head");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    keys.rotate().unwrap();
    let public = keys.public();
    let verified = |pk: phi_gateway::audit::signing::VerifyingKeys| {
        let pool = pool.clone();
        async move {
            verify::verify(
                &pool,
                VerifyKeys {
                    public: Some(&pk),
                    keyring: None,
                },
                None,
                None,
                None,
            )
            .await
            .unwrap()
        }
    };
    // What the old key signed while active still verifies.
    assert_eq!(verified(public.clone()).await.first_problem, None);
    // New entries, signed by the new key: fine.
    create(&app, "after the rotation").await;
    with(SigningKeys::from_file_text(&keys_text(&keys)).unwrap())
        .checkpoint()
        .await
        .unwrap()
        .expect("a head");
    assert_eq!(verified(public.clone()).await.first_problem, None);
    // The thief's checkpoint of the new head, dated now: refused. (The
    // head entry is dated five minutes on, before it is sealed, for the
    // backdating case below.)
    create(&app, "the thief's").await;
    // That entry, by its sequence number (found again below by it, not by
    // its date against the clock: a loaded run once took over a minute to
    // get there).
    let (late_seq,): (i64,) = sqlx::query_as("SELECT max(seq) FROM audit.log")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(
        &pool,
        &format!("UPDATE audit.log SET at = at + interval '5 minutes' WHERE seq = {late_seq}"),
    )
    .await;
    let thief = SigningKeys::load_file(&stolen_path).unwrap();
    with(thief).checkpoint().await.unwrap().expect("a head");
    let p = verified(public.clone())
        .await
        .first_problem
        .unwrap_or_default();
    assert!(p.contains("bad signature"), "{p}");
    tamper(
        &pool,
        "DELETE FROM audit.checkpoints WHERE id = (SELECT max(id) FROM audit.checkpoints)",
    )
    .await;
    assert_eq!(verified(public.clone()).await.first_problem, None);
    // Dated back to before the rotation, it covers an entry written after
    // it (five minutes after; a checkpoint is signed after the entries it
    // covers, give or take the clocks' skew): refused too.
    // The position of the entry dated five minutes on (the chain's head,
    // unless the gateway wrote an entry of its own after it: a loaded run
    // once sealed one there, and a checkpoint of that head covered nothing
    // dated late). Sealed, that is, once every transaction older than it
    // has ended, in the whole cluster: in a loaded suite another test's
    // transaction outlived the 10 s a checkpoint waits (twice in CI).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (pos, hash): (i64, Vec<u8>) = loop {
        let found = sqlx::query_as("SELECT pos, hash FROM audit.chain WHERE seq = $1")
            .bind(late_seq)
            .fetch_optional(&pool)
            .await
            .unwrap();
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entry {late_seq} is not sealed after 120 s"
        );
        phi_gateway::audit::sealer::seal_all(&pool).await.unwrap();
    };
    let at = public.not_after(1).unwrap() - chrono::Duration::seconds(1);
    let at = chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap();
    let thief = SigningKeys::load_file(&stolen_path).unwrap();
    let (key_id, sig) = thief.sign(&chain::checkpoint_message(
        chain::ALG_ED25519,
        pos,
        &hash,
        &at,
    ));
    sqlx::query(
        "INSERT INTO audit.checkpoints (pos, hash, at, alg, key_id, signature) VALUES ($1, $2, $3, 'ed25519', $4, $5)",
    )
    .bind(pos)
    .bind(&hash)
    .bind(at)
    .bind(key_id as i32)
    .bind(sig.to_vec())
    .execute(&pool)
    .await
    .unwrap();
    let p = verified(public).await.first_problem.unwrap_or_default();
    assert!(p.contains("backdated"), "{p}");
    std::fs::remove_dir_all(dir).ok();
}

/// A signing key file's text as written (the rotated keys, re-read).
fn keys_text(keys: &phi_gateway::audit::signing::SigningKeys) -> String {
    let dir = std::env::temp_dir().join(format!("phi-keys-{}", uuid::Uuid::new_v4().simple()));
    let path = dir.join("k.json");
    keys.write_file(&path, false).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(dir).ok();
    text
}

/// An export's window selects entries by their own time, not by when they
/// were sealed (issue 20): entries written hours ago and sealed only now
/// are in the export of their hours, and while an entry dated in the
/// window cannot be sealed yet (an older transaction is still open), the
/// export is refused rather than signed without it.
#[tokio::test]
async fn an_export_window_holds_every_entry_dated_in_it() {
    use phi_gateway::audit::export::Format;
    use phi_gateway::identity::{Principal, Role};
    use phi_gateway::service::export::Exporter;
    // No sealer in the gateway: entries wait to be sealed.
    let app = spawn_app_with(&[("AUDIT_SEALER_DATABASE_URL", "")]).await;
    let pool = app.db.admin_pool().await;
    let exporter = Exporter {
        reader: pool.clone(),
        audit_pool: phi_gateway::store::Db::new(pool.clone(), phi_gateway::store::Mode::default()),
        sealer: sealer(&pool, None),
    };
    let auditor = Principal::operator("window-test", &[Role::Auditor]);
    for i in 0..3 {
        create(&app, &format!("written hours ago {i}")).await;
    }
    // Written three hours ago (dated so before they are sealed).
    tamper(&pool, "UPDATE audit.log SET at = at - interval '3 hours'").await;
    create(&app, "written now").await;
    let now = chrono::Utc::now();
    let export = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        let exporter = exporter.clone();
        let auditor = auditor.clone();
        async move {
            let mut running = exporter
                .start(
                    &auditor,
                    Format::Ndjson,
                    Some(from),
                    Some(to),
                    std::sync::Arc::new(phi_gateway::progress::Quiet),
                )
                .await?;
            let mut bytes = Vec::new();
            while let Some(chunk) = running.chunks.recv().await {
                bytes.extend_from_slice(&chunk.unwrap());
            }
            let _ = running.done.await.unwrap().unwrap();
            Ok::<_, phi_gateway::error::ApiError>(bytes)
        }
    };
    // Sealed now, dated three hours ago: in the export of those hours.
    let bytes = export(
        now - chrono::Duration::hours(4),
        now - chrono::Duration::hours(2),
    )
    .await
    .unwrap();
    let m = export::verify_file(std::io::BufReader::new(&bytes[..]), None, &public()).unwrap();
    assert_eq!(m.rows, 3, "{}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("written now"));
    assert!(
        m.complete_before
            .is_some_and(|t| t <= now - chrono::Duration::hours(2))
    );

    // An older transaction still open: an entry committed after it cannot
    // be sealed, and an export of its window is refused, not signed
    // without it.
    let mut open = sqlx::PgConnection::connect(&app.db.admin_url())
        .await
        .unwrap();
    open.execute("BEGIN; SELECT txid_current()").await.unwrap();
    create(&app, "committed behind an open transaction").await;
    tamper(
        &pool,
        "UPDATE audit.log SET at = at - interval '10 minutes' WHERE seq = (SELECT max(seq) FROM audit.log)",
    )
    .await;
    let err = match export(now - chrono::Duration::minutes(30), now).await {
        Ok(_) => panic!("an export signed without an entry of its window"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, phi_gateway::error::ApiError::Conflict(m) if m.contains("not sealed yet")),
        "{err:?}"
    );
    // Once it can be sealed, it is exported; with a list (whose entry's
    // detail the service writes) and a status change (the trigger's).
    open.execute("COMMIT").await.unwrap();
    assert_eq!(
        app.caller(ANN)
            .get("/api/symptom-submissions")
            .await
            .status(),
        200
    );
    let id = create(&app, "to archive").await;
    let res = app
        .caller(ANN)
        .patch(
            &format!("/api/symptom-submissions/{id}"),
            &json!({"status": "archived"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let bytes = export(now - chrono::Duration::minutes(30), later)
        .await
        .unwrap();
    let m = export::verify_file(std::io::BufReader::new(&bytes[..]), None, &public()).unwrap();
    assert!(m.rows >= 4, "{m:?}");
    // `detail` is the JSON object it holds, never a string holding JSON,
    // and the export verifies all the same (its text is canonical).
    let lines: Vec<Value> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l.get("detail").is_some())
        .collect();
    let of = |action: &str| {
        lines
            .iter()
            .find(|l| l["action"] == action)
            .unwrap_or_else(|| panic!("no {action} entry with a detail: {lines:?}"))["detail"]
            .clone()
    };
    assert_eq!(of("LIST")["returned"], 5, "{lines:?}");
    assert_eq!(
        of("UPDATE"),
        json!({"status": {"new": "archived", "old": "submitted"}})
    );
}

/// Verifying from the newest anchored checkpoint recomputes only what came
/// after it: a change after it is caught, the entries before it are not
/// read (a full verification catches a change there), and a starting
/// checkpoint that does not match the chain stops it.
#[tokio::test]
async fn an_incremental_verify_starts_at_the_newest_anchored_checkpoint() {
    let dir = std::env::temp_dir().join(format!("phi-anchor-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let anchor_path = dir.join("anchor.jsonl");
    let app = spawn_app().await;
    for i in 0..5 {
        create(&app, &format!("old{i}")).await;
    }
    let pool = app.db.admin_pool().await;
    let s = sealer(&pool, Some(Anchor::new(&anchor_path)));
    s.checkpoint().await.unwrap().expect("a head");
    for i in 0..3 {
        create(&app, &format!("new{i}")).await;
    }
    s.checkpoint().await.unwrap().expect("a head");
    for i in 0..2 {
        create(&app, &format!("newer{i}")).await;
    }
    phi_gateway::audit::sealer::seal_all(&pool).await.unwrap();
    let anchored = Anchor::read(&anchor_path).unwrap();
    assert_eq!(anchored.len(), 2);
    let keys = public();
    let keys = VerifyKeys {
        public: Some(&keys),
        keyring: None,
    };
    let since = verify::newest_trusted(keys, &anchored).expect("a trusted checkpoint");
    assert_eq!(since.pos, anchored.iter().map(|c| c.pos).max().unwrap());
    let incremental = |since| {
        let pool = pool.clone();
        let anchored = anchored.clone();
        async move {
            verify::verify_with(
                &pool,
                keys,
                verify::Options {
                    anchor: Some(&anchored),
                    from: None,
                    to: None,
                    since,
                    progress: &phi_gateway::progress::Quiet,
                },
            )
            .await
            .unwrap()
        }
    };
    let full = verify(&pool, Some(&anchored)).await;
    assert_eq!(full.first_problem, None);
    let inc = incremental(Some(since)).await;
    assert_eq!(inc.first_problem, None, "{inc:?}");
    assert_eq!(
        inc.entries_checked, 2,
        "only the entries after the checkpoint"
    );
    assert!(full.entries_checked >= 10);

    // Altered before the checkpoint: the incremental one does not look
    // there; the full one catches it.
    let old: i64 = sqlx::query_scalar("SELECT seq FROM audit.chain WHERE pos = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(
        &pool,
        &format!("UPDATE audit.log SET actor_user = 'mallory' WHERE seq = {old}"),
    )
    .await;
    assert_eq!(incremental(Some(since)).await.first_problem, None);
    assert!(verify(&pool, Some(&anchored)).await.first_problem.is_some());

    // Altered after it: caught, and located.
    let new: i64 = sqlx::query_scalar("SELECT seq FROM audit.chain ORDER BY pos DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    tamper(
        &pool,
        &format!("UPDATE audit.log SET actor_user = 'mallory' WHERE seq = {new}"),
    )
    .await;
    let p = incremental(Some(since))
        .await
        .first_problem
        .expect("caught");
    assert!(p.contains(&format!("entry seq {new} was altered")), "{p}");

    // A starting checkpoint that is not the chain's: nothing is trusted.
    let mut forged = since.clone();
    forged.hash = vec![7; 32];
    let p = incremental(Some(&forged))
        .await
        .first_problem
        .expect("refused");
    assert!(p.contains("starting checkpoint"), "{p}");

    // An entry slipped in after it and passed over by the sealer (never
    // chained): the incremental one finds it too (one problem more than the
    // altered entry above).
    let before = incremental(Some(since)).await.problems;
    let txid: i64 = sqlx::query_scalar(
        "INSERT INTO audit.log (actor_user, action, entity_type, outcome) \
         VALUES ('mallory', 'READ', 'symptom_submissions', 'success') RETURNING txid",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE audit.sealer_state SET lo = $1, hi = NULL, after_seq = 0")
        .bind(txid + 1)
        .execute(&pool)
        .await
        .unwrap();
    let after = incremental(Some(since)).await;
    assert_eq!(after.problems, before + 1, "{after:?}");
}

/// A backlog is sealed a page at a time in windows of at most one page's
/// entries (or one transaction's, however many it wrote), every entry
/// exactly once, and the chain verifies.
#[tokio::test]
async fn a_backlog_is_sealed_page_by_page_whatever_its_transactions() {
    let db = crate::testdb::TestDb::migrated().await;
    let admin = db.admin_pool().await;
    let insert = |n: i64, who: &str| {
        format!(
            "INSERT INTO audit.log (actor_user, action, entity_type, outcome) \
             SELECT '{who}', 'READ', 'symptom_submissions', 'success' FROM generate_series(1, {n})"
        )
    };
    // Transactions of one and two entries, one of eleven, then more small
    // ones: a window opened at the big one holds it alone.
    for (n, who) in [
        (1, "a"),
        (2, "b"),
        (1, "c"),
        (11, "big"),
        (2, "d"),
        (1, "e"),
        (1, "f"),
    ] {
        sqlx::query(&insert(n, who)).execute(&admin).await.unwrap();
    }
    let pool = db.sealer_pool().await;
    let mut rounds = 0;
    loop {
        let n = sealer::seal_pending(&pool, 3).await.unwrap();
        assert!(n <= 3, "a round seals at most its batch");
        // The open window holds at most a page, or one transaction's entries.
        let (entries, txids): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT txid) FROM audit.log, audit.sealer_state s \
             WHERE s.hi IS NOT NULL AND txid >= s.lo AND txid < s.hi",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        assert!(entries <= 3 || txids == 1, "a window of {entries} entries");
        rounds += 1;
        assert!(rounds < 40, "sealing does not finish");
        let (sealed, distinct): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(DISTINCT seq) FROM audit.chain")
                .fetch_one(&admin)
                .await
                .unwrap();
        assert_eq!(sealed, distinct, "an entry sealed twice");
        if sealed == 19 {
            break;
        }
    }
    // The big transaction's entries are one run, in sequence order.
    let big: Vec<i64> = sqlx::query_scalar(
        "SELECT c.pos FROM audit.chain c JOIN audit.log l ON l.seq = c.seq AND l.txid = c.txid \
         WHERE l.actor_user = 'big' ORDER BY l.seq",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(big.len(), 11);
    assert!(big.windows(2).all(|w| w[1] == w[0] + 1), "{big:?}");
    assert_eq!(sealer::seal_pending(&pool, 3).await.unwrap(), 0);
    let v = verify(&admin, None).await;
    assert_eq!(v.first_problem, None, "{v:?}");
    assert_eq!(v.entries_checked, 19);
}
