use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use sqlx::Executor;

use crate::helpers::{error_message, json, spawn_app};

const EDITOR: Option<(&str, &[&str])> = Some(("ed-1", &["editor"]));

fn herb(slug: &str, status: &str, tcm: Value) -> Value {
    json!({"name": slug.replace('-', " "), "slug": slug, "status": status, "tcmProperties": tcm,
           "description": format!("{slug} description")})
}

#[tokio::test]
async fn herbs_crud_with_payload_shapes() {
    let app = spawn_app().await;
    let res = app
        .caller(EDITOR).post("/api/herbs", &json!({"name": "Huang Qin", "slug": "huang-qin", "scientificName": "Scutellaria baicalensis",
                    "status": "published",
                    "tcmProperties": {"taste": ["bitter"], "temperature": "cold",
                                      "meridians": ["lung", "large intestine", "gallbladder"],
                                      "actions": ["Clears heat", "clears heat"]}}))
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    assert_eq!(body["message"], "Herb successfully created.");
    let doc = &body["doc"];
    let id = doc["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(doc["tcmProperties"]["actions"], json!(["clears heat"]));
    assert_eq!(
        doc["tcmProperties"]["meridians"],
        json!(["lung", "large intestine", "gallbladder"])
    );

    // Anyone reads a published herb.
    let res = app.get(&format!("/api/herbs/{id}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["slug"], "huang-qin");

    let res = app
        .caller(EDITOR)
        .patch(
            &format!("/api/herbs/{id}"),
            &json!({"status": "draft", "description": null}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["message"], "Updated successfully.");
    assert_eq!(body["doc"]["status"], "draft");
    assert_eq!(body["doc"]["description"], Value::Null);

    // Drafts are invisible to anonymous callers and patients.
    assert_eq!(app.get(&format!("/api/herbs/{id}")).await.status(), 404);
    assert_eq!(
        app.caller(Some(("p-1", &[])))
            .get(&format!("/api/herbs/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.caller(EDITOR)
            .get(&format!("/api/herbs/{id}"))
            .await
            .status(),
        200
    );

    // Only staff write.
    let res = app
        .caller(Some(("p-1", &[])))
        .post("/api/herbs", &herb("x", "draft", json!({})))
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        app.caller(None)
            .post("/api/herbs", &herb("x", "draft", json!({})))
            .await
            .status(),
        401
    );

    let res = app.caller(EDITOR).delete(&format!("/api/herbs/{id}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["message"], "Deleted successfully.");
    assert_eq!(
        app.caller(EDITOR)
            .get(&format!("/api/herbs/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.caller(EDITOR)
            .delete(&format!("/api/herbs/{id}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn duplicate_slug_is_a_validation_error_on_slug() {
    let app = spawn_app().await;
    assert_eq!(
        app.caller(EDITOR)
            .post("/api/herbs", &herb("gan-cao", "published", json!({})))
            .await
            .status(),
        201
    );
    let res = app
        .caller(EDITOR)
        .post("/api/herbs", &herb("gan-cao", "published", json!({})))
        .await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["errors"][0]["name"], "ValidationError");
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "slug");
}

#[tokio::test]
async fn listing_paginates_filters_and_sorts() {
    let app = spawn_app().await;
    for i in 0..25 {
        let status = if i % 5 == 0 { "draft" } else { "published" };
        let res = app
            .caller(EDITOR)
            .post(
                "/api/herbs",
                &herb(&format!("herb-{i:02}"), status, json!({})),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // Anonymous: 20 published, page 2 of 10 per page.
    let body = json(app.get("/api/herbs?page=2").await).await;
    assert_eq!(body["totalDocs"], 20);
    assert_eq!(body["limit"], 10);
    assert_eq!(body["totalPages"], 2);
    assert_eq!(body["page"], 2);
    assert_eq!(body["pagingCounter"], 11);
    assert_eq!(body["hasPrevPage"], true);
    assert_eq!(body["hasNextPage"], false);
    assert_eq!(body["prevPage"], 1);
    assert_eq!(body["nextPage"], Value::Null);
    assert_eq!(body["docs"].as_array().unwrap().len(), 10);

    // The editor sees drafts; where + sort.
    let body = json(
        app.caller(EDITOR)
            .get("/api/herbs?where[status][equals]=draft&sort=-slug&limit=3")
            .await,
    )
    .await;
    let slugs: Vec<&str> = body["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["herb-20", "herb-15", "herb-10"]);
    assert_eq!(body["totalDocs"], 5);

    let body = json(
        app.get("/api/herbs?where[or][0][slug][equals]=herb-01&where[or][1][slug][in]=herb-02,herb-03,herb-05&sort=slug")
            .await,
    )
    .await;
    let slugs: Vec<&str> = body["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        vec!["herb-01", "herb-02", "herb-03"],
        "herb-05 is a draft"
    );

    let body = json(app.get("/api/herbs?where[name][like]=herb%2011").await).await;
    assert_eq!(body["totalDocs"], 1);
    let body = json(app.get("/api/herbs?q=herb-07").await).await;
    assert_eq!(body["docs"][0]["slug"], "herb-07");
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_problem() {
    let app = spawn_app().await;
    for (q, needle) in [
        ("where[secret][equals]=1", "cannot be queried: secret"),
        ("where[name][matches]=x", "'matches'"),
        ("limit=100000", "limit"),
        ("sort=description", "Cannot sort by 'description'"),
        ("taste=umami", "The following field is invalid: taste"),
        (
            "where[or][0][and][0][or][0][and][0][name][equals]=x",
            "nesting",
        ),
    ] {
        let res = app.get(&format!("/api/herbs?{q}")).await;
        assert_eq!(res.status(), 400, "{q}");
        let body = json(res).await;
        assert!(error_message(&body).contains(needle), "{q}: {body}");
    }
}

const TASTES: &[&str] = &[
    "sour",
    "bitter",
    "sweet",
    "pungent",
    "salty",
    "bland",
    "astringent",
];
const TEMPS: &[&str] = &["cold", "cool", "neutral", "warm", "hot"];
const MERIDIANS: &[&str] = &[
    "lung",
    "large intestine",
    "stomach",
    "spleen",
    "heart",
    "small intestine",
    "bladder",
    "kidney",
    "pericardium",
    "triple burner",
    "gallbladder",
    "liver",
];

#[derive(Debug, Clone)]
struct Props {
    taste: Vec<usize>,
    temperature: usize,
    meridians: Vec<usize>,
}

fn props() -> impl Strategy<Value = Props> {
    (
        proptest::sample::subsequence((0..TASTES.len()).collect::<Vec<_>>(), 0..3),
        0..TEMPS.len(),
        proptest::sample::subsequence((0..MERIDIANS.len()).collect::<Vec<_>>(), 0..4),
    )
        .prop_map(|(taste, temperature, meridians)| Props {
            taste,
            temperature,
            meridians,
        })
}

/// The TCM filters return exactly what an in-Rust filter over the same herbs
/// returns, and the plan uses the GIN index.
#[tokio::test]
async fn tcm_filters_match_an_in_rust_oracle_and_use_the_gin_index() {
    let app = spawn_app().await;
    let mut runner = TestRunner::new(Config {
        cases: 1,
        ..Config::default()
    });
    let herbs: Vec<Props> = (0..300)
        .map(|_| props().new_tree(&mut runner).unwrap().current())
        .collect();
    // Bulk insert as the owner (the API path is covered above).
    let mut admin = app.admin().await;
    let mut sql =
        String::from("INSERT INTO herbs (id, slug, name, status, tcm_properties) VALUES ");
    for (i, h) in herbs.iter().enumerate() {
        let tcm = json!({
            "taste": h.taste.iter().map(|t| TASTES[*t]).collect::<Vec<_>>(),
            "temperature": TEMPS[h.temperature],
            "meridians": h.meridians.iter().map(|m| MERIDIANS[*m]).collect::<Vec<_>>(),
            "actions": [],
        });
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "('{}', 'h-{i}', 'h {i}', 'published', '{}')",
            uuid::Uuid::now_v7(),
            tcm
        ));
    }
    admin.execute(sql.as_str()).await.unwrap();
    admin.execute("ANALYZE herbs").await.unwrap();

    let cases: Vec<Props> = (0..40)
        .map(|_| props().new_tree(&mut runner).unwrap().current())
        .collect();
    for q in cases {
        let taste: Vec<usize> = q.taste.iter().take(2).copied().collect();
        let meridians: Vec<usize> = q.meridians.iter().take(1).copied().collect();
        let mut params: Vec<String> = taste
            .iter()
            .map(|t| format!("taste={}", TASTES[*t]))
            .collect();
        params.extend(
            meridians
                .iter()
                .map(|m| format!("meridian={}", MERIDIANS[*m].replace(' ', "%20"))),
        );
        params.push(format!("temperature={}", TEMPS[q.temperature]));
        params.push("limit=100".into());
        let expected: std::collections::BTreeSet<String> = herbs
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                taste.iter().all(|t| h.taste.contains(t))
                    && meridians.iter().all(|m| h.meridians.contains(m))
                    && h.temperature == q.temperature
            })
            .map(|(i, _)| format!("h-{i}"))
            .collect();
        let body = json(app.get(&format!("/api/herbs?{}", params.join("&"))).await).await;
        assert_eq!(
            body["totalDocs"].as_u64().unwrap() as usize,
            expected.len(),
            "{params:?}"
        );
        let got: std::collections::BTreeSet<String> = body["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["slug"].as_str().unwrap().to_string())
            .collect();
        let want: std::collections::BTreeSet<String> = expected.iter().take(100).cloned().collect();
        if expected.len() <= 100 {
            assert_eq!(got, want, "{params:?}");
        }
    }

    // The containment the service sends is served by the GIN index.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT count(*) FROM herbs WHERE tcm_properties @> '{\"taste\":[\"bitter\"],\"temperature\":\"cold\"}'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    // Force the choice the planner makes at scale (300 rows may seq-scan).
    admin.execute("SET enable_seqscan = off").await.unwrap();
    let plan_forced: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT count(*) FROM herbs WHERE tcm_properties @> '{\"taste\":[\"bitter\"],\"temperature\":\"cold\"}'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        plan_forced.join("\n").contains("herbs_tcm_properties"),
        "GIN index not usable: {plan_forced:?} (unforced: {plan:?})"
    );
}

/// Counts stop past the deepest page a caller may reach, and say so; every
/// reachable page is still counted exactly. Callers without credentials
/// reach a tenth as deep.
#[tokio::test]
async fn counts_stop_past_the_deepest_page_and_say_so() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    admin
        .execute(
            "INSERT INTO herbs (id, slug, name, status, tcm_properties)
               SELECT gen_random_uuid(), 'h-' || i, 'Herb ' || lpad(i::text, 6, '0'), 'published',
                      CASE WHEN i <= 10150 THEN '{\"taste\": [\"bitter\"]}' ELSE '{\"taste\": [\"sweet\"]}' END::jsonb
               FROM generate_series(1, 10200) i",
        )
        .await
        .unwrap();
    // 10,150 bitter herbs: more than 10,000 + 100, so the count stops there.
    let page = json(
        app.as_editor()
            .get("/api/herbs?taste=bitter&limit=100")
            .await,
    )
    .await;
    assert_eq!(
        (
            page["totalDocs"].as_i64(),
            page["totalDocsCapped"].as_bool(),
            page["totalPages"].as_i64()
        ),
        (Some(10_100), Some(true), Some(101))
    );
    // The deepest page is full and exact.
    let last = json(
        app.as_editor()
            .get("/api/herbs?taste=bitter&limit=100&page=101")
            .await,
    )
    .await;
    assert_eq!(last["docs"].as_array().unwrap().len(), 100);
    assert_eq!(last["docs"][0]["name"], "Herb 010001");
    assert_eq!(last["hasNextPage"], false);
    // Beyond it: a 400 that says how to narrow the query.
    let res = app
        .as_editor()
        .get("/api/herbs?taste=bitter&limit=100&page=102")
        .await;
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("narrow"));
    // Without credentials: 1,000 in, and the count stops at 1,100.
    let anon = json(
        app.anonymous()
            .get("/api/herbs?taste=bitter&limit=100")
            .await,
    )
    .await;
    assert_eq!(
        (
            anon["totalDocs"].as_i64(),
            anon["totalDocsCapped"].as_bool(),
            anon["totalPages"].as_i64()
        ),
        (Some(1_100), Some(true), Some(11))
    );
    let deepest = json(
        app.anonymous()
            .get("/api/herbs?taste=bitter&limit=100&page=11")
            .await,
    )
    .await;
    assert_eq!(deepest["docs"][0]["name"], "Herb 001001");
    let res = app
        .anonymous()
        .get("/api/herbs?taste=bitter&limit=100&page=12")
        .await;
    assert_eq!(res.status(), 400);
    assert!(error_message(&json(res).await).contains("without credentials"));
    // Under the cap the count is exact and not marked.
    let sweet = json(app.anonymous().get("/api/herbs?taste=sweet&limit=10").await).await;
    assert_eq!(
        (
            sweet["totalDocs"].as_i64(),
            sweet["totalDocsCapped"].as_bool()
        ),
        (Some(50), Some(false))
    );
    // Without pagination nothing is counted.
    let plain = json(
        app.anonymous()
            .get("/api/herbs?taste=bitter&limit=10&pagination=false")
            .await,
    )
    .await;
    assert_eq!(
        (
            plain["totalDocs"].as_i64(),
            plain["totalDocsCapped"].as_bool()
        ),
        (Some(10), Some(false))
    );
}
