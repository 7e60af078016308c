//! Payload's REST surface as its SDK and frontend use it (issue 14): count,
//! select, depth, several sort fields, bulk PATCH/DELETE with `where`, and
//! the `payload-token` cookie under Payload's CSRF rule with CORS.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, error_message, json, spawn_app, spawn_app_with, token};

type Who = Option<(&'static str, &'static [&'static str])>;
const PAT: Who = Some(("pat", &[]));
const OTHER: Who = Some(("other", &[]));
const DOC: Who = Some(("doc", &["practitioner"]));
const EDITOR: Who = Some(("ed", &["editor"]));
const ADMIN: Who = Some(("adm", &["admin"]));

fn submission(notes: &str) -> Value {
    json!({"symptoms": [{"name": "Headache", "severity": 3, "onset": "2026-01-02"}],
           "notes": notes, "contactEmail": "pat@example.org", "dateOfBirth": "1980-05-05",
           "region": "CA-ON"})
}

async fn created(res: reqwest::Response) -> String {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"]["id"].as_str().unwrap().to_string()
}

async fn call(
    app: &TestApp,
    m: Method,
    path: &str,
    who: Who,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut b = app.caller(who).req(m, path);
    if let Some(body) = body {
        b = b.json(body);
    }
    b.send().await.unwrap()
}

/// (action, fields, detail) of the entries after `seq`.
async fn log_since(pool: &PgPool, seq: i64) -> Vec<(String, Vec<String>, Option<String>)> {
    sqlx::query_as("SELECT action::text, fields, detail FROM audit.log WHERE seq > $1 ORDER BY seq")
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

async fn practitioner(app: &TestApp, slug: &str, user: Option<&str>) -> String {
    created(
        call(
            app,
            Method::POST,
            "/api/practitioners",
            ADMIN,
            Some(&json!({"name": slug, "slug": slug, "status": "published",
                         "location": {"lat": 51.5, "lon": -0.1}, "email": format!("{slug}@clinic.example"),
                         "userId": user})),
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn count_answers_like_a_list_and_is_audited_where_it_touches_phi() {
    let app = spawn_app().await;
    for i in 0..3 {
        created(
            app.caller(PAT)
                .post("/api/symptom-submissions", &submission(&format!("n{i}")))
                .await,
        )
        .await;
    }
    created(
        app.caller(OTHER)
            .post("/api/symptom-submissions", &submission("theirs"))
            .await,
    )
    .await;
    let pool = app.db.admin_pool().await;
    let since = last_seq(&pool).await;
    let res = app
        .caller(PAT)
        .get("/api/symptom-submissions/count?where[status][equals]=submitted")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await,
        json!({"totalDocs": 3, "totalDocsCapped": false})
    );
    // One LIST entry: the filter's field names, nothing returned, 3 counted.
    let rows = log_since(&pool, since).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "LIST");
    assert_eq!(rows[0].1, vec!["status".to_string()]);
    let d: Value = serde_json::from_str(rows[0].2.as_deref().unwrap()).unwrap();
    assert_eq!(
        (d["returned"].clone(), d["counted"].clone()),
        (json!(0), json!(3))
    );

    // A count with nothing to count is audited too; the other patient's
    // submission is not counted for this one.
    let since = last_seq(&pool).await;
    let res = app
        .caller(PAT)
        .get("/api/symptom-submissions/count?where[contactEmail][equals]=nobody@example.org")
        .await;
    assert_eq!(json(res).await["totalDocs"], 0);
    assert_eq!(log_since(&pool, since).await.len(), 1);

    // Paging parameters mean nothing to a count: a clear 400.
    for q in [
        "limit=5",
        "page=2",
        "sort=createdAt",
        "select[notes]=true",
        "depth=1",
    ] {
        let res = app
            .caller(PAT)
            .get(&format!("/api/symptom-submissions/count?{q}"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
        assert!(
            error_message(&json(res).await).contains("count takes where"),
            "{q}"
        );
    }
    // No credentials: no count of PHI.
    assert_eq!(
        app.caller(None)
            .get("/api/symptom-submissions/count")
            .await
            .status(),
        401
    );
    // The public collections count for anyone; consents for their owner.
    assert_eq!(
        json(app.caller(None).get("/api/herbs/count").await).await["totalDocs"],
        0
    );
    assert_eq!(
        json(app.caller(PAT).get("/api/consents/count").await).await,
        json!({"totalDocs": 0, "totalDocsCapped": false})
    );
}

#[tokio::test]
async fn select_opens_and_names_only_what_it_shows_and_depth_populates_under_the_callers_rights() {
    let app = spawn_app().await;
    let p = practitioner(&app, "dr-select", Some("users:doc")).await;
    let mut body = submission("NOTE-SELECT");
    body["practitionerId"] = json!(p);
    let s = created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &body)
            .await,
    )
    .await;
    let pool = app.db.admin_pool().await;

    let since = last_seq(&pool).await;
    let doc = json(
        app.caller(PAT)
            .get(&format!(
                "/api/symptom-submissions/{s}?select[status]=true&select[region]=true"
            ))
            .await,
    )
    .await;
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["id", "region", "status"], "{doc}");
    let rows = log_since(&pool, since).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "READ");
    let mut named = rows[0].1.clone();
    named.sort();
    assert_eq!(named, vec!["id", "region", "status"]);

    // Hiding fields: the rest shows, the hidden are neither shown nor named.
    let since = last_seq(&pool).await;
    let doc = json(
        app.caller(PAT)
            .get("/api/symptom-submissions?select[notes]=false&select[contactEmail]=false")
            .await,
    )
    .await;
    let d = &doc["docs"][0];
    assert!(
        d.get("notes").is_none() && d.get("contactEmail").is_none(),
        "{d}"
    );
    assert!(d.get("symptoms").is_some());
    let read = log_since(&pool, since)
        .await
        .into_iter()
        .find(|r| r.0 == "READ")
        .unwrap();
    assert!(!read.1.contains(&"notes".to_string()) && read.1.contains(&"symptoms".to_string()));
    // Both kinds at once, or an unknown field: 400.
    for q in [
        "select[notes]=true&select[status]=false",
        "select[nope]=true",
        "select[notes]=yes",
    ] {
        let res = app
            .caller(PAT)
            .get(&format!("/api/symptom-submissions?{q}"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
    }

    // A response that carries PHI is never cached, by browsers or proxies.
    let res = app
        .caller(PAT)
        .get(&format!("/api/symptom-submissions/{s}"))
        .await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");

    // depth: 0 (default) an id, 1 the practitioner's document as the caller
    // may see it (the patient sees no sealed contact fields).
    let doc = json(
        app.caller(PAT)
            .get(&format!("/api/symptom-submissions/{s}"))
            .await,
    )
    .await;
    assert_eq!(doc["practitionerId"], json!(p));
    let doc = json(
        app.caller(PAT)
            .get(&format!("/api/symptom-submissions/{s}?depth=1"))
            .await,
    )
    .await;
    assert_eq!(doc["practitionerId"]["id"], json!(p));
    assert_eq!(doc["practitionerId"]["name"], "dr-select");
    assert!(
        doc["practitionerId"]
            .get("email")
            .is_none_or(Value::is_null),
        "{doc}"
    );
    assert_eq!(
        app.caller(PAT)
            .get(&format!("/api/symptom-submissions/{s}?depth=11"))
            .await
            .status(),
        400
    );
    // Payload's other parameters: accepted where they mean nothing here,
    // else a 400 that says why.
    let ok = app
        .caller(PAT)
        .get(&format!(
            "/api/symptom-submissions/{s}?locale=en&fallback-locale=en&draft=false"
        ))
        .await;
    assert_eq!(ok.status(), 200);
    for (q, why) in [
        ("draft=true", "no drafts"),
        ("populate[x]=true", "depth"),
        ("trash=true", "no trash"),
    ] {
        let res = app
            .caller(PAT)
            .get(&format!("/api/symptom-submissions?{q}"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
        assert!(error_message(&json(res).await).contains(why), "{q}");
    }
}

#[tokio::test]
async fn sort_takes_several_fields() {
    let app = spawn_app().await;
    for (name, status) in [
        ("b", "published"),
        ("a", "draft"),
        ("c", "published"),
        ("a2", "published"),
    ] {
        created(
            call(
                &app,
                Method::POST,
                "/api/herbs",
                EDITOR,
                Some(&json!({"name": name, "slug": name, "status": status})),
            )
            .await,
        )
        .await;
    }
    let page = json(app.caller(EDITOR).get("/api/herbs?sort=-status,name").await).await;
    let names: Vec<&str> = page["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a2", "b", "c", "a"]);
    let page = json(app.caller(EDITOR).get("/api/herbs?sort=status,-name").await).await;
    let names: Vec<&str> = page["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "c", "b", "a2"]);
}

#[tokio::test]
async fn bulk_changes_are_all_or_nothing_capped_and_audited() {
    let app = spawn_app().await;
    let pool = app.db.admin_pool().await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(
            created(
                app.caller(PAT)
                    .post("/api/symptom-submissions", &submission(&format!("b{i}")))
                    .await,
            )
            .await,
        );
    }
    let theirs = created(
        app.caller(OTHER)
            .post("/api/symptom-submissions", &submission("theirs"))
            .await,
    )
    .await;

    // A patient archives their own, in one request; the other patient's
    // submission matches the filter but is not theirs to see.
    let since = last_seq(&pool).await;
    let res = call(
        &app,
        Method::PATCH,
        "/api/symptom-submissions?where[status][equals]=submitted",
        PAT,
        Some(&json!({"status": "archived"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["docs"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(body["errors"], json!([]));
    assert_eq!(
        body["message"],
        "Updated 3 Symptom submissions successfully."
    );
    assert!(
        body["docs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "archived")
    );
    let actions: Vec<String> = log_since(&pool, since)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "UPDATE").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "READ").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "LIST").count(),
        1,
        "{actions:?}"
    );
    let other = json(
        app.caller(OTHER)
            .get(&format!("/api/symptom-submissions/{theirs}"))
            .await,
    )
    .await;
    assert_eq!(other["status"], "submitted");

    // All or nothing: a practitioner's own submission and one shared with
    // them match; they may not change the shared one's notes, so neither
    // changes.
    let p = practitioner(&app, "dr-bulk", Some("users:doc")).await;
    created(
        app.caller(OTHER)
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    let own = created(
        app.caller(DOC)
            .post("/api/symptom-submissions", &submission("doc's own"))
            .await,
    )
    .await;
    let res = call(
        &app,
        Method::PATCH,
        "/api/symptom-submissions?where[status][equals]=submitted",
        DOC,
        Some(&json!({"notes": "rewritten"})),
    )
    .await;
    assert_eq!(res.status(), 403);
    let own_doc = json(
        app.caller(DOC)
            .get(&format!("/api/symptom-submissions/{own}"))
            .await,
    )
    .await;
    assert_eq!(own_doc["notes"], "doc's own", "rolled back");
    let shared = json(
        app.caller(OTHER)
            .get(&format!("/api/symptom-submissions/{theirs}"))
            .await,
    )
    .await;
    assert_eq!(shared["notes"], "theirs");

    // A bulk change needs a filter, takes no paging, and validates its body.
    let no_where = call(
        &app,
        Method::PATCH,
        "/api/symptom-submissions",
        PAT,
        Some(&json!({"status": "submitted"})),
    )
    .await;
    assert_eq!(no_where.status(), 400);
    assert!(error_message(&json(no_where).await).contains("needs where"));
    let paged = call(
        &app,
        Method::DELETE,
        "/api/symptom-submissions?where[status][equals]=archived&limit=2",
        PAT,
        None,
    )
    .await;
    assert_eq!(paged.status(), 400);
    let bad = call(
        &app,
        Method::PATCH,
        "/api/symptom-submissions?where[status][equals]=archived",
        PAT,
        Some(&json!({"region": "Atlantis"})),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        json(
            app.caller(PAT)
                .get(&format!("/api/symptom-submissions/{}", mine[0]))
                .await
        )
        .await["region"],
        "CA-ON"
    );

    // Bulk delete: theirs only, audited per row by the trigger.
    let since = last_seq(&pool).await;
    let res = call(
        &app,
        Method::DELETE,
        "/api/symptom-submissions?where[status][equals]=archived",
        PAT,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(
        body["message"],
        "Deleted 3 Symptom submissions successfully."
    );
    let deletes = log_since(&pool, since)
        .await
        .into_iter()
        .filter(|r| r.0 == "DELETE")
        .count();
    assert_eq!(deletes, 3);
    for id in &mine {
        assert_eq!(
            app.caller(PAT)
                .get(&format!("/api/symptom-submissions/{id}"))
                .await
                .status(),
            404
        );
    }

    // More than the cap matches: refused whole, nothing changed.
    for i in 0..101 {
        created(
            call(
                &app,
                Method::POST,
                "/api/herbs",
                EDITOR,
                Some(&json!({"name": format!("bulk {i:03}"), "slug": format!("bulk-{i}"), "status": "draft"})),
            )
            .await,
        )
        .await;
    }
    let res = call(
        &app,
        Method::PATCH,
        "/api/herbs?where[name][like]=bulk",
        EDITOR,
        Some(&json!({"status": "published"})),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("at most 100"));
    let published = json(
        app.caller(EDITOR)
            .get("/api/herbs/count?where[status][equals]=published")
            .await,
    )
    .await;
    assert_eq!(published["totalDocs"], 0);
    let res = call(
        &app,
        Method::PATCH,
        "/api/herbs?where[or][0][slug][equals]=bulk-1&where[or][1][slug][equals]=bulk-2",
        EDITOR,
        Some(&json!({"status": "published"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["docs"].as_array().unwrap().len(), 2);
    // Herbs are staff's.
    let res = call(
        &app,
        Method::DELETE,
        "/api/herbs?where[name][like]=bulk",
        PAT,
        None,
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_payload_cookie_is_honoured_only_from_allowed_origins_with_cors_for_them() {
    let app = spawn_app_with(&[
        ("PHI_CSRF_ORIGINS", "https://cms.example"),
        ("PHI_AUDIT_REFUSAL_FLUSH_SECS", "1"),
    ])
    .await;
    created(
        app.caller(PAT)
            .post("/api/symptom-submissions", &submission("cookie"))
            .await,
    )
    .await;
    let cookie = format!("payload-token={}; other=1", token("pat", &[]));
    let list = |origin: &'static str| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            app.client
                .get(format!("{}/api/symptom-submissions", app.address))
                .header("cookie", cookie)
                .header("origin", origin)
                .send()
                .await
                .unwrap()
        }
    };
    let res = list("https://cms.example").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://cms.example"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    assert_eq!(json(res).await["totalDocs"], 1);

    let res = list("https://evil.example").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(error_message(&json(res).await).contains("allowed origin"));
    // The refusal is in the audit log (aggregated per client and minute).
    let pool = app.db.admin_pool().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'AUTH_FAILURE'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused cookie was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A header token from anywhere is unaffected (it is not ambient).
    let res = app
        .client
        .get(format!("{}/api/symptom-submissions", app.address))
        .header("authorization", crate::helpers::bearer("pat", &[]))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Preflight: answered for the allowed origin with credentials, not for
    // another.
    let pre = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(
                    Method::OPTIONS,
                    format!("{}/api/symptom-submissions", app.address),
                )
                .header("origin", origin)
                .header("access-control-request-method", "PATCH")
                .header(
                    "access-control-request-headers",
                    "content-type,x-purpose-of-use,x-break-glass-reason",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let ok = pre("https://cms.example").await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://cms.example"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    // A practitioner's page sends its purpose of use from the browser.
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-purpose-of-use"), "{allowed}");
    let no = pre("https://evil.example").await;
    assert!(no.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_configured_origins_cookies_mean_nothing_and_there_is_no_cors() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/api/symptom-submissions", app.address))
        .header("cookie", format!("payload-token={}", token("pat", &[])))
        .header("origin", "https://cms.example")
        .send()
        .await
        .unwrap();
    // Anonymous: the cookie is not a credential here.
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn writes_check_their_parameters_and_never_take_null_for_a_required_field() {
    let app = spawn_app().await;
    // A patient cannot create a submission already reviewed.
    let mut reviewed = submission("x");
    reviewed["status"] = json!("reviewed");
    let res = app
        .caller(PAT)
        .post("/api/symptom-submissions", &reviewed)
        .await;
    assert_eq!(res.status(), 403);
    // A write's answer honours select; depth and unknown parameters are 400s.
    let res = app
        .caller(PAT)
        .post(
            "/api/symptom-submissions?select[status]=true",
            &submission("sel"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let doc = json(res).await["doc"].clone();
    let keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["id", "status"]);
    let id = doc["id"].as_str().unwrap().to_string();
    for q in ["depth=1", "foo=bar"] {
        let res = app
            .caller(PAT)
            .post(&format!("/api/symptom-submissions?{q}"), &submission("q"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
        let res = app
            .caller(PAT)
            .patch(
                &format!("/api/symptom-submissions/{id}?{q}"),
                &json!({"notes": "n"}),
            )
            .await;
        assert_eq!(res.status(), 400, "{q}");
    }
    // null for a field that can only be changed, not cleared: 400, naming it.
    for body in [json!({"status": null}), json!({"symptoms": null})] {
        let res = app
            .caller(PAT)
            .patch(&format!("/api/symptom-submissions/{id}"), &body)
            .await;
        assert_eq!(res.status(), 400, "{body}");
        let msg = json(res).await;
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            msg["errors"][0]["data"]["errors"][0]["path"],
            json!(field),
            "{msg}"
        );
    }
    let herb = created(
        call(
            &app,
            Method::POST,
            "/api/herbs",
            EDITOR,
            Some(&json!({"name": "n", "slug": "n"})),
        )
        .await,
    )
    .await;
    let res = call(
        &app,
        Method::PATCH,
        &format!("/api/herbs/{herb}"),
        EDITOR,
        Some(&json!({"name": null})),
    )
    .await;
    assert_eq!(res.status(), 400);
    // Shared with a practitioner: they may read it, not delete it (403, not
    // 404: they know it exists).
    let p = practitioner(&app, "dr-del", Some("users:doc")).await;
    created(
        app.caller(PAT)
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    assert_eq!(
        app.caller(DOC)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await
            .status(),
        200
    );
    let res = call(
        &app,
        Method::DELETE,
        &format!("/api/symptom-submissions/{id}"),
        DOC,
        None,
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = call(
        &app,
        Method::DELETE,
        &format!("/api/symptom-submissions?where[id][equals]={id}"),
        DOC,
        None,
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.caller(PAT)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await
            .status(),
        200
    );
}
