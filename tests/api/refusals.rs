//! Every refusal is on the record (issue 20, section 2): the cases the
//! findings named, beyond those the generated field test covers (each
//! field written by everyone who may not: tests/api/fields.rs).

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, json, spawn_app};

/// The ACCESS_DENIED entries of the request that got `res`.
async fn entries_of(
    pool: &PgPool,
    res: &reqwest::Response,
) -> Vec<(String, Vec<String>, Option<String>)> {
    let request = res.headers()["x-request-id"].to_str().unwrap().to_string();
    sqlx::query_as(
        "SELECT entity_type, fields, reason FROM audit.log \
         WHERE action = 'ACCESS_DENIED' AND request_id = $1",
    )
    .bind(request)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn created(res: reqwest::Response) -> Value {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"].clone()
}

async fn submission(app: &TestApp, owner: &str) -> String {
    created(
        app.as_patient(owner)
            .post(
                "/api/symptom-submissions",
                &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}),
            )
            .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_patient_marking_their_own_submission_reviewed_is_refused_on_the_record() {
    let app = spawn_app().await;
    let pool = app.db.admin_pool().await;
    let id = submission(&app, "pat").await;
    let reviewed = json!({"status": "reviewed"});
    let tries = [
        app.as_patient("pat")
            .patch(&format!("/api/symptom-submissions/{id}"), &reviewed)
            .await,
        app.as_patient("pat")
            .patch(
                &format!("/api/symptom-submissions?where[id][equals]={id}"),
                &reviewed,
            )
            .await,
        app.as_patient("pat")
            .post(
                "/api/symptom-submissions",
                &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}],
                        "status": "reviewed"}),
            )
            .await,
    ];
    for (res, action) in tries.iter().zip(["UPDATE", "UPDATE", "CREATE"]) {
        assert_eq!(res.status(), 403, "{action}");
        let rows = entries_of(&pool, res).await;
        assert_eq!(rows.len(), 1, "{action}: {rows:?}");
        let (table, fields, reason) = &rows[0];
        assert_eq!(table, "symptom_submissions");
        assert!(fields.contains(&"status".to_string()), "{fields:?}");
        let reason = reason.as_deref().unwrap_or("");
        assert!(reason.starts_with(&format!("{action} refused")), "{reason}");
        assert!(reason.contains("reviewed"), "{reason}");
    }
    // Nothing changed, nothing was created.
    let list = json(app.as_patient("pat").get("/api/symptom-submissions").await).await;
    assert_eq!(list["totalDocs"], 1);
    assert_eq!(list["docs"][0]["status"], "submitted");
}

#[tokio::test]
async fn practitioners_and_patients_editing_a_listing_not_theirs_are_on_the_record() {
    let app = spawn_app().await;
    let pool = app.db.admin_pool().await;
    let listing = created(
        app.as_admin()
            .post(
                "/api/practitioners",
                &json!({"name": "Dr A", "slug": "dr-a", "status": "published",
                        "location": {"lat": 51.5, "lon": -0.1}, "userId": "users:doc-a"}),
            )
            .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/practitioners/{listing}");
    let other = app.as_user("doc-b", &["practitioner"]);
    let patient = app.as_patient("pat");
    let own = app.as_user("doc-a", &["practitioner"]);
    for (res, field) in [
        (other.patch(&path, &json!({"bio": "mine now"})).await, "bio"),
        (patient.patch(&path, &json!({"name": "Dr Z"})).await, "name"),
        (own.patch(&path, &json!({"slug": "dr-a-2"})).await, "slug"),
        (
            own.patch(&path, &json!({"status": "draft"})).await,
            "status",
        ),
        (
            own.patch(&path, &json!({"email": "a@example.org"})).await,
            "email",
        ),
    ] {
        assert_eq!(res.status(), 403, "{field}");
        let rows = entries_of(&pool, &res).await;
        assert_eq!(rows.len(), 1, "{field}: {rows:?}");
        assert_eq!(rows[0].0, "practitioners");
        assert_eq!(rows[0].1, vec![field.to_string()]);
    }
    // The practitioner's own profile edit goes through.
    assert_eq!(
        own.patch(&path, &json!({"bio": "Twenty years."}))
            .await
            .status(),
        200
    );
    // An email another (unpublished) listing uses and one nobody uses get
    // the same answer: a listing's email is unique, and a collision would
    // tell the practitioner the other listing's address.
    let draft = json!({"name": "Dr D", "slug": "dr-d", "status": "draft",
                       "location": {"lat": 51.5, "lon": -0.1}, "email": "hidden@example.org"});
    assert_eq!(
        app.as_admin()
            .post("/api/practitioners", &draft)
            .await
            .status(),
        201
    );
    let mut answers = Vec::new();
    for email in ["hidden@example.org", "nobody@example.org"] {
        let res = own.patch(&path, &json!({"email": email})).await;
        answers.push((res.status().as_u16(), json(res).await));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 403);
}

#[tokio::test]
async fn an_empty_break_glass_reason_is_refused_not_ignored() {
    let app = spawn_app().await;
    let id = submission(&app, "pat").await;
    let path = format!("/api/symptom-submissions/{id}");
    for reason in ["", "   "] {
        let res = app
            .as_admin()
            .header("x-break-glass-reason", reason)
            .get(&path)
            .await;
        assert_eq!(res.status(), 400, "{reason:?}");
        let body = json(res).await;
        assert!(body.to_string().contains("X-Break-Glass-Reason"), "{body}");
    }
    // With a reason, the emergency read is served (and recorded).
    let res = app
        .as_admin()
        .break_glass("ER admission 22:10")
        .get(&path)
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_service_key_owns_no_submission_and_links_stay_in_known_collections() {
    let app = spawn_app().await;
    // An admin linking a user of a collection that does not sign in here.
    let res = app
        .as_admin()
        .post(
            "/api/practitioners",
            &json!({"name": "Dr Q", "slug": "dr-q", "location": {"lat": 1.0, "lon": 1.0},
                    "userId": "customers:7"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(
        body["errors"][0]["data"]["errors"][0]["path"], "userId",
        "{body}"
    );
    // Identical consents are one consent.
    let p = created(
        app.as_admin()
            .post(
                "/api/practitioners",
                &json!({"name": "Dr R", "slug": "dr-r", "status": "published",
                        "location": {"lat": 1.0, "lon": 1.0}, "userId": "users:doc-r"}),
            )
            .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = json!({"practitionerId": p});
    let first = created(app.as_patient("pat").post("/api/consents", &consent).await).await;
    let res = app.as_patient("pat").post("/api/consents", &consent).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["doc"]["id"], first["id"]);
    let list = json(app.as_patient("pat").get("/api/consents").await).await;
    assert_eq!(list["totalDocs"], 1);
    // Unknown, unpublished or unlinked: one answer, which says none of it.
    let unlinked = created(
        app.as_admin()
            .post(
                "/api/practitioners",
                &json!({"name": "Dr S", "slug": "dr-s", "status": "published",
                        "location": {"lat": 1.0, "lon": 1.0}}),
            )
            .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut messages = Vec::new();
    for target in [unlinked, uuid::Uuid::now_v7().to_string()] {
        let res = app
            .as_patient("pat")
            .post("/api/consents", &json!({"practitionerId": target}))
            .await;
        assert_eq!(res.status(), 400);
        messages.push(json(res).await);
    }
    assert_eq!(messages[0], messages[1]);
}
