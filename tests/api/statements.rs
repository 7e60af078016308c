//! Round trips per request (issue 26), counted by PostgreSQL itself
//! (`pg_stat_statements`, loaded by deploy/pg.sh): a submission's create
//! and a read by id are each one statement of phi_app, with the identity,
//! the row, the facts and the audit entry inside it; behind a
//! transaction-mode pooler, where the connection cannot carry the
//! statement timeout, the request is a transaction as before.

use serde_json::json;
use sqlx::Row;

use crate::helpers::{json, spawn_app};

/// phi_app's statements in this test's database since the last reset,
/// each with its calls.
async fn statements(admin: &mut sqlx::PgConnection) -> Vec<(String, i64)> {
    sqlx::query(
        "SELECT query, calls FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND userid = 'phi_app'::regrole ORDER BY query",
    )
    .fetch_all(admin)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
    .collect()
}

async fn reset(admin: &mut sqlx::PgConnection) {
    sqlx::query(
        "SELECT pg_stat_statements_reset(0, \
           (SELECT oid FROM pg_database WHERE datname = current_database()), 0)",
    )
    .execute(admin)
    .await
    .unwrap();
}

/// Runs `n` requests and returns phi_app's statements in them.
async fn per_request<F, Fut>(admin: &mut sqlx::PgConnection, n: usize, mut f: F) -> (i64, String)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    reset(admin).await;
    for i in 0..n {
        f(i).await;
    }
    let s = statements(admin).await;
    let total = s.iter().map(|(_, c)| c).sum::<i64>();
    let listing = s
        .iter()
        .map(|(q, c)| format!("{c}x {}", q.chars().take(140).collect::<String>()))
        .collect::<Vec<_>>()
        .join("\n");
    (total, listing)
}

/// phi_app's statements in 5 creates, 5 reads of them, and one read of a
/// row the caller may not see.
async fn count_for(app: &crate::helpers::TestApp) -> (i64, i64, i64) {
    let mut admin = app.admin().await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut admin)
        .await
        .expect("pg_stat_statements (shared_preload_libraries, as deploy/pg.sh sets it)");
    let pat = app.as_patient("stmt-pat");
    let body = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-01-01"}],
                      "notes": "since Monday", "contactEmail": "p@example.org"});
    // Once first: statements are prepared on their first use.
    let res = pat.post("/api/symptom-submissions", &body).await;
    assert_eq!(res.status(), 201);
    let first = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        pat.get(&format!("/api/symptom-submissions/{first}"))
            .await
            .status(),
        200
    );

    let n = 5;
    let mut ids = Vec::new();
    let (creates, listing) = per_request(&mut admin, n, |_| {
        let req = pat.post("/api/symptom-submissions", &body);
        async {
            let res = req.await;
            assert_eq!(res.status(), 201);
        }
    })
    .await;
    let created: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM symptom_submissions WHERE id::text <> $1 ORDER BY created_at",
    )
    .bind(&first)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(created.len(), n, "every create wrote its row");
    ids.extend(created);
    eprintln!("{n} creates:\n{listing}");

    let pat = &pat;
    let (reads, listing) = per_request(&mut admin, n, |i| {
        let path = format!("/api/symptom-submissions/{}", ids[i]);
        async move {
            assert_eq!(pat.get(&path).await.status(), 200);
        }
    })
    .await;
    eprintln!("{n} reads:\n{listing}");
    // Each read is on the record, with its fields and its patient.
    let entries: Vec<(String, Vec<String>, String)> = sqlx::query_as(
        "SELECT entity_id, fields, subject FROM audit.log WHERE action = 'READ' \
         AND entity_id = ANY($1) ORDER BY seq",
    )
    .bind(&ids)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(entries.len(), n, "one READ entry per read");
    for (_, fields, subject) in &entries {
        assert_eq!(subject, "users:stmt-pat");
        assert!(fields.contains(&"notes".to_string()) && fields.contains(&"symptoms".to_string()));
    }
    // And a read of someone else's row, which is not found, writes no READ.
    let other = &app.as_patient("stmt-other");
    let (missing, missing_listing) = per_request(&mut admin, 1, |_| {
        let path = format!("/api/symptom-submissions/{}", ids[0]);
        async move {
            assert_eq!(other.get(&path).await.status(), 404);
        }
    })
    .await;
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'READ' AND actor_user = 'users:stmt-other'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(others, 0, "no READ entry for what was not shown");
    eprintln!("a read not found:\n{missing_listing}");
    // The refusal is on the record, written on its own (the reserved audit
    // pool's transaction, besides the request's one statement).
    let refused: Vec<(String, String)> = sqlx::query_as(
        "SELECT action::text, outcome FROM audit.log WHERE actor_user = 'users:stmt-other'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(refused.len(), 1, "the 404 is on the record: {refused:?}");
    let request_statements = missing_listing
        .lines()
        .filter(|l| l.contains("symptom_submissions"))
        .collect::<Vec<_>>();
    assert_eq!(request_statements.len(), 1, "{missing_listing}");
    assert!(
        request_statements[0].starts_with("1x "),
        "{missing_listing}"
    );
    (creates, reads, missing)
}

#[tokio::test]
async fn a_create_and_a_read_are_one_statement_each() {
    let app = spawn_app().await;
    let (creates, reads, missing) = count_for(&app).await;
    assert_eq!(creates, 5, "one statement per create");
    assert_eq!(reads, 5, "one statement per read");
    // The 404's own statement, and its refusal written on its own
    // (BEGIN, its purpose, the entry, COMMIT; a new connection checks its
    // role first).
    assert!(missing <= 6, "a read not found: {missing} statements");
}
