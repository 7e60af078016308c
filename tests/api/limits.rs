//! No query an anonymous caller can make expensive (issue 13): a burst of
//! costly public queries leaves signed-in callers their connections, each
//! client has a rate, and deep pages and wide radii are refused clearly.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Executor;

use crate::helpers::{error_message, json, spawn_app_with};

#[tokio::test]
async fn a_burst_of_expensive_anonymous_queries_does_not_fail_a_signed_in_create() {
    // A small pool, a short wait for it: without the gate, the burst holds
    // every connection and the creates time out (503).
    let app = spawn_app_with(&[
        ("DATABASE_MAX_CONNECTIONS", "4"),
        ("DATABASE_ACQUIRE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut admin = app.admin().await;
    admin
        .execute(
            "SET session_replication_role = replica;
             INSERT INTO practitioners (id, slug, name, city, region, country, status, lat, lon, earth)
               SELECT gen_random_uuid(), 'practitioner-' || i, 'Practitioner number ' || i,
                      'Somewhere upon the river ' || i, 'A region of some size', 'A country far away',
                      'published', 0, 0, phi_earth(0, 0)
               FROM generate_series(1, 150000) i;
             ANALYZE practitioners",
        )
        .await
        .unwrap();
    // As costly as a list may be: sixteen conditions of eight `like` words,
    // over every row (the anonymous statement timeout ends the worst).
    let words = "zq%20xv%20wk%20jq%20vx%20qz%20kw%20xj";
    let expensive = format!(
        "/api/practitioners?{}",
        (0..16)
            .map(|i| {
                let field = ["name", "city", "region", "country"][i % 4];
                format!("where[or][{i}][{field}][like]={words}")
            })
            .collect::<Vec<_>>()
            .join("&")
    );
    let started = Instant::now();
    // Half the flood carries a payload-token cookie, which is ignored here
    // (cookies are off): it is anonymous all the same, gate and all (it
    // once walked past the gate and held every connection: issue 20).
    let floods: Vec<_> = (0..24)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url(&expensive);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while started.elapsed() < Duration::from_secs(4) {
                    let mut req = client.get(&url);
                    if i % 2 == 1 {
                        req = req.header("cookie", "payload-token=bogus");
                    }
                    let res = req.send().await.unwrap();
                    statuses.push(res.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut creates = Vec::new();
    for i in 0..15 {
        let res = app
            .as_patient("pat")
            .post(
                "/api/symptom-submissions",
                &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-01-01"}],
                        "notes": format!("during the burst {i}")}),
            )
            .await;
        creates.push(res.status().as_u16());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut anonymous = Vec::new();
    for f in floods {
        anonymous.extend(f.await.unwrap());
    }
    assert!(
        creates.iter().all(|s| *s == 201),
        "creates during the burst: {creates:?}"
    );
    // The burst was real: some anonymous queries ran, the rest were told
    // to come back (503 with Retry-After), none failed otherwise.
    assert!(anonymous.contains(&200), "{anonymous:?}");
    assert!(
        anonymous.contains(&503),
        "the gate never engaged: {anonymous:?}"
    );
    assert!(
        anonymous.iter().all(|s| *s == 200 || *s == 503),
        "{:?}",
        anonymous
            .iter()
            .filter(|s| **s != 200 && **s != 503)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn each_client_has_a_rate_and_signed_in_callers_are_not_counted() {
    let app = spawn_app_with(&[
        ("PHI_ANONYMOUS_PER_MINUTE", "60"),
        ("PHI_ANONYMOUS_BURST", "3"),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(app.anonymous().get("/api/herbs").await.status(), 200);
    }
    let res = app.anonymous().get("/api/herbs").await;
    assert_eq!(res.status(), 429);
    let retry: u32 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = json(res).await;
    assert!(error_message(&body).contains("Too many"), "{body}");
    // Signed-in callers from the same address, and the free routes, pass.
    for _ in 0..5 {
        assert_eq!(app.as_editor().get("/api/herbs").await.status(), 200);
    }
    assert_eq!(app.anonymous().get("/api/openapi.json").await.status(), 200);
    assert_eq!(app.anonymous().get("/health").await.status(), 200);
    // The refusals are counted for operators.
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("anonymous_rate") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_work_a_list_may_ask_for_is_bounded_with_clear_errors() {
    let app = spawn_app_with(&[]).await;
    for (path, says) in [
        ("/api/herbs?limit=100&page=102", "narrow"),
        (
            "/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=5000",
            "radius",
        ),
    ] {
        let res = app.anonymous().get(path).await;
        assert_eq!(res.status(), 400, "{path}");
        let msg = error_message(&json(res).await);
        assert!(msg.to_lowercase().contains(says), "{path}: {msg}");
    }
}
