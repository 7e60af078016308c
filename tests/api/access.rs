//! Who may do what, decided by PostgreSQL row-level security, checked cell by
//! cell: every actor x every operation x every collection.

use std::collections::BTreeSet;

use phi_gateway::identity::{Principal, Role};
use phi_gateway::store;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor};

use crate::helpers::{Caller, TestApp, json, spawn_app};

type Who = Option<(&'static str, &'static [&'static str])>;

const ANON: Who = None;
const PAT_A: Who = Some(("pat-a", &[]));
const PAT_B: Who = Some(("pat-b", &[]));
const DOC_YES: Who = Some(("doc-yes", &["practitioner"]));
const DOC_NO: Who = Some(("doc-no", &["practitioner"]));
const EDITOR: Who = Some(("ed", &["editor"]));
const ADMIN: Who = Some(("adm", &["admin"]));
const AUDITOR: Who = Some(("aud", &["auditor"]));
/// Admin with an `X-Break-Glass-Reason` header.
const ADMIN_BG: Who = Some(("adm-bg", &["admin"]));

const ACTORS: &[(&str, Who)] = &[
    ("anonymous", ANON),
    ("patient A", PAT_A),
    ("patient B", PAT_B),
    ("practitioner with consent", DOC_YES),
    ("practitioner without", DOC_NO),
    ("editor", EDITOR),
    ("admin", ADMIN),
    ("admin with break-glass", ADMIN_BG),
    ("auditor", AUDITOR),
];

/// The caller for an actor of the matrix: the admin with break-glass is the
/// admin's token plus its reason header.
fn actor<'a>(app: &'a TestApp, who: Who) -> Caller<'a> {
    let caller = app.caller(who);
    if who == ADMIN_BG {
        caller.break_glass("incident 4711: patient unresponsive")
    } else {
        caller
    }
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    who: Who,
    body: Option<&Value>,
) -> reqwest::Response {
    actor(app, who).send(method, path, body).await
}

async fn id_of(res: reqwest::Response) -> String {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"]["id"].as_str().unwrap().to_string()
}

struct World {
    sub_a: String,
    sub_b: String,
    p1: String,
    p3_draft: String,
    p_del: Vec<String>,
    herb_pub: String,
    herb_draft: String,
    herb_del: Vec<String>,
    consent_a: String,
}

fn practitioner(slug: &str, status: &str, user: Option<&str>) -> Value {
    json!({"name": slug, "slug": slug, "status": status, "location": {"lat": 51.5, "lon": -0.1},
           "userId": user.map(|u| format!("users:{u}"))})
}

async fn world(app: &TestApp) -> World {
    // Linking a CMS user to a practitioner is an admin's act.
    let p1 = id_of(
        app.caller(ADMIN)
            .post(
                "/api/practitioners",
                &practitioner("p1", "published", Some("doc-yes")),
            )
            .await,
    )
    .await;
    let _p2 = id_of(
        app.caller(ADMIN)
            .post(
                "/api/practitioners",
                &practitioner("p2", "published", Some("doc-no")),
            )
            .await,
    )
    .await;
    let p3_draft = id_of(
        app.caller(EDITOR)
            .post("/api/practitioners", &practitioner("p3", "draft", None))
            .await,
    )
    .await;
    let mut p_del = Vec::new();
    for i in 0..3 {
        p_del.push(
            id_of(
                app.caller(EDITOR)
                    .post(
                        "/api/practitioners",
                        &practitioner(&format!("del-{i}"), "published", None),
                    )
                    .await,
            )
            .await,
        );
    }
    let herb = |slug: &str, status: &str| json!({"name": slug, "slug": slug, "status": status});
    let herb_pub = id_of(
        app.caller(EDITOR)
            .post("/api/herbs", &herb("h-pub", "published"))
            .await,
    )
    .await;
    let herb_draft = id_of(
        app.caller(EDITOR)
            .post("/api/herbs", &herb("h-draft", "draft"))
            .await,
    )
    .await;
    let mut herb_del = Vec::new();
    for i in 0..3 {
        herb_del.push(
            id_of(
                app.caller(EDITOR)
                    .post("/api/herbs", &herb(&format!("h-del-{i}"), "published"))
                    .await,
            )
            .await,
        );
    }
    let sub = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}], "notes": "private"});
    let sub_a = id_of(
        app.caller(PAT_A)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let sub_b = id_of(
        app.caller(PAT_B)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let consent_a = id_of(
        app.caller(PAT_A)
            .post("/api/consents", &json!({"practitionerId": p1}))
            .await,
    )
    .await;
    World {
        sub_a,
        sub_b,
        p1,
        p3_draft,
        p_del,
        herb_pub,
        herb_draft,
        herb_del,
        consent_a,
    }
}

async fn list_ids(app: &TestApp, path: &str, who: Who) -> (u16, BTreeSet<String>) {
    let res = call(app, Method::GET, &format!("{path}?limit=100"), who, None).await;
    let status = res.status().as_u16();
    let body = json(res).await;
    let ids = body["docs"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_access_matrix() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let pubs = {
        // Every published practitioner: p1, p2 and the three del-*.
        let (_, ids) = list_ids(&app, "/api/practitioners", ANON).await;
        assert_eq!(ids.len(), 5);
        ids
    };
    let mut all_practitioners = pubs.clone();
    all_practitioners.insert(w.p3_draft.clone());
    let herbs_pub: BTreeSet<String> =
        set(&[&w.herb_pub, &w.herb_del[0], &w.herb_del[1], &w.herb_del[2]]);
    let mut herbs_all = herbs_pub.clone();
    herbs_all.insert(w.herb_draft.clone());
    let none = BTreeSet::new();

    // --- list (exact id sets) and get --------------------------------------
    // (actor, submissions list, get sub_a, practitioners list, get draft, herbs list, get draft herb, consents list)
    type Row = (
        Who,
        (u16, BTreeSet<String>),
        u16,
        BTreeSet<String>,
        u16,
        BTreeSet<String>,
        u16,
        (u16, BTreeSet<String>),
    );
    let rows: Vec<Row> = vec![
        (
            ANON,
            (401, none.clone()),
            401,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (401, none.clone()),
        ),
        (
            PAT_A,
            (200, set(&[&w.sub_a])),
            200,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (200, set(&[&w.consent_a])),
        ),
        (
            PAT_B,
            (200, set(&[&w.sub_b])),
            404,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (200, none.clone()),
        ),
        (
            DOC_YES,
            (200, set(&[&w.sub_a])),
            200,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (200, set(&[&w.consent_a])),
        ),
        (
            DOC_NO,
            (200, none.clone()),
            404,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (200, none.clone()),
        ),
        (
            EDITOR,
            (200, none.clone()),
            404,
            all_practitioners.clone(),
            200,
            herbs_all.clone(),
            200,
            (200, none.clone()),
        ),
        (
            ADMIN,
            (200, none.clone()),
            404,
            all_practitioners.clone(),
            200,
            herbs_all.clone(),
            200,
            (200, none.clone()),
        ),
        (
            ADMIN_BG,
            (200, set(&[&w.sub_a, &w.sub_b])),
            200,
            all_practitioners.clone(),
            200,
            herbs_all.clone(),
            200,
            (200, none.clone()),
        ),
        (
            AUDITOR,
            (200, none.clone()),
            404,
            pubs.clone(),
            404,
            herbs_pub.clone(),
            404,
            (200, none.clone()),
        ),
    ];
    for (who, subs, get_sub, prac, get_draft, herbs, get_herb, consents) in rows {
        let name = ACTORS.iter().find(|(_, w)| *w == who).unwrap().0;
        let got = list_ids(&app, "/api/symptom-submissions", who).await;
        assert_eq!(got.0, subs.0, "{name}: list submissions status");
        assert_eq!(got.1, subs.1, "{name}: list submissions ids");
        let s = call(
            &app,
            Method::GET,
            &format!("/api/symptom-submissions/{}", w.sub_a),
            who,
            None,
        )
        .await
        .status();
        assert_eq!(s, get_sub, "{name}: get submission");
        assert_eq!(
            list_ids(&app, "/api/practitioners", who).await,
            (200, prac),
            "{name}: list practitioners"
        );
        let s = call(
            &app,
            Method::GET,
            &format!("/api/practitioners/{}", w.p3_draft),
            who,
            None,
        )
        .await
        .status();
        assert_eq!(s, get_draft, "{name}: get draft practitioner");
        assert_eq!(
            list_ids(&app, "/api/herbs", who).await,
            (200, herbs),
            "{name}: list herbs"
        );
        let s = call(
            &app,
            Method::GET,
            &format!("/api/herbs/{}", w.herb_draft),
            who,
            None,
        )
        .await
        .status();
        assert_eq!(s, get_herb, "{name}: get draft herb");
        assert_eq!(
            list_ids(&app, "/api/consents", who).await,
            consents,
            "{name}: list consents"
        );
        // Consents have no get-by-id or update: 405 for everyone.
        let s = call(
            &app,
            Method::GET,
            &format!("/api/consents/{}", w.consent_a),
            who,
            None,
        )
        .await
        .status();
        assert_eq!(s, 405, "{name}: get consent");
        let s = call(
            &app,
            Method::PATCH,
            &format!("/api/consents/{}", w.consent_a),
            who,
            Some(&json!({})),
        )
        .await
        .status();
        assert_eq!(s, 405, "{name}: update consent");
    }

    // --- update ------------------------------------------------------------
    // (actor, submission A, practitioner p1, published herb)
    let updates: &[(Who, u16, u16, u16)] = &[
        (ANON, 401, 401, 401),
        (PAT_B, 404, 403, 403),
        (DOC_YES, 403, 200, 403),
        (DOC_NO, 404, 403, 403),
        (EDITOR, 404, 200, 200),
        (ADMIN, 404, 200, 200),
        (ADMIN_BG, 404, 200, 200),
        (AUDITOR, 404, 403, 403),
        (PAT_A, 200, 403, 403),
    ];
    for (who, sub, prac, herb) in updates {
        let name = ACTORS.iter().find(|(_, w)| w == who).unwrap().0;
        let s = call(
            &app,
            Method::PATCH,
            &format!("/api/symptom-submissions/{}", w.sub_a),
            *who,
            Some(&json!({"notes": "changed"})),
        )
        .await
        .status();
        assert_eq!(s, *sub, "{name}: update submission");
        let s = call(
            &app,
            Method::PATCH,
            &format!("/api/practitioners/{}", w.p1),
            *who,
            Some(&json!({"bio": "changed"})),
        )
        .await
        .status();
        assert_eq!(s, *prac, "{name}: update practitioner");
        let s = call(
            &app,
            Method::PATCH,
            &format!("/api/herbs/{}", w.herb_pub),
            *who,
            Some(&json!({"description": "changed"})),
        )
        .await
        .status();
        assert_eq!(s, *herb, "{name}: update herb");
    }

    // --- status: owners archive, a practitioner it is shared with reviews --
    let status = |who: Who, to: &'static str| {
        let path = format!("/api/symptom-submissions/{}", w.sub_a);
        let app = &app;
        async move {
            call(app, Method::PATCH, &path, who, Some(&json!({"status": to})))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(PAT_A, "reviewed").await,
        403,
        "an owner does not review"
    );
    assert_eq!(
        status(DOC_NO, "reviewed").await,
        404,
        "not shared with them"
    );
    assert_eq!(status(DOC_YES, "reviewed").await, 200, "shared: reviewed");
    // Reviewing carries no other change: not the sealed region (which also
    // feeds the analytics facts), with the status or once reviewed.
    let sub_path = format!("/api/symptom-submissions/{}", w.sub_a);
    let region_before =
        json(call(&app, Method::GET, &sub_path, PAT_A, None).await).await["region"].clone();
    for body in [
        json!({"status": "reviewed", "region": "FR"}),
        json!({"region": "FR"}),
        json!({"status": "reviewed", "dateOfBirth": "1950-01-01"}),
    ] {
        let s = call(&app, Method::PATCH, &sub_path, DOC_YES, Some(&body))
            .await
            .status();
        assert_eq!(
            s, 403,
            "a practitioner changes nothing but the status: {body}"
        );
    }
    let region_after =
        json(call(&app, Method::GET, &sub_path, PAT_A, None).await).await["region"].clone();
    assert_eq!(region_before, region_after);
    assert_eq!(
        status(DOC_YES, "archived").await,
        403,
        "a practitioner only reviews"
    );
    assert_eq!(
        status(ADMIN_BG, "reviewed").await,
        404,
        "break-glass reads, never writes"
    );
    assert_eq!(status(PAT_A, "archived").await, 200, "an owner archives");
    assert_eq!(status(PAT_A, "submitted").await, 200, "and takes it back");

    // --- linking a CMS user is an admin's act --------------------------------
    let link = json!({"userId": "users:someone"});
    for (who, expected) in [(EDITOR, 403), (DOC_YES, 403), (ADMIN, 200)] {
        let s = call(
            &app,
            Method::PATCH,
            &format!("/api/practitioners/{}", w.p3_draft),
            who,
            Some(&link),
        )
        .await
        .status();
        assert_eq!(s, expected, "link by {who:?}");
    }

    // --- create --------------------------------------------------------------
    let sub = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]});
    for (i, (name, who)) in ACTORS.iter().enumerate() {
        let (sub_s, staff_s, consent_s) = match *who {
            None => (401, 401, 401),
            w if w == EDITOR || w == ADMIN || w == ADMIN_BG => (201, 201, 201),
            _ => (201, 403, 201),
        };
        let s = call(
            &app,
            Method::POST,
            "/api/symptom-submissions",
            *who,
            Some(&sub),
        )
        .await
        .status();
        assert_eq!(s, sub_s, "{name}: create submission");
        let s = call(
            &app,
            Method::POST,
            "/api/practitioners",
            *who,
            Some(&practitioner(&format!("new-{i}"), "draft", None)),
        )
        .await
        .status();
        assert_eq!(s, staff_s, "{name}: create practitioner");
        let s = call(
            &app,
            Method::POST,
            "/api/herbs",
            *who,
            Some(&json!({"name": "n", "slug": format!("new-{i}")})),
        )
        .await
        .status();
        assert_eq!(s, staff_s, "{name}: create herb");
        let s = call(
            &app,
            Method::POST,
            "/api/consents",
            *who,
            Some(&json!({"practitionerId": w.p1})),
        )
        .await
        .status();
        // Patient A gave exactly this consent already: answered again, 200.
        let consent_s = if *who == PAT_A { 200 } else { consent_s };
        assert_eq!(s, consent_s, "{name}: create consent");
    }

    // --- delete (refusals first, then the successes on their own targets) ---
    let refusals: &[(Who, u16, u16, u16, u16)] = &[
        // (actor, submission A, practitioner, herb, consent A)
        (ANON, 401, 401, 401, 401),
        (PAT_B, 404, 403, 403, 404),
        // Shared with them: they know it exists, so 403.
        (DOC_YES, 403, 403, 403, 404),
        (DOC_NO, 404, 403, 403, 404),
        (AUDITOR, 404, 403, 403, 404),
        (EDITOR, 404, 200, 200, 404),
        (ADMIN, 404, 200, 200, 404),
        (ADMIN_BG, 404, 200, 200, 404),
        (PAT_A, 200, 403, 403, 200),
    ];
    let mut staff_target = 0;
    for (who, sub, prac, herb, consent) in refusals {
        let name = ACTORS.iter().find(|(_, w)| w == who).unwrap().0;
        let (p, h) = if *prac == 200 {
            staff_target += 1;
            (
                w.p_del[staff_target - 1].clone(),
                w.herb_del[staff_target - 1].clone(),
            )
        } else {
            (w.p_del[0].clone(), w.herb_del[0].clone())
        };
        let p = if *prac == 200 { p } else { w.p_del[2].clone() };
        let h = if *herb == 200 {
            h
        } else {
            w.herb_del[2].clone()
        };
        let s = call(
            &app,
            Method::DELETE,
            &format!("/api/symptom-submissions/{}", w.sub_a),
            *who,
            None,
        )
        .await
        .status();
        assert_eq!(s, *sub, "{name}: delete submission");
        if *prac == 200 {
            let s = call(
                &app,
                Method::DELETE,
                &format!("/api/practitioners/{p}"),
                *who,
                None,
            )
            .await
            .status();
            assert_eq!(s, 200, "{name}: delete practitioner");
            let s = call(&app, Method::DELETE, &format!("/api/herbs/{h}"), *who, None)
                .await
                .status();
            assert_eq!(s, 200, "{name}: delete herb");
        } else {
            let s = call(
                &app,
                Method::DELETE,
                &format!("/api/practitioners/{}", w.p1),
                *who,
                None,
            )
            .await
            .status();
            assert_eq!(s, *prac, "{name}: delete practitioner");
            let s = call(
                &app,
                Method::DELETE,
                &format!("/api/herbs/{}", w.herb_pub),
                *who,
                None,
            )
            .await
            .status();
            assert_eq!(s, *herb, "{name}: delete herb");
        }
        let s = call(
            &app,
            Method::DELETE,
            &format!("/api/consents/{}", w.consent_a),
            *who,
            None,
        )
        .await
        .status();
        assert_eq!(s, *consent, "{name}: delete consent");
    }
}

#[tokio::test]
async fn revoking_or_expiring_consent_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let p1 = id_of(
        app.caller(ADMIN)
            .post(
                "/api/practitioners",
                &practitioner("p1", "published", Some("doc-yes")),
            )
            .await,
    )
    .await;
    let sub = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]});
    let s1 = id_of(
        app.caller(PAT_A)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let s2 = id_of(
        app.caller(PAT_A)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let path = |id: &str| format!("/api/symptom-submissions/{id}");

    // One submission only.
    let c = id_of(
        app.caller(PAT_A)
            .post(
                "/api/consents",
                &json!({"practitionerId": p1, "submissionId": s1}),
            )
            .await,
    )
    .await;
    assert_eq!(app.caller(DOC_YES).get(&path(&s1)).await.status(), 200);
    assert_eq!(app.caller(DOC_YES).get(&path(&s2)).await.status(), 404);
    assert_eq!(
        app.caller(PAT_A)
            .delete(&format!("/api/consents/{c}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.caller(DOC_YES).get(&path(&s1)).await.status(),
        404,
        "revoked"
    );

    // Someone else's submission cannot be shared.
    let sb = id_of(
        app.caller(PAT_B)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let res = app
        .caller(PAT_A)
        .post(
            "/api/consents",
            &json!({"practitionerId": p1, "submissionId": sb}),
        )
        .await;
    assert_eq!(res.status(), 400);
    // Expiry in the past is refused; a near one lapses by itself.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    assert_eq!(
        app.caller(PAT_A)
            .post(
                "/api/consents",
                &json!({"practitionerId": p1, "expiresAt": past})
            )
            .await
            .status(),
        400
    );
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    id_of(
        app.caller(PAT_A)
            .post(
                "/api/consents",
                &json!({"practitionerId": p1, "expiresAt": soon}),
            )
            .await,
    )
    .await;
    assert_eq!(app.caller(DOC_YES).get(&path(&s2)).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(
        app.caller(DOC_YES).get(&path(&s2)).await.status(),
        404,
        "expired"
    );
}

fn principal(id: &str, roles: &[Role]) -> Principal {
    Principal::user("users", id, roles)
}

#[tokio::test]
async fn isolation_holds_below_http_and_identity_never_outlives_its_transaction() {
    let app = spawn_app().await;
    let sub = json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]});
    let a = id_of(
        app.caller(PAT_A)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;
    let b = id_of(
        app.caller(PAT_B)
            .post("/api/symptom-submissions", &sub)
            .await,
    )
    .await;

    // Raw SQL as phi_app with A's settings sees only A's rows.
    let mut conn = sqlx::PgConnection::connect(&app.db.app_url())
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute(
        "SELECT set_config('app.user_id', 'users:pat-a', true), set_config('app.roles', 'patient', true)",
    )
    .await
    .unwrap();
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM symptom_submissions")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec![a.clone()]
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM symptom_submissions WHERE owner_id = 'users:pat-b'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(n, 0);
    let updated = sqlx::query("UPDATE symptom_submissions SET status = 'archived'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "only A's row is reachable");
    let err = sqlx::query(
        "INSERT INTO symptom_submissions (id, owner_id, symptoms) VALUES ($1, 'users:pat-b', '\\x00')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();
    // With no identity at all, nothing.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // A pool of one connection: A's request, then B's, on the same backend.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&app.db.app_url())
        .await
        .unwrap();
    let mut tx = store::begin(
        &pool,
        phi_gateway::store::Mode::default(),
        &principal("pat-a", &[]),
    )
    .await
    .unwrap();
    let pid_a: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM symptom_submissions")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    tx.commit().await.unwrap();
    let mut tx = store::begin(
        &pool,
        phi_gateway::store::Mode::default(),
        &principal("pat-b", &[]),
    )
    .await
    .unwrap();
    let pid_b: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(pid_a, pid_b, "same connection reused");
    let (user, ids): (String, Vec<uuid::Uuid>) = (
        sqlx::query_scalar("SELECT current_setting('app.user_id', true)")
            .fetch_one(&mut *tx)
            .await
            .unwrap(),
        sqlx::query_scalar("SELECT id FROM symptom_submissions")
            .fetch_all(&mut *tx)
            .await
            .unwrap(),
    );
    assert_eq!(user, "users:pat-b");
    assert_eq!(
        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec![b]
    );
    tx.commit().await.unwrap();
    // Outside any request transaction the setting is gone, not A's or B's.
    let left: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('app.user_id', true), '')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn the_analytics_role_sees_only_de_identified_aggregates() {
    let app = spawn_app().await;
    // 12 submissions from Ontario in their 30s with pain; 2 from Yukon.
    for (i, region) in ["CA-ON"; 12].iter().chain(["CA-YT"; 2].iter()).enumerate() {
        let owner = format!("u{i}");
        let body = json!({"symptoms": [{"name": "Neck pain", "severity": 3, "onset": "2026-02-01"}],
                          "dateOfBirth": "1990-01-01", "region": region, "notes": "secret"});
        let res = app
            .caller(Some((owner.leak(), &[])))
            .post("/api/symptom-submissions", &body)
            .await;
        assert_eq!(res.status(), 201);
    }
    // A week is published once it has ended (by its owner, on a schedule
    // or with `analytics refresh`; the service's role may ask for it). Here
    // the week is closed by moving the facts two weeks back.
    let mut admin = app.admin().await;
    admin
        .execute("UPDATE submission_facts SET week = week - 14")
        .await
        .unwrap();
    let mut as_app = app.db.app_conn().await;
    as_app.execute("SELECT analytics.refresh()").await.unwrap();
    let password = std::env::var("PHI_PG_ANALYTICS_PASSWORD").expect("PHI_PG_ANALYTICS_PASSWORD");
    let url = crate::helpers::url_for("phi_analytics", &password, &app.db.name);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();

    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT region, age_band, category, submissions FROM analytics.submissions_weekly ORDER BY region",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![(
            "CA-ON".to_string(),
            "30-39".to_string(),
            "pain".to_string(),
            10
        )],
        "Ontario's 12 rounded to a multiple of 5, Yukon (2) suppressed"
    );

    // The two oracles an analyst had against views over base rows reveal
    // nothing: EXPLAIN ANALYZE sees only the aggregates already suppressed,
    // and a condition that would fail for a suppressed cell never meets it.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM analytics.submissions_weekly",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("actual rows=1"), "{plan}");
    for leak in [
        "Removed by Filter",
        "Aggregate",
        "submission_facts",
        "symptom_submissions",
    ] {
        assert!(!plan.contains(leak), "{leak} in {plan}");
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM analytics.submissions_weekly \
         WHERE 1 / (CASE WHEN region = 'CA-YT' THEN 0 ELSE 1 END) = 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("no suppressed Yukon cell to divide by zero on");
    assert_eq!(n, 1);
    // The facts an analyst's aggregates come from hold no owner, and no
    // submission id in the clear.
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'submission_facts' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        cols,
        vec!["age_band", "categories", "ref", "region", "week"]
    );
    let facts: i64 = sqlx::query_scalar("SELECT count(*) FROM submission_facts")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(facts, 14);

    for sql in [
        "SELECT * FROM public.symptom_submissions",
        "SELECT * FROM public.practitioners",
        "SELECT * FROM public.herbs",
        "SELECT * FROM public.consents",
        "SELECT * FROM public.submission_facts",
    ] {
        let err = sqlx::query(sql).fetch_all(&mut conn).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap()
            .to_string();
        assert_eq!(code, "42501", "{sql}: {err}");
    }
    // Read-only, even where it might have rights.
    let err = sqlx::query("CREATE TABLE analytics.x (i int)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .unwrap()
        .to_string();
    assert!(code == "25006" || code == "42501", "{err}");
    let err = sqlx::query("DELETE FROM analytics.herb_catalogue")
        .execute(&mut conn)
        .await
        .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .unwrap()
        .to_string();
    assert!(code == "25006" || code == "42501", "{err}");
    let ro: String = sqlx::query_scalar("SHOW default_transaction_read_only")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(ro, "on");
}

type Cell = (chrono::NaiveDate, String, String, String, i64);

async fn cells(conn: &mut sqlx::PgConnection) -> Vec<Cell> {
    sqlx::query_as(
        "SELECT week, region, age_band, category, submissions FROM analytics.submissions_weekly ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The differencing attack (issue 20): an analyst who knows a person
/// submitted between two refreshes compares the cells before and after.
/// A week is published once, after it ends, under one release rule
/// (multiples of 5, nothing under 10): the person's submission shows in no
/// difference, whatever the refreshes.
#[tokio::test]
async fn an_analyst_cannot_difference_two_refreshes() {
    let app = spawn_app().await;
    let submit = |i: usize| {
        let app = &app;
        async move {
            let body = json!({"symptoms": [{"name": "Dry cough", "severity": 2, "onset": "2026-02-01"}],
                              "dateOfBirth": "1985-05-05", "region": "GB-SCT"});
            let owner: &'static str = format!("diff-{i}").leak();
            let res = app
                .caller(Some((owner, &[])))
                .post("/api/symptom-submissions", &body)
                .await;
            assert_eq!(res.status(), 201);
        }
    };
    let password = std::env::var("PHI_PG_ANALYTICS_PASSWORD").expect("PHI_PG_ANALYTICS_PASSWORD");
    let url = crate::helpers::url_for("phi_analytics", &password, &app.db.name);
    let mut analyst = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut service = app.db.app_conn().await;
    let mut admin = app.admin().await;
    for i in 0..12 {
        submit(i).await;
    }
    service.execute("SELECT analytics.refresh()").await.unwrap();
    let before = cells(&mut analyst).await;
    // The person of interest submits; the analyst refreshes and compares.
    submit(12).await;
    service.execute("SELECT analytics.refresh()").await.unwrap();
    assert_eq!(
        cells(&mut analyst).await,
        before,
        "the week in progress shows nothing"
    );
    assert!(before.is_empty());
    // The week ends: it is published once, rounded.
    admin
        .execute("UPDATE submission_facts SET week = week - 14")
        .await
        .unwrap();
    service.execute("SELECT analytics.refresh()").await.unwrap();
    let published = cells(&mut analyst).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        (&published[0].1[..], &published[0].3[..], published[0].4),
        ("GB-SCT", "respiratory", 15),
        "13 submissions publish as 15"
    );
    // A late submission landing in that week (here moved there by hand:
    // through the API a submission's week is the week it was made) and a
    // deletion change nothing once the week is out.
    submit(13).await;
    admin
        .execute("UPDATE submission_facts SET week = week - 14 WHERE week > current_date - 7")
        .await
        .unwrap();
    admin
        .execute("DELETE FROM submission_facts WHERE ctid IN (SELECT ctid FROM submission_facts LIMIT 3)")
        .await
        .unwrap();
    for _ in 0..2 {
        service.execute("SELECT analytics.refresh()").await.unwrap();
        assert_eq!(cells(&mut analyst).await, published);
    }
    // The analyst reads the published cells and nothing under them.
    for sql in [
        "SELECT * FROM analytics.released_weekly",
        "SELECT * FROM analytics.releases",
        "SELECT analytics.release()",
    ] {
        let err = sqlx::query(sql).fetch_all(&mut analyst).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap()
            .to_string();
        assert_eq!(code, "42501", "{sql}: {err}");
    }
}

/// The audit routes in the matrix: a caller's own access report is any
/// signed-in user's (it holds only entries about them); the accounting of
/// one patient's disclosures and the export are an auditor's; nothing
/// without credentials. Each refusal is on the record.
#[tokio::test]
async fn the_audit_routes_of_the_access_matrix() {
    let app = spawn_app().await;
    // The matrix's records and consents, so that there is something to report.
    let _world = world(&app).await;
    let report = "/api/audit/my-access-report";
    let accounting = "/api/audit/disclosures?patient=users:pat-a";
    let export = "/api/audit/export?format=ndjson";
    // (actor, report, accounting, export)
    let expected: &[(&str, u16, u16, u16)] = &[
        ("anonymous", 401, 401, 401),
        ("patient A", 200, 403, 403),
        ("patient B", 200, 403, 403),
        ("practitioner with consent", 200, 403, 403),
        ("practitioner without", 200, 403, 403),
        ("editor", 200, 403, 403),
        ("admin", 200, 403, 403),
        ("admin with break-glass", 200, 403, 403),
        ("auditor", 200, 200, 200),
    ];
    for (name, who) in ACTORS {
        let (_, r, a, e) = expected.iter().find(|x| x.0 == *name).unwrap();
        for (path, want) in [(report, r), (accounting, a), (export, e)] {
            let got = call(&app, Method::GET, path, *who, None).await.status();
            assert_eq!(got, *want, "{name}: GET {path}");
        }
    }
    let mut conn = app.admin().await;
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'ACCESS_DENIED' AND entity_type IN ('audit_log', 'disclosures', 'access_report')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(denied >= 14, "every 403 on the record: {denied}");
}
