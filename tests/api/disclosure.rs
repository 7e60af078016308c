//! The access and disclosure holes a review found (issue 10), each
//! reproduced as an attack and shown closed: nothing about a patient is
//! learned without a trace, a consent follows the person, hidden fields stay
//! hidden, floods cost no permanent rows, and bad bytes are clear 400s.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use phi_gateway::auth::JwtVerifier;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgPool};

use crate::helpers::{PAYLOAD_SECRET, TestApp, error_message, json, spawn_app, spawn_app_with};

type Who = Option<(&'static str, &'static [&'static str])>;
const PAT: Who = Some(("pat", &[]));
const DOC: Who = Some(("doc", &["practitioner"]));
const EDITOR: Who = Some(("ed", &["editor"]));
const ADMIN: Who = Some(("adm", &["admin"]));
/// An editor who is also a practitioner: the insider of the re-pointing attack.
const ED_DOC: Who = Some(("ed-doc", &["editor", "practitioner"]));

fn submission(email: &str) -> Value {
    json!({"symptoms": [{"name": "Low mood", "severity": 6, "onset": "2026-03-01"}],
           "notes": "CANARY-NOTE", "contactEmail": email, "region": "CA-ON"})
}

fn practitioner(slug: &str, user: Option<&str>) -> Value {
    json!({"name": slug, "slug": slug, "status": "published", "location": {"lat": 51.5, "lon": -0.1},
           "email": format!("{slug}@clinic.example"), "userId": user})
}

async fn created(res: reqwest::Response) -> String {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"]["id"].as_str().unwrap().to_string()
}

async fn break_glass(app: &TestApp, path: &str, reason: &str) -> reqwest::Response {
    app.as_admin().break_glass(reason).get(path).await
}

/// (action, actor, fields, detail, reason) of every entry, oldest first.
type Row = (
    String,
    Option<String>,
    Vec<String>,
    Option<String>,
    Option<String>,
);

async fn log(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT action::text, actor_user, fields, detail, reason FROM audit.log ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn log_since(pool: &PgPool, seq: i64) -> Vec<Row> {
    sqlx::query_as(
        "SELECT action::text, actor_user, fields, detail, reason FROM audit.log WHERE seq > $1 ORDER BY seq",
    )
    .bind(seq)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn last_seq(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit.log")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn detail(row: &Row) -> Value {
    serde_json::from_str(row.3.as_deref().unwrap_or("null")).unwrap()
}

#[tokio::test]
async fn break_glass_and_consent_searches_are_audited_even_when_empty() {
    let app = spawn_app().await;
    let p = created(
        app.caller(ADMIN)
            .post("/api/practitioners", &practitioner("p", Some("users:doc")))
            .await,
    )
    .await;
    for i in 0..3 {
        created(
            app.caller(PAT)
                .post(
                    "/api/symptom-submissions",
                    &submission(&format!("pat{i}@example.org")),
                )
                .await,
        )
        .await;
    }
    created(
        app.as_patient("pat")
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    let pool = app.db.admin_pool().await;

    // "Does this patient have a mood submission?", asked past the end of
    // the results: nothing shown, the count exact, and now an entry.
    let q = "/api/symptom-submissions?where[owner][equals]=users:pat&where[contactEmail][equals]=pat1@example.org&limit=1&page=7";
    let since = last_seq(&pool).await;
    let page = json(break_glass(&app, q, "checking an allergy record").await).await;
    assert_eq!(page["docs"], json!([]));
    assert_eq!(page["totalDocs"], 1);
    let rows = log_since(&pool, since).await;
    let kinds: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("LIST", Some("users:adm")),
            ("BREAK_GLASS", Some("users:adm"))
        ]
    );
    assert_eq!(rows[0].2, vec!["contactEmail", "owner"], "field names");
    assert_eq!(detail(&rows[0])["returned"], 0);
    assert_eq!(detail(&rows[0])["counted"], 1);
    assert_eq!(rows[1].4.as_deref(), Some("checking an allergy record"));

    // Page 1 with no match, and pagination=false, are recorded alike.
    for q in [
        "/api/symptom-submissions?where[owner][equals]=users:nobody",
        "/api/symptom-submissions?where[status][equals]=archived&pagination=false",
    ] {
        let since = last_seq(&pool).await;
        let page = json(break_glass(&app, q, "audit drill").await).await;
        assert_eq!(page["docs"], json!([]));
        let rows = log_since(&pool, since).await;
        assert_eq!(rows.len(), 2, "{q}: {rows:?}");
        assert_eq!(
            (rows[0].0.as_str(), rows[1].0.as_str()),
            ("LIST", "BREAK_GLASS")
        );
        assert_eq!(detail(&rows[0])["returned"], 0);
    }

    // The same for a practitioner searching with a consent.
    let since = last_seq(&pool).await;
    let page = json(
        app.caller(DOC)
            .get("/api/symptom-submissions?where[contactEmail][equals]=nobody@example.org")
            .await,
    )
    .await;
    assert_eq!(page["totalDocs"], 0);
    let rows = log_since(&pool, since).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_deref()),
        ("LIST", Some("users:doc"))
    );
    assert_eq!(rows[0].2, vec!["contactEmail"]);

    // Never a value.
    let dump: String = sqlx::query_scalar("SELECT string_agg(l::text, '|') FROM audit.log l")
        .fetch_one(&pool)
        .await
        .unwrap();
    for v in [
        "pat1@example.org",
        "nobody@example.org",
        "CANARY",
        "archived",
    ] {
        assert!(!dump.contains(v), "{v} in the log");
    }
}

#[tokio::test]
async fn a_patch_that_changes_nothing_is_an_audited_read() {
    let app = spawn_app().await;
    let id = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("p@example.org"))
            .await,
    )
    .await;
    let pool = app.db.admin_pool().await;
    let since = last_seq(&pool).await;
    let res = app
        .caller(PAT)
        .patch(&format!("/api/symptom-submissions/{id}"), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["doc"]["notes"], "CANARY-NOTE");
    let rows = log_since(&pool, since).await;
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["READ"]
    );
}

#[tokio::test]
async fn contact_reads_consent_listings_and_cascades_are_audited() {
    let app = spawn_app().await;
    let p = created(
        app.caller(ADMIN)
            .post("/api/practitioners", &practitioner("p", Some("users:doc")))
            .await,
    )
    .await;
    let pool = app.db.admin_pool().await;
    let path = format!("/api/practitioners/{p}");

    // The public and the practitioner themself: no entry. Staff: one.
    let since = last_seq(&pool).await;
    assert_eq!(app.anonymous().get(&path).await.status(), 200);
    assert_eq!(app.caller(DOC).get(&path).await.status(), 200);
    assert!(log_since(&pool, since).await.is_empty());
    let doc = json(app.as_editor().get(&path).await).await;
    assert_eq!(doc["email"], "p@clinic.example");
    let rows = log_since(&pool, since).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_deref()),
        ("READ", Some("users:ed"))
    );
    assert_eq!(rows[0].2, vec!["email"]);
    let since = last_seq(&pool).await;
    assert_eq!(
        app.as_editor().get("/api/practitioners").await.status(),
        200
    );
    let rows = log_since(&pool, since).await;
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["LIST", "READ"]
    );

    // Consents: given (trigger), listed (service), cascaded (trigger).
    let c = created(
        app.as_patient("pat")
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    let since = last_seq(&pool).await;
    let list = json(app.as_patient("pat").get("/api/consents").await).await;
    assert_eq!(list["totalDocs"], 1);
    let rows = log_since(&pool, since).await;
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["LIST", "READ"]
    );
    let since = last_seq(&pool).await;
    assert_eq!(app.as_admin().delete(&path).await.status(), 200);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT action::text, actor_user, ARRAY[entity_type, coalesce(entity_id, '')], detail, reason FROM audit.log \
         WHERE seq > $1 ORDER BY seq",
    )
    .bind(since)
    .fetch_all(&pool)
    .await
    .unwrap();
    let consent_row = rows
        .iter()
        .find(|r| r.2[0] == "consents")
        .unwrap_or_else(|| panic!("cascade not audited: {rows:?}"));
    assert_eq!(consent_row.0, "DELETE");
    assert_eq!(consent_row.2[1], c);
    assert_eq!(consent_row.4.as_deref(), Some("cascade"));
    assert_eq!(detail(consent_row)["cascade"], true);
    let creations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE entity_type = 'consents' AND action = 'CREATE'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(creations, 1);
}

#[tokio::test]
async fn a_consent_follows_the_person_not_a_record_an_editor_can_re_point() {
    let app = spawn_app().await;
    let p = created(
        app.caller(ADMIN)
            .post("/api/practitioners", &practitioner("p", Some("users:doc")))
            .await,
    )
    .await;
    let s = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("p@example.org"))
            .await,
    )
    .await;
    created(
        app.as_patient("pat")
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    let sub = format!("/api/symptom-submissions/{s}");
    let rec = format!("/api/practitioners/{p}");
    assert_eq!(app.caller(DOC).get(&sub).await.status(), 200);

    // The attack: an editor who is also a practitioner points the consented
    // record at themself, reads the shared submission, points it back.
    let res = app
        .caller(ED_DOC)
        .patch(&rec, &json!({"userId": "users:ed-doc"}))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.caller(ED_DOC).get(&sub).await.status(), 404);
    let pool = app.db.admin_pool().await;
    let attempt: (String, Vec<String>, Option<String>) = sqlx::query_as(
        "SELECT outcome, fields, reason FROM audit.log WHERE action = 'ACCESS_DENIED' AND actor_user = 'users:ed-doc' \
         AND entity_type = 'practitioners'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempt.0, "denied");
    assert_eq!(attempt.1, vec!["userId"]);
    // Below HTTP, as the service's role, the database refuses it too.
    let mut conn = app.db.app_conn().await;
    let mut tx = conn.begin().await.unwrap();
    tx.execute(
        "SELECT set_config('app.user_id', 'users:ed-doc', true), set_config('app.roles', 'patient,editor,practitioner', true)",
    )
    .await
    .unwrap();
    let err = sqlx::query("UPDATE practitioners SET user_id = 'users:ed-doc'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "PH403");
    tx.rollback().await.unwrap();

    // Even an admin re-pointing the record carries nothing: the consent
    // bound the user linked when the patient gave it.
    let res = app
        .caller(ADMIN)
        .patch(&rec, &json!({"userId": "users:ed-doc"}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.caller(ED_DOC).get(&sub).await.status(),
        404,
        "re-pointed"
    );
    assert_eq!(
        app.caller(DOC).get(&sub).await.status(),
        404,
        "and the consent ends with the link"
    );
    // The change of link is in the log with its old and new values.
    let d: String = sqlx::query_scalar(
        "SELECT detail FROM audit.log WHERE action = 'UPDATE' AND entity_type = 'practitioners' AND 'userId' = ANY(fields)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let d: Value = serde_json::from_str(&d).unwrap();
    assert_eq!(
        d["userId"],
        json!({"old": "users:doc", "new": "users:ed-doc"})
    );
    // So is a change of status.
    let res = app
        .caller(EDITOR)
        .patch(&rec, &json!({"status": "draft"}))
        .await;
    assert_eq!(res.status(), 200);
    let d: String = sqlx::query_scalar(
        "SELECT detail FROM audit.log WHERE action = 'UPDATE' AND entity_type = 'practitioners' AND 'status' = ANY(fields)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&d).unwrap()["status"],
        json!({"old": "published", "new": "draft"})
    );
}

#[tokio::test]
async fn hidden_fields_cannot_be_queried_by_those_who_cannot_see_them() {
    let app = spawn_app().await;
    for q in [
        "where[userId][equals]=users:doc",
        "where[email][equals]=p@clinic.example",
        "sort=userId",
    ] {
        for who in [None, PAT, DOC] {
            let res = app
                .caller(who)
                .get(&format!("/api/practitioners?{q}"))
                .await;
            assert_eq!(res.status(), 400, "{q} as {who:?}");
            let m = error_message(&json(res).await);
            assert!(
                m.contains("cannot be queried") || m.contains("Cannot sort"),
                "{m}"
            );
        }
    }
    for q in [
        "where[userId][equals]=users:doc",
        "where[email][equals]=p@clinic.example",
    ] {
        assert_eq!(
            app.as_editor()
                .get(&format!("/api/practitioners?{q}"))
                .await
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn the_operator_label_comes_from_nothing_a_request_can_send() {
    let app = spawn_app().await;
    let p = created(
        app.as_admin()
            .post("/api/practitioners", &practitioner("p", None))
            .await,
    )
    .await;
    // An admin's break-glass reason of "reencrypt" used to relabel writes.
    let res = app
        .caller(ADMIN)
        .req(Method::PATCH, &format!("/api/practitioners/{p}"))
        .header("x-break-glass-reason", "reencrypt")
        .json(&json!({"email": "new@clinic.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Raw SQL as the service's role cannot either.
    let s = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("p@example.org"))
            .await,
    )
    .await;
    let mut conn = app.db.app_conn().await;
    let mut tx = conn.begin().await.unwrap();
    tx.execute(
        "SELECT set_config('app.user_id', 'users:pat', true), set_config('app.operation', 'reencrypt', true), \
         set_config('app.reason', 'reencrypt', true)",
    )
    .await
    .unwrap();
    sqlx::query("UPDATE symptom_submissions SET notes = NULL WHERE id = $1::uuid")
        .bind(&s)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let pool = app.db.admin_pool().await;
    let rotations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'KEY_ROTATION'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rotations, 0);
    let updates: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'UPDATE'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(updates, 2);
}

#[tokio::test]
async fn floods_are_counted_per_client_and_minute_not_written_one_by_one() {
    let app = spawn_app_with(&[("PHI_AUDIT_REFUSAL_FLUSH_SECS", "1")]).await;
    let pool = app.db.admin_pool().await;
    let before = log(&pool).await.len();
    let bad = JwtVerifier::new(&SecretString::from("wrong"), vec!["users".into()], 30);
    let now = chrono::Utc::now().timestamp();
    let forged = bad.sign(&json!({"id": 1, "collection": "users", "iat": now, "exp": now + 60}));
    for _ in 0..200 {
        assert_eq!(app.get("/api/symptom-submissions").await.status(), 401);
    }
    for _ in 0..20 {
        let res = app
            .caller(None)
            .req(Method::GET, "/api/herbs")
            .header("authorization", format!("JWT {forged}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT action::text, client_addr, detail FROM audit.log \
             WHERE action IN ('ACCESS_DENIED', 'AUTH_FAILURE') ORDER BY action",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let counted: u64 = rows
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.2).unwrap()["count"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        if counted == 220 {
            break rows;
        }
        assert!(Instant::now() < deadline, "not flushed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A handful of rows (one per client, kind and minute), not 220.
    assert!(rows.len() <= 4, "{rows:?}");
    assert!(log(&pool).await.len() - before <= 4);
    assert!(rows.iter().all(|r| r.1.as_deref() == Some("127.0.0.1")));
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("phi_refusals_total{kind=\"anonymous\"} 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("phi_refusals_total{kind=\"bad_credentials\"} 20"),
        "{metrics}"
    );
}

#[tokio::test]
async fn methods_outside_the_route_table_share_one_metric_label() {
    let app = spawn_app().await;
    for m in ["FOO1", "FOO2", "BREW"] {
        let res = app
            .client
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                app.url("/health"),
            )
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{m}");
    }
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    for m in ["FOO1", "FOO2", "BREW"] {
        assert!(!metrics.contains(m), "{m} became a label");
    }
}

#[tokio::test]
async fn nul_and_control_bytes_are_400s_never_500s() {
    let app = spawn_app().await;
    let before = {
        let pool = app.db.admin_pool().await;
        last_seq(&pool).await
    };
    for path in [
        "/api/herbs?q=%00",
        "/api/herbs?action=a%00b",
        "/api/practitioners?where[name][equals]=a%00",
        "/api/practitioners/near?lat=51&lon=0&modality=%00",
        "/api/practitioners?sort=name%07",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(
            error_message(&json(res).await).contains("control character"),
            "{path}"
        );
    }
    let nul = "a\u{0}b";
    for (path, who, body) in [
        (
            "/api/symptom-submissions",
            PAT,
            json!({"symptoms": [{"name": nul, "severity": 1, "onset": "2026-01-01"}]}),
        ),
        (
            "/api/symptom-submissions",
            PAT,
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "region": nul}),
        ),
        (
            "/api/practitioners",
            EDITOR,
            json!({"name": "n", "slug": "n", "location": {"lat": 1, "lon": 1}, "bio": nul}),
        ),
        (
            "/api/herbs",
            EDITOR,
            json!({"name": "n", "slug": "n", "tcmProperties": {"actions": [nul]}}),
        ),
    ] {
        let res = app.caller(who).post(path, &body).await;
        assert_eq!(res.status(), 400, "{path} {body}");
        let text = res.text().await.unwrap();
        assert!(!text.contains('\u{0}'), "the value is not echoed: {text}");
    }
    // A token whose id holds a NUL is a bad token, not a crash.
    let v = JwtVerifier::new(
        &SecretString::from(PAYLOAD_SECRET),
        vec!["users".into()],
        30,
    );
    let now = chrono::Utc::now().timestamp();
    for id in [json!(nul), json!(1e21), json!(5.5)] {
        let t = v.sign(&json!({"id": id, "collection": "users", "iat": now, "exp": now + 60}));
        let res = app
            .caller(None)
            .req(Method::GET, "/api/symptom-submissions")
            .header("authorization", format!("JWT {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{id}");
    }
    // Nothing was written.
    let pool = app.db.admin_pool().await;
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM symptom_submissions) + (SELECT count(*) FROM practitioners) + (SELECT count(*) FROM herbs)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 0);
    assert!(
        last_seq(&pool).await - before <= 1,
        "no entries but refusal tallies"
    );
}

#[tokio::test]
async fn bodies_are_one_json_object_with_each_key_once() {
    let app = spawn_app().await;
    let id = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("p@example.org"))
            .await,
    )
    .await;
    let path = format!("/api/symptom-submissions/{id}");
    let send = |body: &'static str| {
        app.caller(PAT)
            .req(Method::PATCH, &path)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // A positional array used to clear every optional sealed field.
    let res = send("[null, null, null, null]").await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("JSON object"));
    let res = send(r#"{"notes": "a", "notes": "b"}"#).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("more than once"));
    let res = send(r#"{"symptoms": [["x", 1, "2026-01-01"]]}"#)
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(
        body["errors"][0]["data"]["errors"][0]["path"],
        "symptoms[0]"
    );
    let doc = json(app.as_patient("pat").get(&path).await).await;
    assert_eq!(doc["notes"], "CANARY-NOTE", "nothing was cleared");
}

#[tokio::test]
async fn break_glass_headers_are_checked_and_attempts_recorded() {
    let app = spawn_app().await;
    let id = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("p@example.org"))
            .await,
    )
    .await;
    let path = format!("/api/symptom-submissions/{id}");
    // A reason that is not printable ASCII was silently dropped (a 404);
    // now it is a 400 that says why.
    let res = app
        .caller(ADMIN)
        .req(Method::GET, &path)
        .header(
            "x-break-glass-reason",
            reqwest::header::HeaderValue::from_bytes("Notaufnahme, bewusstlos \u{fc}".as_bytes())
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("printable ASCII"));
    // A non-admin's attempt is recorded as a break-glass attempt.
    let res = app
        .caller(EDITOR)
        .req(Method::GET, &path)
        .header("x-break-glass-reason", "let me in")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let pool = app.db.admin_pool().await;
    let attempt: (String, Option<String>) = sqlx::query_as(
        "SELECT outcome, reason FROM audit.log WHERE action = 'BREAK_GLASS' AND actor_user = 'users:ed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        attempt,
        ("denied".to_string(), Some("let me in".to_string()))
    );
}

#[tokio::test]
async fn consents_and_relationships_leak_nothing_about_what_one_cannot_see() {
    let app = spawn_app().await;
    let p = created(
        app.caller(ADMIN)
            .post("/api/practitioners", &practitioner("p", Some("users:doc")))
            .await,
    )
    .await;
    let mut draft = practitioner("draft", None);
    draft["status"] = json!("draft");
    let d = created(app.as_admin().post("/api/practitioners", &draft).await).await;
    // Naming a draft practitioner says the same as naming none at all.
    let mut body = submission("p@example.org");
    body["practitionerId"] = json!(d);
    let draft_err = json(
        app.as_patient("pat")
            .post("/api/symptom-submissions", &body)
            .await,
    )
    .await;
    body["practitionerId"] = json!(uuid::Uuid::now_v7());
    let none_err = json(
        app.as_patient("pat")
            .post("/api/symptom-submissions", &body)
            .await,
    )
    .await;
    assert_eq!(draft_err, none_err);
    assert_eq!(
        draft_err["errors"][0]["data"]["errors"][0]["path"],
        "practitionerId"
    );
    // An expired consent leaves the practitioner's list.
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1200)).to_rfc3339();
    created(
        app.caller(PAT)
            .post(
                "/api/consents",
                &json!({"practitionerId": p, "expiresAt": soon}),
            )
            .await,
    )
    .await;
    assert_eq!(
        json(app.caller(DOC).get("/api/consents").await).await["totalDocs"],
        1
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        json(app.caller(DOC).get("/api/consents").await).await["totalDocs"],
        0
    );
    // The patient still sees their own (expired) consent.
    assert_eq!(
        json(app.as_patient("pat").get("/api/consents").await).await["totalDocs"],
        1
    );
}

#[tokio::test]
async fn repeated_parameters_are_refused_and_trickling_bodies_cut_off() {
    let app = spawn_app_with(&[("PHI_BODY_TIMEOUT_SECS", "1")]).await;
    for path in [
        "/api/herbs?limit=1&limit=100",
        "/api/practitioners?page=1&page=2",
        "/api/practitioners/near?lat=1&lat=2&lon=0",
        "/api/herbs?q=a&q=b",
        "/api/consents?limit=1&limit=2",
        "/api/audit/export?format=csv&format=ndjson",
    ] {
        let who = if path.contains("audit") {
            Some(("aud", &["auditor"][..]))
        } else {
            PAT
        };
        let res = app.caller(who).get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        assert!(
            error_message(&json(res).await).contains("more than once"),
            "{path}"
        );
    }
    // Repeatable ones stay repeatable.
    assert_eq!(
        app.get("/api/herbs?taste=bitter&taste=sweet")
            .await
            .status(),
        200
    );

    // A body announced, then sent a few bytes at a time and never finished.
    let addr = app.address.trim_start_matches("http://").to_string();
    let token = crate::helpers::token("pat", &[]);
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/symptom-submissions HTTP/1.1\r\nHost: x\r\nAuthorization: JWT {token}\r\n\
         Connection: close\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"symptoms\""
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
