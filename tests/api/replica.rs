//! A streaming replica (pg_basebackup, deploy/replica.sh) behind
//! `DATABASE_READ_URL`: the public directory read without credentials is
//! served from it; PHI, and everything a signed-in caller reads, stays on
//! the primary (a read writes its audit entry); the analytics and auditor
//! roles read the replica directly.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::cluster::{OwnCluster, script};
use crate::helpers::{Remote, http_client, json, start_server, test_settings};

/// The replica, stopped and removed when dropped (before its primary).
struct Replica(PathBuf);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(crate::cluster::root().join("deploy/replica.sh"))
            .arg("stop")
            .arg(&self.0)
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn names(app: &Remote<'_>, who: Option<(&str, &[&str])>) -> Vec<String> {
    let page = json(app.caller(who).get("/api/herbs?limit=100").await).await;
    page["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_public_directory_reads_from_the_replica_and_phi_stays_on_the_primary() {
    let base = std::env::temp_dir().join(format!("phi-replica-{}", uuid::Uuid::new_v4().simple()));
    let primary = OwnCluster::start(&base.join("primary"), true);
    let port = primary.port();
    primary.migrated("phi").await;
    let replica = Replica(base.join("replica"));
    let out = script(
        "replica.sh",
        &["start", primary.dir_str(), replica.0.to_str().unwrap()],
        true,
    );
    let rport = out
        .lines()
        .find_map(|l| l.strip_prefix("export PHI_REPLICA_PORT="))
        .unwrap()
        .to_string();
    let on_port = |url: String| url.replace(&format!(":{port}/"), &format!(":{rport}/"));
    let primary_app = primary.app("phi");
    let replica_app = on_port(primary.app("phi"));
    let replica_admin = on_port(primary.admin("phi"));
    let address = start_server(test_settings(
        &primary_app,
        &[
            ("DATABASE_READ_URL", replica_app.as_str()),
            ("DATABASE_READ_MAX_LAG_SECS", "5"),
        ],
    ))
    .await;
    let client = http_client();
    let app = crate::helpers::TestApp::at(&address, &client);
    let editor = Some(("ed", &["editor"][..]));
    let patient = Some(("pat", &[][..]));
    let herb = |name: &str| json!({"name": name, "slug": name.to_lowercase().replace(' ', "-"), "status": "published"});

    let res = app
        .caller(editor)
        .post("/api/herbs", &herb("First herb"))
        .await;
    assert_eq!(res.status(), 201);
    eventually("the replica has the first herb", async || {
        names(&app, None).await.contains(&"First herb".to_string())
    })
    .await;

    // Replay paused on the replica: what is written now reaches the primary
    // only. Callers without credentials do not see it yet (they read the
    // replica); a signed-in caller does (the primary).
    let mut on_replica = sqlx::PgConnection::connect(&replica_admin).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut on_replica)
        .await
        .unwrap();
    let res = app
        .caller(editor)
        .post("/api/herbs", &herb("Second herb"))
        .await;
    assert_eq!(res.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!names(&app, None).await.contains(&"Second herb".to_string()));
    assert!(
        names(&app, editor)
            .await
            .contains(&"Second herb".to_string())
    );
    // PHI stays on the primary: a patient's write is read back at once,
    // and the read's audit entry is written (the replica takes no write).
    let res = app
        .caller(patient)
        .post(
            "/api/symptom-submissions",
            &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.caller(patient)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await
            .status(),
        200
    );
    let mut on_primary = sqlx::PgConnection::connect(&primary.admin("phi"))
        .await
        .unwrap();
    let reads: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'READ'")
        .fetch_one(&mut on_primary)
        .await
        .unwrap();
    assert!(reads >= 1);

    // Paused past its bound (5 s here), the replica is passed over: the
    // directory is read from the primary, and the operations listener says
    // why.
    let details = async || {
        json(
            client
                .get(crate::helpers::ops_url(&address, "/health/database"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    eventually("the directory falls back to the primary", async || {
        names(&app, None).await.contains(&"Second herb".to_string())
    })
    .await;
    let d = details().await;
    assert_eq!(d["replica"]["inUse"], false, "{d}");
    assert!(d["replica"]["lagSeconds"].as_f64().unwrap() > 5.0, "{d}");
    assert_eq!(d["replica"]["maxLagSeconds"], 5.0, "{d}");
    let metrics = crate::helpers::scrape(&client, &address).await;
    assert!(metrics.contains("phi_db_replica_in_use 0"), "{metrics}");

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_replica)
        .await
        .unwrap();
    eventually("the replica is back in use", async || {
        details().await["replica"]["inUse"] == true
    })
    .await;
    assert!(names(&app, None).await.contains(&"Second herb".to_string()));

    // The analysts' and auditors' roles read the replica directly.
    let analytics = on_port(primary.url("phi_analytics", "PHI_PG_ANALYTICS_PASSWORD", "phi"));
    let mut a = sqlx::PgConnection::connect(&analytics).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics.submissions_weekly")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let auditor = on_port(primary.url("phi_auditor", "PHI_PG_AUDITOR_PASSWORD", "phi"));
    let mut au = sqlx::PgConnection::connect(&auditor).await.unwrap();
    eventually("the replica has the audit entries", async || {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.log")
            .fetch_one(&mut au)
            .await
            .unwrap();
        n >= reads
    })
    .await;
    // And it is read-only.
    let err =
        sqlx::query("INSERT INTO herbs (id, name, slug) VALUES (gen_random_uuid(), 'x', 'x')")
            .execute(&mut on_replica)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    drop(replica);
    drop(primary);
    std::fs::remove_dir_all(base).ok();
}
