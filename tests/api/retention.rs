//! Issue 22: retention. The oldest monthly partitions past six years, and
//! not under a legal hold, move to a signed archive file; the live chain
//! still verifies from the signed cut, the archive verifies offline, and a
//! patient's report says which period it no longer covers.

use std::sync::Arc;

use phi_gateway::audit::anchor::Anchor;
use phi_gateway::audit::archive;
use phi_gateway::audit::chain::VerifyKeys;
use phi_gateway::audit::export;
use phi_gateway::audit::sealer::Sealer;
use phi_gateway::audit::verify;
use sqlx::{Executor, PgPool};

use crate::helpers::{json, signing_keys, spawn_app, uid, verifying_keys};

const PAT: &str = "pat-ret";
const HELD: &str = "held-ret";

/// Monthly partitions of 2019, made as ensure_partitions makes them, and
/// entries in them: about PAT in January, about HELD in February.
async fn old_months(admin: &PgPool) {
    let mut conn = admin.acquire().await.unwrap();
    for (name, from, to) in [
        ("log_2019_01", "2019-01-01", "2019-02-01"),
        ("log_2019_02", "2019-02-01", "2019-03-01"),
    ] {
        conn.execute(
            format!(
                "SET ROLE phi_owner; \
                 CREATE TABLE audit.{name} PARTITION OF audit.log FOR VALUES FROM ('{from}') TO ('{to}'); \
                 SELECT audit.guard('audit.{name}'); RESET ROLE;"
            )
            .as_str(),
        )
        .await
        .unwrap();
    }
    for (n, subject, day) in [(5, PAT, "2019-01-10"), (3, HELD, "2019-02-10")] {
        sqlx::query(
            "INSERT INTO audit.log (at, actor_user, actor_roles, action, entity_type, entity_id, outcome, fields, subject, purpose) \
             SELECT $3::timestamptz + i * interval '1 minute', 'users:doc-ret', 'practitioner', 'READ', \
                    'symptom_submissions', md5(i::text), 'success', '{notes}', $2, 'treatment' \
             FROM generate_series(1, $1) i",
        )
        .bind(n)
        .bind(uid(subject))
        .bind(day)
        .execute(admin)
        .await
        .unwrap();
    }
}

async fn verified(pool: &PgPool, anchor: &Anchor) -> verify::Verification {
    let keys = verifying_keys();
    let anchored = Anchor::read(anchor.path()).unwrap();
    verify::verify(
        pool,
        VerifyKeys {
            public: Some(&keys),
            keyring: None,
        },
        Some(&anchored),
        None,
        None,
    )
    .await
    .unwrap()
}

async fn refusal(admin: &PgPool, sql: &str) -> String {
    sqlx::query(sql)
        .execute(admin)
        .await
        .expect_err(sql)
        .to_string()
}

#[tokio::test]
async fn old_partitions_are_archived_past_six_years_and_holds_and_the_chain_hold() {
    let app = spawn_app().await;
    let admin = app.db.admin_pool().await;
    old_months(&admin).await;
    // Today's entries, after the old ones.
    let res = app
        .as_patient(PAT)
        .post(
            "/api/symptom-submissions",
            &serde_json::json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let dir = std::env::temp_dir().join(format!("phi-retention-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let anchor = Anchor::new(dir.join("anchor.jsonl"));
    let sealer = Sealer {
        pool: admin.clone(),
        signing: Arc::new(signing_keys()),
        anchor: Some(anchor.clone()),
    };
    sealer.checkpoint().await.unwrap().expect("a head");

    // A hold on HELD keeps February, and with it everything after.
    let hold = archive::place_hold(
        &admin,
        Some(&uid(HELD)),
        None,
        None,
        "matter 22-7",
        "counsel",
    )
    .await
    .unwrap();
    let parts = archive::partitions(&admin).await.unwrap();
    let (take, why) = archive::eligible(&parts, 6, chrono::Utc::now());
    let names: Vec<&str> = take.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["log_2019_01"]);
    assert_eq!(
        why.as_deref(),
        Some(format!("log_2019_02 is under legal hold {hold}").as_str())
    );

    // The database refuses what the settings might let through: less than
    // six years, a held partition, a partition that is not the oldest.
    let cp: i64 = sqlx::query_scalar("SELECT max(id) FROM audit.checkpoints")
        .fetch_one(&admin)
        .await
        .unwrap();
    let e = refusal(
        &admin,
        &format!("SELECT audit.archive_cut('{{log_2019_01}}', interval '5 years', 5, {cp}, 'f', 's', 5, 'x')"),
    )
    .await;
    assert!(e.contains("below six years"), "{e}");
    let e = refusal(
        &admin,
        &format!("SELECT audit.archive_cut('{{log_2019_02}}', interval '6 years', 8, {cp}, 'f', 's', 3, 'x')"),
    )
    .await;
    assert!(e.contains("not the oldest"), "{e}");
    let e = refusal(
        &admin,
        &format!(
            "SELECT audit.archive_cut('{{log_2019_01,log_2019_02}}', interval '6 years', 8, {cp}, 'f', 's', 8, 'x')"
        ),
    )
    .await;
    assert!(e.contains(&format!("legal hold {hold}")), "{e}");
    // Holds are never deleted, and released once.
    let e = refusal(&admin, "DELETE FROM audit.legal_holds").await;
    assert!(e.contains("only ever released"), "{e}");

    // January is archived: to a file that verifies offline, and the live
    // chain verifies from the signed cut, anchored checkpoints included.
    let a = archive::archive(&sealer, &take, 6, &dir.join("archive"), "operator:test")
        .await
        .unwrap();
    assert_eq!((a.first_pos, a.last_pos, a.rows), (1, 5, 5), "{a:?}");
    let gone: Option<String> = sqlx::query_scalar("SELECT to_regclass('audit.log_2019_01')::text")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(gone, None, "the partition is dropped");
    let file = std::fs::File::open(&a.file).unwrap();
    let m = export::verify_file(std::io::BufReader::new(file), None, &verifying_keys()).unwrap();
    assert_eq!((m.first_pos, m.last_pos, m.rows), (Some(1), Some(5), 5));
    assert_eq!(m.checkpoint.as_ref().map(|c| c.pos), Some(5));
    let v = verified(&admin, &anchor).await;
    assert_eq!(v.first_problem, None, "{v:?}");
    assert_eq!(v.archived_through, Some(5));
    assert!(v.entries_checked >= 4, "{v:?}");
    // An archive file altered after the fact does not verify.
    let text = std::fs::read_to_string(&a.file).unwrap();
    let altered = text.replacen("users:doc-ret", "users:doc-rex", 1);
    assert!(export::verify_file(altered.as_bytes(), None, &verifying_keys()).is_err());

    // The patient's report says which period it no longer covers.
    let report = json(
        app.as_patient(PAT)
            .get("/api/audit/my-access-report?from=2018-06-01T00:00:00Z")
            .await,
    )
    .await;
    assert_eq!(report["archivedBefore"], "2019-02-01T00:00:00Z", "{report}");
    let recent = json(app.as_patient(PAT).get("/api/audit/my-access-report").await).await;
    assert!(recent.get("archivedBefore").is_none(), "{recent}");

    // Released, February follows, continuing the chain where January ended.
    archive::release_hold(&admin, hold, "counsel")
        .await
        .unwrap();
    assert!(
        archive::release_hold(&admin, hold, "counsel")
            .await
            .is_err()
    );
    let parts = archive::partitions(&admin).await.unwrap();
    let (take, _) = archive::eligible(&parts, 6, chrono::Utc::now());
    assert_eq!(take.first().map(|p| p.name.as_str()), Some("log_2019_02"));
    let b = archive::archive(&sealer, &take, 6, &dir.join("archive"), "operator:test")
        .await
        .unwrap();
    assert_eq!((b.first_pos, b.last_pos, b.rows), (6, 8, 3), "{b:?}");
    let v = verified(&admin, &anchor).await;
    assert_eq!(v.first_problem, None, "{v:?}");
    assert_eq!(v.archived_through, Some(8));
    // The cut hides nothing after it: a live entry deleted is still found.
    let mut conn = admin.acquire().await.unwrap();
    conn.execute(
        "SET session_replication_role = replica; \
         DELETE FROM audit.log WHERE seq = (SELECT max(seq) FROM audit.log); \
         SET session_replication_role = origin",
    )
    .await
    .unwrap();
    drop(conn);
    let v = verified(&admin, &anchor).await;
    assert!(v.first_problem.is_some(), "{v:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
