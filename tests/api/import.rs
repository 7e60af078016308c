//! Issue 23: importing existing records, from the tables the CMS's guide
//! implies (PHI pgp_sym_encrypt'ed in place) and from the tables Payload's
//! Postgres adapter creates, with the example mappings in deploy/import/:
//! the gateway then serves the same values to the right owners; a stopped
//! run resumes without duplicates; invalid rows are reported (no values)
//! and absent; a wrong or missing old key stops before anything is
//! written; the source is unchanged; a run is undone as a whole, and not
//! once a record has changed.

use serde_json::Value;
use sqlx::{Executor, PgPool};

use crate::cli::cli_env;
use crate::helpers::{TEST_DATA_KEY, TEST_INDEX_KEY, TestApp, json, spawn_app};
use crate::testdb::TestDb;

async fn source(fixture: &str) -> (TestDb, PgPool) {
    let db = TestDb::empty().await;
    let pool = db.admin_pool().await;
    let sql = std::fs::read_to_string(fixture).unwrap();
    pool.execute(sql.as_str()).await.unwrap();
    (db, pool)
}

/// A digest of every row of every table of the source.
async fn fingerprint(pool: &PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut all = String::new();
    for t in tables {
        let d: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM {t} x"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        all.push_str(&format!("{t}={}\n", d.unwrap_or_default()));
    }
    all
}

fn import(app: &TestApp, args: &[&str], old_key: Option<&str>) -> (bool, String) {
    let mut env = vec![
        ("DATABASE_ENCRYPTION_KEY", TEST_DATA_KEY),
        ("DATABASE_BLIND_INDEX_KEY", TEST_INDEX_KEY),
    ];
    if let Some(k) = old_key {
        env.push(("PHI_IMPORT_SOURCE_KEY", k));
    }
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    cli_env(
        &app.db,
        "/nonexistent/keyring.json",
        "development",
        &all,
        &env,
    )
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.admin().await;
    sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
}

fn run_id(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "import")
        .nth(1)
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("no run id in {out}"))
}

#[tokio::test]
async fn the_cms_guides_encrypted_tables_come_in_once_validated_and_served_to_their_owners() {
    let app = spawn_app().await;
    let (src, src_pool) = source("tests/import/cms-guide.sql").await;
    let before = fingerprint(&src_pool).await;
    let url = src.admin_url();
    let dir = std::env::temp_dir().join(format!("phi-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.ndjson");
    let report_s = report.to_str().unwrap();
    let map = "deploy/import/cms-guide.toml";
    let args = ["--source", url.as_str(), "--map", map, "--report", report_s];

    // No old key, or the wrong one: stopped before anything is written.
    let (ok, out) = import(&app, &args, None);
    assert!(!ok && out.contains("PHI_IMPORT_SOURCE_KEY"), "{out}");
    let (ok, out) = import(&app, &args, Some("not-the-key"));
    assert!(!ok && out.contains("does not decrypt"), "{out}");
    assert!(
        !out.contains("not-the-key"),
        "the key is never shown: {out}"
    );
    for t in [
        "herbs",
        "practitioners",
        "symptom_submissions",
        "import_runs",
    ] {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {t}")).await,
            0,
            "{t}"
        );
    }

    // Stopped at the first invalid row (the third herb)...
    let mut strict = args.to_vec();
    strict.extend(["--max-errors", "0", "--batch", "2"]);
    let (ok, out) = import(&app, &strict, Some("guide-old-key"));
    assert!(!ok && out.contains("--max-errors"), "{out}");
    assert_eq!(count(&app, "SELECT count(*) FROM herbs").await, 2);
    assert_eq!(
        count(&app, "SELECT count(*) FROM symptom_submissions").await,
        0
    );
    // ...goes on where it stopped, and is checked against the source.
    let mut again = args.to_vec();
    again.push("--verify");
    let (ok, out) = import(&app, &again, Some("guide-old-key"));
    assert!(ok, "{out}");
    assert!(out.contains("(resumed)"), "{out}");
    assert!(out.contains("invalid 3"), "{out}");
    assert!(
        out.contains("verify: 19 source rows, 16 imported, 16 match, 0 differ"),
        "{out}"
    );
    let run = run_id(&out);
    assert_eq!(count(&app, "SELECT count(*) FROM herbs").await, 2);
    assert_eq!(count(&app, "SELECT count(*) FROM practitioners").await, 2);
    assert_eq!(
        count(&app, "SELECT count(*) FROM symptom_submissions").await,
        12
    );
    // Imported twice: nothing twice.
    let (ok, out) = import(&app, &args, Some("guide-old-key"));
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 0, skipped as already present 16, invalid 3"),
        "{out}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM symptom_submissions").await,
        12
    );

    // Invalid rows by source key and field path, never a value.
    let text = std::fs::read_to_string(&report).unwrap();
    let invalid: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("key").is_some())
        .collect();
    let mut seen: Vec<(String, String, String)> = invalid
        .iter()
        .map(|v| {
            (
                v["table"].as_str().unwrap().to_string(),
                v["key"].as_str().unwrap().to_string(),
                v["errors"][0]["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert!(
        seen.contains(&("herbs".into(), "3".into(), "tcmProperties.taste[0]".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "symptom_submissions".into(),
            "13".into(),
            "symptoms[0].severity".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            "symptom_submissions".into(),
            "14".into(),
            "contactEmail".into()
        )),
        "{seen:?}"
    );
    for value in ["umami", "not an email", "Fever", "guide-old-key"] {
        assert!(!text.contains(value), "the report holds {value:?}: {text}");
    }

    // Served as the API serves: each patient their own, opened.
    let res = app
        .as_patient("guide-1")
        .get("/api/symptom-submissions?limit=50")
        .await;
    let page = json(res).await;
    let docs = page["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 4, "{page}");
    for d in docs {
        assert!(
            d["notes"]
                .as_str()
                .unwrap()
                .starts_with("notes of submission "),
            "{d}"
        );
        assert!(
            d["dateOfBirth"].as_str().unwrap().starts_with("1980-05-0"),
            "{d}"
        );
        assert_eq!(d["owner"], "users:guide-1");
    }
    let theirs = docs[0]["id"].as_str().unwrap().to_string();
    let other = app
        .as_patient("guide-2")
        .get(&format!("/api/symptom-submissions/{theirs}"))
        .await;
    assert_eq!(other.status(), 404);
    let herbs = json(app.get("/api/herbs?where[slug][equals]=ginger").await).await;
    assert_eq!(
        herbs["docs"][0]["tcmProperties"]["temperature"], "warm",
        "{herbs}"
    );
    // Every record of PHI written (herbs are reference data, not audited) is
    // on the record as the import's, with its run.
    let created = count(
        &app,
        &format!(
            "SELECT count(*) FROM audit.log WHERE action = 'CREATE' AND actor_user = 'operator:import' \
             AND request_id = '{run}'"
        ),
    )
    .await;
    assert_eq!(created, 14, "two practitioners and twelve submissions");

    // Undone only while nothing it wrote has changed.
    let res = app
        .as_patient("guide-1")
        .patch(
            &format!("/api/symptom-submissions/{theirs}"),
            &serde_json::json!({"region": "DE"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (ok, out) = import(&app, &["--undo", &run], None);
    assert!(!ok && out.contains("changed since"), "{out}");
    assert_eq!(
        count(&app, "SELECT count(*) FROM symptom_submissions").await,
        12
    );

    assert_eq!(fingerprint(&src_pool).await, before, "the source changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn payloads_own_tables_come_in_with_their_arrays_and_an_import_is_undone_whole() {
    let app = spawn_app().await;
    let (src, src_pool) = source("tests/import/payload.sql").await;
    let before = fingerprint(&src_pool).await;
    let url = src.admin_url();
    let report = std::env::temp_dir().join(format!(
        "phi-import-{}.ndjson",
        uuid::Uuid::new_v4().simple()
    ));
    let (ok, out) = import(
        &app,
        &[
            "--source",
            &url,
            "--map",
            "deploy/import/payload.toml",
            "--report",
            report.to_str().unwrap(),
            "--verify",
        ],
        Some("payload-old-key"),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 8, skipped as already present 0, invalid 0"),
        "{out}"
    );
    assert!(out.contains("8 match, 0 differ"), "{out}");
    let run = run_id(&out);

    // users:2 owns submissions 1 and 5; the array's rows in their order.
    let page = json(
        app.as_patient("2")
            .get("/api/symptom-submissions?sort=createdAt")
            .await,
    )
    .await;
    let docs = page["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{page}");
    let notes: Vec<&str> = docs.iter().map(|d| d["notes"].as_str().unwrap()).collect();
    assert!(
        notes.contains(&"payload notes 1") && notes.contains(&"payload notes 5"),
        "{notes:?}"
    );
    let one = docs
        .iter()
        .find(|d| d["notes"] == "payload notes 1")
        .unwrap();
    assert_eq!(one["symptoms"][0]["name"], "Symptom 1.0", "{one}");
    assert_eq!(one["symptoms"][1]["onset"], "2026-02-02", "{one}");
    assert_eq!(one["dateOfBirth"], "1975-03-11", "{one}");
    let p = json(
        app.as_editor()
            .get("/api/practitioners?where[slug][equals]=mei-chen")
            .await,
    )
    .await;
    assert_eq!(
        p["docs"][0]["modalities"],
        serde_json::json!(["acupuncture", "tui-na"]),
        "{p}"
    );

    // Undone: every record gone, each deletion of PHI on the record.
    let (ok, out) = import(&app, &["--undo", &run], None);
    assert!(ok, "{out}");
    assert!(out.contains("8 records deleted"), "{out}");
    for t in [
        "herbs",
        "practitioners",
        "symptom_submissions",
        "import_rows",
    ] {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {t}")).await,
            0,
            "{t}"
        );
    }
    let deleted = count(
        &app,
        &format!(
            "SELECT count(*) FROM audit.log WHERE action = 'DELETE' AND actor_user = 'operator:import' \
             AND request_id = '{run}'"
        ),
    )
    .await;
    assert_eq!(deleted, 7, "a practitioner and six submissions");
    let (ok, out) = import(&app, &["--undo", &run], None);
    assert!(!ok && out.contains("undone already"), "{out}");
    assert_eq!(fingerprint(&src_pool).await, before, "the source changed");
    let _ = std::fs::remove_file(&report);
}

/// Submissions go in one statement a batch; a row the database refuses
/// there (a practitioner that does not exist) sends the batch through the
/// record-at-a-time path, which names it: the rest are written once.
#[tokio::test]
async fn a_batch_the_database_refuses_is_written_again_without_the_row_it_names() {
    let app = spawn_app().await;
    let src = TestDb::empty().await;
    let pool = src.admin_pool().await;
    pool.execute(
        "CREATE TABLE plain (id serial PRIMARY KEY, user_id text, symptoms text, notes text, practitioner_id text); \
         INSERT INTO plain (user_id, symptoms, notes, practitioner_id) \
         SELECT 'p' || i, '[{\"name\": \"Cough\", \"severity\": 2, \"onset\": \"2026-01-0' || (i % 9 + 1) || '\"}]', \
                'notes ' || i, CASE WHEN i = 7 THEN '0193a1f0-0000-7000-8000-000000000001' END \
         FROM generate_series(1, 20) i",
    )
    .await
    .unwrap();
    let map = std::env::temp_dir().join(format!("phi-map-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &map,
        "[[table]]\nsource = \"plain\"\ncollection = \"symptom-submissions\"\nkey = \"id\"\nowner = \"user_id\"\n\
         [table.fields]\nsymptoms = { column = \"symptoms\", json = true }\nnotes = \"notes\"\n\
         practitionerId = \"practitioner_id\"\n",
    )
    .unwrap();
    let report = std::env::temp_dir().join(format!(
        "phi-import-{}.ndjson",
        uuid::Uuid::new_v4().simple()
    ));
    let (ok, out) = import(
        &app,
        &[
            "--source",
            &src.admin_url(),
            "--map",
            map.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 19, skipped as already present 0, invalid 1"),
        "{out}"
    );
    let lines = std::fs::read_to_string(&report).unwrap();
    let refused: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(refused["key"], "7", "{lines}");
    assert_eq!(refused["errors"][0]["path"], "practitionerId", "{lines}");
    assert_eq!(
        count(&app, "SELECT count(*) FROM symptom_submissions").await,
        19
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM submission_facts").await,
        19,
        "each submission's facts, written with it"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit.log WHERE action = 'CREATE' AND entity_type = 'symptom_submissions'").await,
        19,
        "one CREATE entry a record, by the table's trigger"
    );
    // Each owner sees their own, with its notes.
    let page = json(app.as_patient("p3").get("/api/symptom-submissions").await).await;
    assert_eq!(page["docs"][0]["notes"], "notes 3", "{page}");
    std::fs::remove_file(map).ok();
    std::fs::remove_file(report).ok();
}
