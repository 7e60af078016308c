//! A streaming replica (pg_basebackup, deploy/replica.sh) behind
//! `DATABASE_READ_URL`: the public directory read without credentials is
//! served from it; PHI, and everything a signed-in caller reads, stays on
//! the primary (a read writes its audit entry); the analytics and auditor
//! roles read the replica directly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::helpers::{Remote, http_client, json, start_server, test_settings};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(root().join("deploy").join(name))
        .args(args)
        .env("PHI_PG_FAST", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn env_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("export {name}='")))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap()
        .to_string()
}

struct Clusters {
    primary: PathBuf,
    replica: PathBuf,
}

impl Drop for Clusters {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("deploy/replica.sh"))
            .arg("stop")
            .arg(&self.replica)
            .output();
        let _ = std::fs::remove_dir_all(&self.replica);
        let _ = Command::new("bash")
            .arg(root().join("deploy/pg.sh"))
            .arg("destroy")
            .arg(&self.primary)
            .output();
    }
}

async fn names(app: &Remote<'_>, who: Option<(&str, &[&str])>) -> Vec<String> {
    let page = json(app.get_as("/api/herbs?limit=100", who).await).await;
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
    let c = Clusters {
        primary: base.join("primary"),
        replica: base.join("replica"),
    };
    std::fs::create_dir_all(&c.primary).unwrap();
    script("pg.sh", &["start", c.primary.to_str().unwrap()]);
    let port = env_of(&c.primary, "PHI_PG_PORT");
    let admin_root = env_of(&c.primary, "PHI_PG_ADMIN_URL");
    let base_url = admin_root.rsplit_once('/').unwrap().0.to_string();
    let mut admin = sqlx::PgConnection::connect(&admin_root).await.unwrap();
    sqlx::query("CREATE DATABASE phi")
        .execute(&mut admin)
        .await
        .unwrap();
    let app_pw = env_of(&c.primary, "PHI_PG_APP_PASSWORD");
    let primary_app = format!("postgres://phi_app:{app_pw}@127.0.0.1:{port}/phi");
    let migrate = test_settings(
        &primary_app,
        &[("MIGRATION_DATABASE_URL", format!("{base_url}/phi").as_str())],
    );
    phi_gateway::db::migrate(&migrate.database).await.unwrap();

    let out = script(
        "replica.sh",
        &[
            "start",
            c.primary.to_str().unwrap(),
            c.replica.to_str().unwrap(),
        ],
    );
    let rport = out
        .trim()
        .strip_prefix("export PHI_REPLICA_PORT=")
        .unwrap()
        .to_string();
    let replica_app = format!("postgres://phi_app:{app_pw}@127.0.0.1:{rport}/phi");
    let replica_admin = format!(
        "{}/phi",
        base_url.replace(&format!(":{port}"), &format!(":{rport}"))
    );
    let address = start_server(test_settings(
        &primary_app,
        &[("DATABASE_READ_URL", replica_app.as_str())],
    ))
    .await;
    let client = http_client();
    let app = crate::helpers::TestApp::at(&address, &client);
    let editor = Some(("ed", &["editor"][..]));
    let patient = Some(("pat", &[][..]));
    let herb = |name: &str| json!({"name": name, "slug": name.to_lowercase().replace(' ', "-"), "status": "published"});

    let res = app
        .post_json("/api/herbs", editor, &herb("First herb"))
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
        .post_json("/api/herbs", editor, &herb("Second herb"))
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
        .post_json(
            "/api/symptom-submissions",
            patient,
            &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get_as(&format!("/api/symptom-submissions/{id}"), patient)
            .await
            .status(),
        200
    );
    let mut on_primary = sqlx::PgConnection::connect(&format!("{base_url}/phi"))
        .await
        .unwrap();
    let reads: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.log WHERE action = 'READ'")
        .fetch_one(&mut on_primary)
        .await
        .unwrap();
    assert!(reads >= 1);
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_replica)
        .await
        .unwrap();
    eventually("the replica catches up", async || {
        names(&app, None).await.contains(&"Second herb".to_string())
    })
    .await;

    // The analysts' and auditors' roles read the replica directly.
    let analytics = format!(
        "postgres://phi_analytics:{}@127.0.0.1:{rport}/phi",
        env_of(&c.primary, "PHI_PG_ANALYTICS_PASSWORD")
    );
    let mut a = sqlx::PgConnection::connect(&analytics).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM analytics.submissions_weekly")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let auditor = format!(
        "postgres://phi_auditor:{}@127.0.0.1:{rport}/phi",
        env_of(&c.primary, "PHI_PG_AUDITOR_PASSWORD")
    );
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
    drop(c);
    std::fs::remove_dir_all(base).ok();
}
