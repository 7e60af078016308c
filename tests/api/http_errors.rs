//! Error shapes the router and middleware produce (bodies are covered with
//! each collection's tests).

use crate::helpers::{error_message, json, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_path_is_404_in_payload_shape() {
    let app = spawn_app().await;
    let res = app.get("/api/nothing-here").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
    let body = json(res).await;
    assert_eq!(
        error_message(&body),
        "The requested resource was not found."
    );
}

#[tokio::test]
async fn wrong_method_on_known_path_is_405_in_payload_shape() {
    let app = spawn_app().await;
    for path in ["/health", "/health/database", "/health/audit"] {
        let res = app.client.delete(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 405, "{path}");
        let body = json(res).await;
        assert_eq!(error_message(&body), "Method not allowed.");
    }
}

#[tokio::test]
async fn declared_body_over_the_limit_is_413_before_routing() {
    let app = spawn_app_with(&[("PHI_MAX_BODY_BYTES", "1024")]).await;
    let res = app
        .client
        .post(app.url("/health"))
        .header("content-type", "application/json")
        .body(vec![b' '; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body = json(res).await;
    assert_eq!(error_message(&body), "The request body is too large.");
}
