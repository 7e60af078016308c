use phi_gateway::domain::geo::{Location, haversine_m};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use sqlx::Executor;

use crate::helpers::{error_message, json, spawn_app};

const ADMIN: Option<(&str, &[&str])> = Some(("admin-1", &["admin"]));

fn practitioner(slug: &str, email: &str, lat: f64, lon: f64) -> Value {
    json!({
        "name": format!("Dr {slug}"), "slug": slug, "status": "published",
        "modalities": ["acupuncture", "tuina"], "city": "London", "country": "UK",
        "location": {"lat": lat, "lon": lon},
        "email": email, "phone": "+44 20 7946 0000", "licenceNumber": "LIC-12345",
    })
}

#[tokio::test]
async fn contact_fields_are_sealed_and_shown_only_to_staff_and_self() {
    let app = spawn_app().await;
    let mut body = practitioner("li-wei", "Li.Wei@Example.org", 51.5, -0.12);
    body["userId"] = json!("users:user-li");
    let res = app.caller(ADMIN).post("/api/practitioners", &body).await;
    assert_eq!(res.status(), 201);
    let doc = json(res).await["doc"].clone();
    let id = doc["id"].as_str().unwrap().to_string();
    assert_eq!(doc["email"], "Li.Wei@Example.org");
    assert_eq!(doc["licenceNumber"], "LIC-12345");

    let public = json(app.get(&format!("/api/practitioners/{id}")).await).await;
    assert_eq!(public["name"], "Dr li-wei");
    for private in ["email", "phone", "licenceNumber", "userId"] {
        assert!(public.get(private).is_none(), "{private} leaked: {public}");
    }
    let own = json(
        app.caller(Some(("user-li", &["practitioner"])))
            .get(&format!("/api/practitioners/{id}"))
            .await,
    )
    .await;
    assert_eq!(own["phone"], "+44 20 7946 0000");

    // Email lookup through the blind index, case-insensitively.
    let found = json(
        app.caller(ADMIN)
            .get("/api/practitioners?where[email][equals]=li.wei@example.ORG")
            .await,
    )
    .await;
    assert_eq!(found["totalDocs"], 1);
    assert_eq!(found["docs"][0]["id"], id.as_str());
    // Emails are unique (through the blind index).
    let res = app
        .caller(ADMIN)
        .post(
            "/api/practitioners",
            &practitioner("other", "li.wei@example.org", 1.0, 1.0),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        json(res).await["errors"][0]["data"]["errors"][0]["path"],
        "email"
    );

    // The linked practitioner edits their bio but not their status.
    let me = Some(("user-li", &["practitioner"][..]));
    let res = app
        .caller(me)
        .patch(
            &format!("/api/practitioners/{id}"),
            &json!({"bio": "Twenty years of practice."}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .caller(me)
        .patch(
            &format!("/api/practitioners/{id}"),
            &json!({"status": "draft"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    // Someone else cannot edit it at all.
    let res = app
        .caller(Some(("user-x", &[])))
        .patch(&format!("/api/practitioners/{id}"), &json!({"bio": "x"}))
        .await;
    assert_eq!(res.status(), 403);

    // At rest: nothing of the contact fields in any column.
    let mut admin = app.admin().await;
    let dump: String = sqlx::query_scalar("SELECT practitioners::text FROM practitioners")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    for canary in ["Li.Wei", "li.wei", "7946", "LIC-12345"] {
        assert!(!dump.contains(canary), "{canary} stored in clear");
    }
}

#[tokio::test]
async fn bad_practitioner_bodies_are_rejected_with_paths_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "A", "slug": "a", "location": {"lat": 91, "lon": 0}}),
            "location.lat",
        ),
        (
            json!({"name": "A", "slug": "a", "location": {"lat": 0, "lon": -181}}),
            "location.lon",
        ),
        (
            json!({"name": "A", "slug": "a", "location": {"lat": 0}}),
            "location.lon",
        ),
        (
            json!({"name": "A", "slug": "a", "location": {"lat": "north", "lon": 0}}),
            "location.lat",
        ),
        (
            json!({"name": "A", "slug": "Not A Slug", "location": {"lat": 0, "lon": 0}}),
            "slug",
        ),
        (
            json!({"name": "A", "slug": "a", "location": {"lat": 0, "lon": 0}, "email": "not-an-email"}),
            "email",
        ),
        (
            json!({"name": "A", "slug": "a", "location": {"lat": 0, "lon": 0}, "favourite": 1}),
            "favourite",
        ),
        (
            json!({"slug": "a", "location": {"lat": 0, "lon": 0}}),
            "name",
        ),
    ];
    for (body, path) in cases {
        let res = app.caller(ADMIN).post("/api/practitioners", &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let err = json(res).await;
        assert_eq!(err["errors"][0]["name"], "ValidationError", "{err}");
        let paths: Vec<&str> = err["errors"][0]["data"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&path), "{body} -> {err}");
    }
    // NaN is not JSON: a syntax error, 400.
    let res = app
        .caller(ADMIN)
        .req(reqwest::Method::POST, "/api/practitioners")
        .header("content-type", "application/json")
        .body(r#"{"name":"A","slug":"a","location":{"lat":NaN,"lon":0}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        error_message(&json(res).await),
        "The request body is not valid JSON."
    );
    let mut admin = app.admin().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM practitioners")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// 1,000 random points near London; 50 random queries; the service's answer
/// equals the Haversine oracle's, nearest first, except within the
/// documented sphere difference at the boundary.
#[tokio::test]
async fn proximity_matches_the_haversine_oracle_and_uses_the_gist_index() {
    let app = spawn_app().await;
    let mut runner = TestRunner::deterministic();
    let coord = (50.5f64..52.5, -1.5f64..1.0);
    let points: Vec<Location> = (0..1000)
        .map(|_| {
            let (lat, lon) = coord.new_tree(&mut runner).unwrap().current();
            Location { lat, lon }
        })
        .collect();
    let mut admin = app.admin().await;
    let mut sql =
        String::from("INSERT INTO practitioners (id, slug, name, status, lat, lon) VALUES ");
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "('{}', 'p-{i}', 'P {i}', 'published', {}, {})",
            uuid::Uuid::now_v7(),
            p.lat,
            p.lon
        ));
    }
    admin.execute(sql.as_str()).await.unwrap();
    admin.execute("ANALYZE practitioners").await.unwrap();

    let queries = (50.8f64..52.2, -1.2f64..0.7, 2.0f64..40.0);
    for _ in 0..50 {
        let (lat, lon, radius_km) = queries.new_tree(&mut runner).unwrap().current();
        let here = Location { lat, lon };
        let mut oracle: Vec<(f64, usize)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (haversine_m(here, *p), i))
            .filter(|(d, _)| *d <= radius_km * 1000.0)
            .collect();
        oracle.sort_by(|a, b| a.0.total_cmp(&b.0));
        let body = json(
            app.get(&format!(
                "/api/practitioners/near?lat={lat}&lon={lon}&radius_km={radius_km}&limit=100"
            ))
            .await,
        )
        .await;
        let docs = body["docs"].as_array().unwrap();
        // The radius is the great-circle distance the oracle measures (the
        // store asks earthdistance for the same arc): only points within
        // floating-point noise of the edge may go either way.
        let margin = 0.01;
        let strict: Vec<usize> = oracle
            .iter()
            .filter(|(d, _)| *d < radius_km * 1000.0 - margin)
            .map(|(_, i)| *i)
            .collect();
        let got: Vec<usize> = docs
            .iter()
            .map(|d| d["slug"].as_str().unwrap()[2..].parse().unwrap())
            .collect();
        let total = body["totalDocs"].as_u64().unwrap() as usize;
        assert!(
            total >= strict.len() && total <= oracle.len(),
            "total {total}, oracle {}..{}",
            strict.len(),
            oracle.len()
        );
        let n = got.len().min(strict.len()).min(100);
        assert_eq!(
            &got[..n],
            &strict[..n],
            "order at ({lat}, {lon}) r={radius_km}"
        );
        // distanceM ascending, within the radius, and the oracle's distance.
        let mut last = 0.0;
        for d in docs {
            let m = d["distanceM"].as_f64().unwrap();
            assert!(m >= last && m <= radius_km * 1000.0 + margin, "{m}");
            let i: usize = d["slug"].as_str().unwrap()[2..].parse().unwrap();
            assert!((m - haversine_m(here, points[i])).abs() < 1e-6, "{m}");
            last = m;
        }
    }

    // Payload's near: lng,lat,max[,min], same answers.
    let a = json(
        app.get("/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=5")
            .await,
    )
    .await;
    let b = json(
        app.get("/api/practitioners?where[location][near]=-0.12,51.5,5000")
            .await,
    )
    .await;
    assert_eq!(a["totalDocs"], b["totalDocs"]);
    assert_eq!(a["docs"], b["docs"]);

    // pagination=false: the same nearest page, without the count.
    let paged = json(
        app.get("/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=40&limit=20")
            .await,
    )
    .await;
    assert!(paged["totalDocs"].as_i64().unwrap() > 20, "{paged}");
    for url in [
        "/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=40&limit=20&pagination=false",
        "/api/practitioners?where[location][near]=-0.12,51.5,40000&limit=20&pagination=false",
    ] {
        let unpaged = json(app.get(url).await).await;
        assert_eq!(unpaged["docs"], paged["docs"], "{url}");
        assert_eq!(unpaged["totalDocs"], 20, "{url}");
        assert_eq!(unpaged["totalPages"], 1, "{url}");
        assert_eq!(unpaged["hasNextPage"], false, "{url}");
    }
    // Later pages continue the same nearest-first walk.
    let forty = json(
        app.get("/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=40&limit=40")
            .await,
    )
    .await;
    let page2 = json(
        app.get("/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=40&limit=20&page=2")
            .await,
    )
    .await;
    assert_eq!(
        page2["docs"].as_array().unwrap()[..],
        forty["docs"].as_array().unwrap()[20..]
    );
    assert_eq!(page2["totalDocs"], paged["totalDocs"]);
    let res = app
        .get("/api/practitioners/near?lat=51.5&lon=-0.12&pagination=false&page=2")
        .await;
    assert_eq!(res.status(), 400);

    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT id FROM practitioners \
         WHERE earth_box(phi_earth(51.5, -0.12), 25000) @> earth \
           AND earth_distance(phi_earth(51.5, -0.12), earth) <= 25000 \
         ORDER BY earth <-> phi_earth(51.5, -0.12) LIMIT 20",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("practitioners_earth"), "{plan}");
    assert!(
        plan.contains("Order By"),
        "KNN ordering not from the index: {plan}"
    );
}

#[tokio::test]
async fn proximity_input_is_checked() {
    let app = spawn_app().await;
    for q in [
        "lat=95&lon=0",
        "lat=0&lon=0&radius_km=-1",
        "lon=0",
        "lat=abc&lon=0",
        "lat=0&lon=0&limit=101",
    ] {
        let res = app.get(&format!("/api/practitioners/near?{q}")).await;
        assert_eq!(res.status(), 400, "{q}");
    }
}

/// The stored point follows the row: a practitioner who moves is found
/// where they are now, not where they were.
#[tokio::test]
async fn a_moved_practitioner_is_found_where_it_now_is() {
    let app = spawn_app().await;
    let res = app
        .as_editor()
        .post(
            "/api/practitioners",
            &json!({"name": "Mover", "slug": "mover", "status": "published",
                    "location": {"lat": 51.5, "lon": -0.12}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    let near = |lat: f64, lon: f64| {
        let app = &app;
        async move {
            json(
                app.anonymous()
                    .get(&format!(
                        "/api/practitioners/near?lat={lat}&lon={lon}&radius_km=10"
                    ))
                    .await,
            )
            .await["totalDocs"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!((near(51.5, -0.12).await, near(48.85, 2.35).await), (1, 0));
    let res = app
        .as_editor()
        .patch(
            &format!("/api/practitioners/{id}"),
            &json!({"location": {"lat": 48.85, "lon": 2.35}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!((near(51.5, -0.12).await, near(48.85, 2.35).await), (0, 1));
}

/// A public listing links to its website: only http(s) addresses, never a
/// `javascript:` or `data:` URL that would run in a reader's browser.
#[tokio::test]
async fn a_listings_website_is_an_http_address() {
    let app = spawn_app().await;
    let mut body = practitioner("web", "web@example.org", 51.5, -0.1);
    for bad in [
        "javascript:alert(document.cookie)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "ftp://example.org/",
    ] {
        body["website"] = json!(bad);
        let res = app.caller(ADMIN).post("/api/practitioners", &body).await;
        assert_eq!(res.status(), 400, "{bad}");
        let b = json(res).await;
        assert_eq!(
            b["errors"][0]["data"]["errors"][0]["path"], "website",
            "{bad}: {b}"
        );
        assert!(
            !b.to_string().contains("alert"),
            "the value is not quoted back: {b}"
        );
    }
    for good in ["https://example.org/dr", "HTTP://example.org"] {
        body["website"] = json!(good);
        body["slug"] = json!(format!("web-{}", good.len()));
        body["email"] = json!(format!("web{}@example.org", good.len()));
        let res = app.caller(ADMIN).post("/api/practitioners", &body).await;
        assert_eq!(res.status(), 201, "{good}");
    }
}
