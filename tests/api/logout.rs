//! A logged-out Payload session is refused at the gateway too (issue 24):
//! the plugin's `afterLogout` hook posts the token to `/api/auth/logout`,
//! and from then on every token of that session (Payload's `sid`), or that
//! very token for a collection without sessions, gets a 401 on the record,
//! while the user's other sessions go on.

use secrecy::SecretString;
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{PAYLOAD_SECRET, json, spawn_app};

/// A token as Payload signs it, with its session id when given.
fn token(user: &str, sid: Option<&str>, iat_offset: i64) -> String {
    let v = phi_gateway::auth::JwtVerifier::new(
        &SecretString::from(PAYLOAD_SECRET),
        vec!["users".into()],
        30,
    );
    let now = chrono::Utc::now().timestamp() + iat_offset;
    let mut claims = json!({"id": user, "collection": "users", "email": "x@example.org",
                            "iat": now, "exp": now + 3600, "roles": []});
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    v.sign(&claims)
}

#[tokio::test]
async fn a_logged_out_session_is_refused_and_the_others_go_on() {
    let app = spawn_app().await;
    let get = |t: String| {
        let req = app
            .client
            .get(app.url("/api/symptom-submissions"))
            .header("authorization", format!("JWT {t}"));
        async move { req.send().await.unwrap() }
    };
    let logout = |t: Option<String>| {
        let mut req = app.client.post(app.url("/api/auth/logout"));
        if let Some(t) = t {
            req = req.header("authorization", format!("JWT {t}"));
        }
        async move { req.send().await.unwrap() }
    };
    let phone = token("pat", Some("6f1c1f4e-phone"), 0);
    let phone_later = token("pat", Some("6f1c1f4e-phone"), -5);
    let laptop = token("pat", Some("0b9d7a2c-laptop"), 0);
    assert_eq!(get(phone.clone()).await.status(), 200);
    // A create and a read by id are one statement each, which checks the
    // session itself (`app_begin`): the same refusal after the logout.
    let create = |t: String| {
        let req = app
            .client
            .post(app.url("/api/symptom-submissions"))
            .header("authorization", format!("JWT {t}"))
            .json(&json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-01-01"}]}));
        async move { req.send().await.unwrap() }
    };
    let res = create(phone.clone()).await;
    assert_eq!(res.status(), 201);
    let mine = format!(
        "/api/symptom-submissions/{}",
        json(res).await["doc"]["id"].as_str().unwrap()
    );
    let read = |t: String| {
        let req = app
            .client
            .get(app.url(&mine))
            .header("authorization", format!("JWT {t}"));
        async move { req.send().await.unwrap() }
    };
    assert_eq!(read(phone.clone()).await.status(), 200);

    let res = logout(Some(phone.clone())).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["message"], "Logout successful.");

    // Every token of that session is refused, with a message that says why,
    // on the record; another session of the same user is not.
    for t in [phone.clone(), phone_later] {
        let res = get(t).await;
        assert_eq!(res.status(), 401);
        let request = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let body = json(res).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("logged out"),
            "{body}"
        );
        let on_record: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit.log WHERE request_id = $1 AND outcome = 'denied' \
             AND actor_user = 'users:pat'",
        )
        .bind(&request)
        .fetch_one(&mut app.admin().await)
        .await
        .unwrap();
        assert_eq!(on_record, 1, "the refusal of {request} is on the record");
    }
    assert_eq!(get(laptop.clone()).await.status(), 200);
    for res in [create(phone.clone()).await, read(phone.clone()).await] {
        assert_eq!(res.status(), 401);
        let body = json(res).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("logged out"),
            "{body}"
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&mut app.admin().await)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the refused create wrote nothing");
    assert_eq!(read(laptop.clone()).await.status(), 200);
    // Logging out twice: the token is dead already, and the refusal is on
    // the record too.
    let phone_again = phone.clone();
    let again = logout(Some(phone)).await;
    assert_eq!(again.status(), 401);
    let request = again.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let entry: (String, String, String) = sqlx::query_as(
        "SELECT action::text, entity_type, outcome FROM audit.log WHERE request_id = $1 \
         AND actor_user = 'users:pat'",
    )
    .bind(&request)
    .fetch_one(&mut app.admin().await)
    .await
    .unwrap();
    assert_eq!(
        entry,
        ("ACCESS_DENIED".into(), "sessions".into(), "denied".into())
    );

    // However the path is spelled, the route is behind the gate: the same
    // 401, on the record.
    let spelled = app
        .client
        .post(app.url("/%61pi/auth/%6cogout"))
        .header("authorization", format!("JWT {phone_again}"))
        .send()
        .await
        .unwrap();
    assert_eq!(spelled.status(), 401);
    let request = spelled.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE request_id = $1 AND outcome = 'denied'",
    )
    .bind(&request)
    .fetch_one(&mut app.admin().await)
    .await
    .unwrap();
    assert_eq!(denied, 1, "the refusal of {request} is on the record");

    // Without sessions (no sid): that token alone.
    let old = token("pat", None, -10);
    let new = token("pat", None, 0);
    assert_eq!(logout(Some(old.clone())).await.status(), 200);
    assert_eq!(get(old).await.status(), 401);
    assert_eq!(get(new).await.status(), 200);

    // Nobody's session to end.
    assert_eq!(logout(None).await.status(), 401);
    let key = app
        .client
        .post(app.url("/api/auth/logout"))
        .header(
            "authorization",
            "users API-Key 0123456789abcdef0123456789abcdef",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 401, "an unknown API key is refused first");

    // The table keeps the session key only (the user and Payload's session
    // id, or a digest of the token): no token, no claim.
    let kept: Vec<String> = sqlx::query_scalar("SELECT session FROM auth_logouts ORDER BY session")
        .fetch_all(&mut app.admin().await)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0], "users:pat#sid:6f1c1f4e-phone");
    assert!(kept[1].starts_with("users:pat#sig:") && kept[1].len() == "users:pat#sig:".len() + 32);

    // phi_app cannot end another user's session, even by calling the
    // function itself with another identity's key.
    let mut conn = sqlx::PgConnection::connect(&app.db.app_url())
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.user_id', 'users:mallory', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query(
        "SELECT app_end_session('users:pat#sid:0b9d7a2c-laptop', now() + interval '1 hour')",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("own session"), "{refused}");
    tx.rollback().await.unwrap();
    let denied = sqlx::query("SELECT * FROM auth_logouts")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    assert_eq!(get(laptop).await.status(), 200);
}
