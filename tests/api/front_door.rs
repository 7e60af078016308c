//! The front door holds however a request is spelled (issue 20, section
//! 3): the anonymous gate is met after routing and after identification, a
//! credential that is ignored or fails is no way past it, failing
//! credentials are throttled per client, the client behind a trusted proxy
//! is read from the right, and ambiguous requests are refused.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, bearer, json, spawn_app_with};

async fn statuses(app: &TestApp, n: usize, req: impl Fn() -> reqwest::RequestBuilder) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(req().send().await.unwrap().status().as_u16());
    }
    let _ = app;
    out
}

fn count(list: &[u16], status: u16) -> usize {
    list.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn the_anonymous_gate_holds_however_the_path_is_spelled() {
    let app = spawn_app_with(&[
        ("PHI_ANONYMOUS_PER_MINUTE", "60"),
        ("PHI_ANONYMOUS_BURST", "3"),
    ])
    .await;
    // actix routes on the percent-decoded path: all of these are /api/herbs.
    let spellings = [
        "/%61pi/herbs",
        "/api/%68erbs",
        "/%61%70%69/herbs",
        "/api/herbs",
    ];
    let mut got = Vec::new();
    for i in 0..20 {
        let path = spellings[i % spellings.len()];
        got.push(app.anonymous().get(path).await.status().as_u16());
    }
    assert_eq!(count(&got, 200), 3, "{got:?}");
    assert_eq!(count(&got, 429), 17, "{got:?}");
    // The route label is the routed pattern, whatever the spelling.
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/api/herbs",status="429"} 17"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_ignored_or_failing_credential_is_no_way_past_the_gate() {
    let app = spawn_app_with(&[
        ("PHI_ANONYMOUS_PER_MINUTE", "60"),
        ("PHI_ANONYMOUS_BURST", "3"),
        ("PHI_AUTH_FAILURES_PER_MINUTE", "60"),
        ("PHI_AUTH_FAILURE_BURST", "5"),
    ])
    .await;
    // Cookies are off (no PHI_CSRF_ORIGINS): a payload-token cookie is
    // ignored, and its bearer is anonymous, limits and all.
    let url = app.url("/api/herbs");
    let got = statuses(&app, 10, || {
        app.client
            .get(&url)
            .header("cookie", "payload-token=not-a-token")
    })
    .await;
    assert_eq!(count(&got, 200), 3, "{got:?}");
    assert_eq!(count(&got, 429), 7, "{got:?}");

    // A failing credential is a 401, and after a few the client's next
    // credentials are refused before they are checked (an API key would
    // cost a database transaction each).
    let app = spawn_app_with(&[
        ("PHI_AUTH_FAILURES_PER_MINUTE", "1"),
        ("PHI_AUTH_FAILURE_BURST", "5"),
    ])
    .await;
    let url = app.url("/api/symptom-submissions");
    for bad in [
        "JWT not-a-token",
        "users API-Key 0123456789abcdef0123456789abcdef",
    ] {
        let got = statuses(&app, 5, || {
            app.client.get(&url).header("authorization", bad)
        })
        .await;
        assert!(got.iter().all(|s| *s == 401 || *s == 429), "{bad}: {got:?}");
    }
    let res = app
        .client
        .get(&url)
        .header(
            "authorization",
            "users API-Key 0123456789abcdef0123456789abcdef",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u32 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // While the client is throttled, even a good token waits (the client
    // is what is throttled, not the credential); anonymous reads go on.
    let res = app
        .client
        .get(&url)
        .header("authorization", bearer("pat", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(app.anonymous().get("/api/herbs").await.status(), 200);
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("auth_failures") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_client_behind_a_trusted_proxy_is_read_from_the_right() {
    let app = spawn_app_with(&[("PHI_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let body = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]});
    let mut ids = Vec::new();
    for forwarded in ["garbage, 203.0.113.5", "203.0.113.5, garbage"] {
        let res = app
            .as_patient("pat")
            .header("x-forwarded-for", forwarded)
            .post("/api/symptom-submissions", &body)
            .await;
        assert_eq!(res.status(), 201);
        ids.push(json(res).await["doc"]["id"].as_str().unwrap().to_string());
    }
    let pool = app.db.admin_pool().await;
    let addr = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT client_addr FROM audit.log WHERE action = 'CREATE' AND entity_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Left of the client is the client's own writing: ignored.
    assert_eq!(addr(ids[0].clone()).await.as_deref(), Some("203.0.113.5"));
    // An unreadable hop nearer than any client: unknown, never the proxy.
    assert_eq!(addr(ids[1].clone()).await, None);
}

#[tokio::test]
async fn two_credentials_and_other_encodings_are_refused() {
    let app = spawn_app_with(&[]).await;
    let url = app.url("/api/symptom-submissions");
    let res = app
        .client
        .get(&url)
        .header("authorization", bearer("a", &[]))
        .header("authorization", bearer("b", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(json(res).await.to_string().contains("Authorization"));
    for cookies in [
        vec!["payload-token=a; payload-token=b"],
        vec!["payload-token=a", "theme=dark; payload-token=b"],
    ] {
        let mut req = app.client.get(&url);
        for c in &cookies {
            req = req.header("cookie", *c);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 400, "{cookies:?}");
    }
    let body = r#"{"symptoms":[{"name":"Cough","severity":2,"onset":"2026-02-01"}]}"#;
    for (ct, status) in [
        ("application/json; charset=latin1", 415),
        ("application/json; charset=\"ISO-8859-1\"", 415),
        ("application/json; charset=utf-16", 415),
        ("application/json; charset=UTF-8", 201),
        ("application/json; charset=\"utf-8\"", 201),
    ] {
        let res = app
            .as_patient("pat")
            .req(Method::POST, "/api/symptom-submissions")
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{ct}");
    }
}

#[tokio::test]
async fn every_get_route_answers_head_and_nothing_is_sniffed() {
    let app = spawn_app_with(&[]).await;
    for path in [
        "/health",
        "/health/database",
        "/api/herbs",
        "/api/openapi.json",
    ] {
        let res = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(
            res.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    let res = app
        .as_patient("pat")
        .req(Method::HEAD, "/api/symptom-submissions")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.anonymous().get("/api/nothing").await;
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
}
