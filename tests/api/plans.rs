//! Query plans as the service runs them (issue 13): through HTTP, as
//! phi_app with each caller's identity set, at a size where reading a whole
//! table would lose. auto_explain (loaded for phi_app's sessions in this
//! database only) logs the plan of every statement the gateway sends; the
//! test reads them from the cluster's JSON log and fails on any list that
//! reads a large table from end to end. It also checks that the views the
//! lists read (migration 0010) show each caller exactly what the tables'
//! policies show them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{TestApp, json, start_server, test_settings};
use crate::testdb::TestDb;

/// Rows per large table: enough that the planner prefers an index for a
/// selective condition, few enough to seed in seconds.
const ROWS: i64 = 60_000;
const LARGE: [&str; 4] = ["herbs", "practitioners", "symptom_submissions", "consents"];

async fn seed(admin: &mut PgConnection) {
    // As the superuser, triggers off: bulk rows for the planner, none of
    // which any caller below reads in full (their sealed fields are junk).
    let sql = format!(
        "SET session_replication_role = replica;
         INSERT INTO herbs (id, slug, name, status, tcm_properties)
           SELECT gen_random_uuid(), 'h-' || i, 'Herb ' || i,
                  CASE WHEN i % 10 = 0 THEN 'draft' ELSE 'published' END,
                  jsonb_build_object(
                    'taste', jsonb_build_array((ARRAY['bitter','sweet','sour','pungent','salty'])[1 + i % 5]),
                    'meridians', jsonb_build_array((ARRAY['liver','heart','spleen','lung','kidney','stomach','bladder'])[1 + i % 7]),
                    'temperature', (ARRAY['cold','cool','neutral','warm','hot'])[1 + (i / 7) % 5])
           FROM generate_series(1, {ROWS}) i;
         INSERT INTO practitioners (id, slug, name, status, lat, lon, earth)
           SELECT gen_random_uuid(), 'p-' || i, 'Practitioner ' || i,
                  CASE WHEN i % 10 = 0 THEN 'draft' ELSE 'published' END, la, lo, phi_earth(la, lo)
           FROM (SELECT i,
                   CASE WHEN i % 50 = 0 THEN 51.5 + (random() - 0.5) * 0.3 ELSE -60 + random() * 130 END la,
                   CASE WHEN i % 50 = 0 THEN -0.12 + (random() - 0.5) * 0.4 ELSE -180 + random() * 360 END lo
                 FROM generate_series(1, {ROWS}) i) s;
         INSERT INTO symptom_submissions (id, owner_id, status, symptoms, created_at)
           SELECT gen_random_uuid(), 'users:bulk-' || (i % 6000), 'submitted', '\\x00'::bytea,
                  now() - i * interval '1 minute'
           FROM generate_series(1, {ROWS}) i;
         INSERT INTO consents (id, owner_id, practitioner_id, practitioner_user)
           SELECT gen_random_uuid(), 'users:bulk-' || i, (SELECT id FROM practitioners LIMIT 1),
                  'users:bulk-doc-' || (i % 3000)
           FROM generate_series(1, {ROWS}) i;
         SET session_replication_role = DEFAULT;
         ANALYZE;"
    );
    admin.execute(sql.as_str()).await.unwrap();
}

/// The plans phi_app's sessions logged in `db` (oldest first): each one's
/// query text and plan tree.
fn logged_plans(db: &str) -> Vec<(String, Value)> {
    let dir =
        std::path::PathBuf::from(std::env::var("PHI_PG_DIR").expect("PHI_PG_DIR")).join("data/log");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if entry["dbname"] != db || entry["user"] != "phi_app" {
                continue;
            }
            let msg = entry["message"].as_str().unwrap_or("");
            let Some(start) = msg.find('{').filter(|_| msg.starts_with("duration:")) else {
                continue;
            };
            let plan: Value = serde_json::from_str(&msg[start..]).unwrap();
            out.push((
                plan["Query Text"].as_str().unwrap_or("").to_string(),
                plan["Plan"].clone(),
            ));
        }
    }
    out
}

/// Sequential scans of large tables that read more than half of the table:
/// a scan under a `Limit` that expects to stop early is bounded work (an
/// unfiltered page, or a capped count over mostly visible rows).
fn full_scans(
    node: &Value,
    limit_rows: Option<f64>,
    sizes: &[(String, f64)],
    out: &mut Vec<String>,
) {
    let kind = node["Node Type"].as_str().unwrap_or("");
    let rows = node["Plan Rows"].as_f64().unwrap_or(0.0);
    if kind == "Seq Scan" {
        let rel = node["Relation Name"].as_str().unwrap_or("");
        if let Some((_, size)) = sizes.iter().find(|(n, _)| n == rel) {
            let read = match limit_rows {
                Some(l) => l * size / rows.max(1.0),
                None => *size,
            };
            if read > size / 2.0 {
                out.push(format!(
                    "Seq Scan on {rel} (about {read:.0} of {size:.0} rows; filter {})",
                    node["Filter"]
                ));
            }
        }
    }
    // A Limit bounds only the node right beneath it.
    let below = (kind == "Limit").then_some(rows);
    for child in node["Plans"].as_array().into_iter().flatten() {
        full_scans(child, below, sizes, out);
    }
}

/// Sends the request, then a marker statement as phi_app on its own
/// connection, and returns the plans logged between the previous marker
/// and this one (the gateway's statements end before its response does).
async fn plans_of(
    app: &TestApp,
    marker_conn: &mut PgConnection,
    seen: &mut usize,
    req: reqwest::RequestBuilder,
) -> (u16, Vec<(String, Value)>) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert!(status < 300, "{status} {body}");
    let marker = format!("marker {}", uuid::Uuid::new_v4());
    marker_conn
        .execute(format!("SELECT '{marker}'").as_str())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = logged_plans(&app.db.name);
        if let Some(end) = all.iter().position(|(q, _)| q.contains(&marker)) {
            let got = all[*seen..end].to_vec();
            *seen = end + 1;
            return (status, got);
        }
        assert!(
            Instant::now() < deadline,
            "the marker never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn created(res: reqwest::Response) -> String {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn no_list_reads_a_large_table_from_end_to_end() {
    let db = TestDb::migrated().await;
    let mut admin = PgConnection::connect(&db.admin_url()).await.unwrap();
    seed(&mut admin).await;
    admin
        .execute(
            format!(
                "ALTER ROLE phi_app IN DATABASE {0} SET session_preload_libraries = 'auto_explain';
                 ALTER ROLE phi_app IN DATABASE {0} SET auto_explain.log_min_duration = 0;
                 ALTER ROLE phi_app IN DATABASE {0} SET auto_explain.log_format = 'json'",
                db.name
            )
            .as_str(),
        )
        .await
        .unwrap();
    let sizes: Vec<(String, f64)> = sqlx::query_as::<_, (String, f32)>(
        "SELECT relname::text, reltuples FROM pg_class WHERE relname = ANY($1)",
    )
    .bind(LARGE)
    .fetch_all(&mut admin)
    .await
    .unwrap()
    .into_iter()
    .map(|(n, r)| (n, r as f64))
    .collect();
    assert_eq!(sizes.len(), LARGE.len());
    assert!(
        sizes.iter().all(|(_, r)| *r >= ROWS as f64 * 0.9),
        "{sizes:?}"
    );

    let sealer = db.sealer_url();
    let settings = test_settings(
        &db.app_url(),
        &[("AUDIT_SEALER_DATABASE_URL", sealer.as_str())],
    );
    let address = start_server(settings).await;
    let app = TestApp {
        address,
        client: crate::helpers::http_client(),
        db,
    };

    // Real documents for the callers who read PHI: a practitioner linked
    // to a user, three submissions of a patient, and a consent.
    let p = created(
        app.as_admin()
            .post(
                "/api/practitioners",
                &json!({"name": "Dr Plan", "slug": "dr-plan", "status": "published",
                        "location": {"lat": 51.5, "lon": -0.12}, "userId": "users:doc"}),
            )
            .await,
    )
    .await;
    for _ in 0..3 {
        created(
            app.as_patient("pat")
                .post(
                    "/api/symptom-submissions",
                    &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-01-01"}]}),
                )
                .await,
        )
        .await;
    }
    created(
        app.as_patient("pat")
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;

    let mut marker_conn = app.db.app_conn().await;
    let mut seen = logged_plans(&app.db.name).len();
    let herbs = [
        "/api/herbs?taste=bitter&meridian=liver",
        "/api/herbs?temperature=warm&temperature=hot&taste=sweet",
        "/api/herbs?q=herb",
        "/api/herbs",
    ];
    let practitioners = [
        "/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=25",
        "/api/practitioners/near?lat=51.5&lon=-0.12&radius_km=25&limit=2&page=3",
        "/api/practitioners?where[location][near]=-0.12,51.5,25000",
        "/api/practitioners",
    ];
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();
    for who in ["anonymous", "patient", "editor"] {
        for path in herbs {
            cases.push((who, path, "herbs"));
        }
        for path in practitioners {
            cases.push((who, path, "practitioners"));
        }
    }
    for who in ["patient", "practitioner", "editor"] {
        cases.push((
            who,
            "/api/symptom-submissions?limit=2",
            "symptom_submissions",
        ));
        cases.push((
            who,
            "/api/symptom-submissions?limit=2&where[status][equals]=submitted",
            "symptom_submissions",
        ));
        cases.push((who, "/api/consents?limit=1", "consents"));
    }

    let mut failures = Vec::new();
    for (who, path, table) in cases {
        let caller = match who {
            "anonymous" => app.anonymous(),
            "patient" => app.as_patient("pat"),
            "practitioner" => app.as_user("doc", &["practitioner"]),
            _ => app.as_editor(),
        };
        let (_, plans) = plans_of(
            &app,
            &mut marker_conn,
            &mut seen,
            caller.req(reqwest::Method::GET, path),
        )
        .await;
        let lists: Vec<_> = plans.iter().filter(|(q, _)| q.contains(table)).collect();
        assert!(
            !lists.is_empty(),
            "{who} {path}: no statement on {table} was logged: {plans:#?}"
        );
        for (query, plan) in lists {
            let mut scans = Vec::new();
            full_scans(plan, None, &sizes, &mut scans);
            if !scans.is_empty() {
                failures.push(format!(
                    "{who} GET {path}\n  {query}\n  {}",
                    scans.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Each view shows each kind of caller exactly what its table's policies
/// show them.
#[tokio::test]
async fn the_list_views_show_what_the_policies_show() {
    let db = TestDb::migrated().await;
    let mut admin = PgConnection::connect(&db.admin_url()).await.unwrap();
    admin
        .execute(
            "SET session_replication_role = replica;
             INSERT INTO herbs (id, slug, name, status)
               SELECT gen_random_uuid(), 'h-' || i, 'Herb ' || i,
                      CASE WHEN i % 3 = 0 THEN 'draft' ELSE 'published' END
               FROM generate_series(1, 30) i;
             INSERT INTO practitioners (id, slug, name, status, lat, lon, earth, user_id)
               SELECT gen_random_uuid(), 'p-' || i, 'P ' || i,
                      CASE WHEN i % 3 = 0 THEN 'draft' ELSE 'published' END, 0, 0, phi_earth(0, 0),
                      CASE WHEN i IN (3, 4) THEN 'users:doc' END
               FROM generate_series(1, 30) i",
        )
        .await
        .unwrap();
    let mut app = db.app_conn().await;
    let callers = [
        ("", ""),
        ("users:pat", "patient"),
        ("users:doc", "practitioner"),
        ("users:ed", "editor"),
        ("users:adm", "admin"),
    ];
    for (user, roles) in callers {
        for (table, view) in [
            ("herbs", "herbs_visible"),
            ("practitioners", "practitioners_visible"),
        ] {
            let mut tx = app.begin().await.unwrap();
            sqlx::query(
                "SELECT set_config('app.user_id', $1, true), set_config('app.roles', $2, true)",
            )
            .bind(user)
            .bind(roles)
            .execute(&mut *tx)
            .await
            .unwrap();
            let (from_table, from_view, differ): (i64, i64, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM {view}),
                        (SELECT count(*) FROM ((SELECT id FROM {table} EXCEPT SELECT id FROM {view})
                                               UNION ALL
                                               (SELECT id FROM {view} EXCEPT SELECT id FROM {table})) d)"
            ))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(
                (from_table, differ),
                (from_view, 0),
                "{view} as {user:?} ({roles})"
            );
            tx.rollback().await.unwrap();
        }
    }
    // The views are the caller's only way past the policies' conditions,
    // which is safe only while phi_app cannot bring its own functions.
    for schema in ["public", "pg_temp"] {
        let err = app
            .execute(
                format!("CREATE FUNCTION {schema}.leak(text) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
                    .as_str(),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{schema}: {err}"
        );
    }
}
