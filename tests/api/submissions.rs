use serde_json::{Value, json};

use crate::helpers::{error_message, json, spawn_app, spawn_app_with};

const ANN: Option<(&str, &[&str])> = Some(("ann", &[]));
const BOB: Option<(&str, &[&str])> = Some(("1007", &[]));

fn submission(notes: &str, email: &str) -> Value {
    json!({
        "symptoms": [
            {"name": "Lower back pain", "severity": 6, "onset": "2026-10-01", "notes": "worse at night"},
            {"name": "Insomnia", "severity": 4, "onset": "2026-09-15"}
        ],
        "notes": notes,
        "contactEmail": email,
        "dateOfBirth": "1984-03-09",
        "region": "CA-ON"
    })
}

async fn count(app: &crate::helpers::TestApp) -> i64 {
    let mut admin = app.admin().await;
    sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn owners_create_read_update_and_delete_their_own() {
    let app = spawn_app().await;
    let res = app
        .caller(ANN)
        .post(
            "/api/symptom-submissions",
            &submission("Started after a fall.", "ann@example.org"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    assert_eq!(body["message"], "Symptom submission successfully created.");
    let doc = &body["doc"];
    let id = doc["id"].as_str().unwrap().to_string();
    assert_eq!(doc["owner"], "users:ann");
    assert_eq!(doc["region"], "CA-ON");
    assert_eq!(doc["status"], "submitted");
    assert_eq!(doc["notes"], "Started after a fall.");
    assert_eq!(doc["dateOfBirth"], "1984-03-09");
    assert_eq!(doc["ageBand"], "40-49");
    assert_eq!(doc["symptomCategories"], json!(["pain", "sleep"]));
    assert_eq!(doc["symptoms"][0]["notes"], "worse at night");

    let got = json(
        app.caller(ANN)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await,
    )
    .await;
    assert_eq!(got["contactEmail"], "ann@example.org");

    let res = app
        .caller(ANN)
        .patch(
            &format!("/api/symptom-submissions/{id}"),
            &json!({"notes": null, "status": "archived"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let doc = json(res).await["doc"].clone();
    assert_eq!(doc["notes"], Value::Null);
    assert_eq!(doc["status"], "archived");
    assert_eq!(
        doc["symptoms"].as_array().unwrap().len(),
        2,
        "untouched sealed fields still open"
    );

    let list = json(
        app.caller(ANN)
            .get("/api/symptom-submissions?where[contactEmail][equals]=ANN@example.org")
            .await,
    )
    .await;
    assert_eq!(list["totalDocs"], 1);

    assert_eq!(
        app.caller(ANN)
            .delete(&format!("/api/symptom-submissions/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.caller(ANN)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn nobody_else_learns_a_submission_exists() {
    let app = spawn_app().await;
    let body = json(
        app.caller(ANN)
            .post(
                "/api/symptom-submissions",
                &submission("n", "a@example.org"),
            )
            .await,
    )
    .await;
    let id = body["doc"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/symptom-submissions/{id}");
    for who in [
        BOB,
        Some(("ed", &["editor"][..])),
        Some(("root", &["admin"][..])),
    ] {
        assert_eq!(app.caller(who).get(&path).await.status(), 404, "{who:?}");
        assert_eq!(
            app.caller(who)
                .patch(&path, &json!({"notes": "x"}))
                .await
                .status(),
            404
        );
        assert_eq!(app.caller(who).delete(&path).await.status(), 404);
        let list = json(app.caller(who).get("/api/symptom-submissions").await).await;
        assert_eq!(list["totalDocs"], 0, "{who:?}");
    }
    assert_eq!(app.caller(None).get(&path).await.status(), 401);
    // The owner's record is untouched.
    let doc = json(app.caller(ANN).get(&path).await).await;
    assert_eq!(doc["notes"], "n");
    // An admin with a break-glass reason can read it.
    let res = app
        .caller(Some(("root", &["admin"])))
        .req(reqwest::Method::GET, &path)
        .header("x-break-glass-reason", "patient unconscious in ER")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn phi_is_never_stored_in_clear() {
    let app = spawn_app().await;
    let canaries = [
        "CANARY-NOTES-7f3a",
        "canary.email.91@example.org",
        "CANARY-SYMPTOM-5e2",
    ];
    let mut body = submission(canaries[0], canaries[1]);
    body["symptoms"][0]["name"] = json!(canaries[2]);
    assert_eq!(
        app.caller(ANN)
            .post("/api/symptom-submissions", &body)
            .await
            .status(),
        201
    );
    let mut admin = app.admin().await;
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT convert_to(t::text, 'UTF8') FROM symptom_submissions t")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    let raw: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT symptoms || coalesce(notes, '') || coalesce(contact_email, '') || coalesce(date_of_birth, '') \
         || coalesce(region, '') FROM symptom_submissions",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for bytes in rows.iter().chain(raw.iter()) {
        for c in canaries.iter().chain(["1984-03-09", "CA-ON"].iter()) {
            assert!(
                !bytes.windows(c.len()).any(|w| w == c.as_bytes()),
                "{c} found at rest"
            );
        }
    }
}

#[tokio::test]
async fn bad_submissions_get_clear_errors_and_write_nothing() {
    let app = spawn_app_with(&[("PHI_MAX_BODY_BYTES", "65536")]).await;
    let long_notes = "x".repeat(10_001);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"symptoms": []}), "symptoms"),
        (
            json!({"symptoms": [{"name": "a", "severity": 11, "onset": "2026-01-01"}]}),
            "symptoms[0].severity",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2999-01-01"}]}),
            "symptoms[0].onset",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "someday"}]}),
            "symptoms[0].onset",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "notes": long_notes}),
            "notes",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "owner": "bob"}),
            "owner",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "practitionerId": "nope"}),
            "practitionerId",
        ),
        (
            json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "practitionerId": uuid::Uuid::now_v7()}),
            "practitionerId",
        ),
        (json!({"notes": "only notes"}), "symptoms"),
    ];
    for (body, path) in cases {
        let res = app
            .caller(ANN)
            .post("/api/symptom-submissions", &body)
            .await;
        assert_eq!(res.status(), 400, "{path}");
        let err = json(res).await;
        let text = err.to_string();
        assert!(
            !text.contains("someday") && !text.contains("xxxxxxxxxx"),
            "value echoed: {text}"
        );
        let paths: Vec<String> = err["errors"][0]["data"]["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{err}"))
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect();
        assert!(paths.iter().any(|p| p == path), "{path}: {err}");
    }
    // Wrong content type, malformed JSON, oversize body, bad id.
    let res = app
        .caller(ANN)
        .req(reqwest::Method::POST, "/api/symptom-submissions")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(
        error_message(&json(res).await),
        "Content-Type must be application/json."
    );
    let res = app
        .caller(ANN)
        .req(reqwest::Method::POST, "/api/symptom-submissions")
        .header("content-type", "application/json")
        .body("{\"symptoms\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        error_message(&json(res).await),
        "The request body is not valid JSON."
    );
    let huge = json!({"symptoms": [{"name": "a", "severity": 1, "onset": "2026-01-01"}], "notes": "y".repeat(70_000)});
    let res = app
        .caller(ANN)
        .post("/api/symptom-submissions", &huge)
        .await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        error_message(&json(res).await),
        "The request body is too large."
    );
    // Chunked (no Content-Length) bodies are bounded too.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
        serde_json::to_vec(&huge).unwrap(),
    )]);
    let res = app
        .caller(ANN)
        .req(reqwest::Method::POST, "/api/symptom-submissions")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        app.caller(ANN)
            .get("/api/symptom-submissions/not-a-uuid")
            .await
            .status(),
        404
    );
    let res = app
        .caller(ANN)
        .get("/api/symptom-submissions?limit=100000")
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(count(&app).await, 0);
}
