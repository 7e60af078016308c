//! Migrations as a managed PostgreSQL's administrator would run them: a
//! role with CREATEROLE and CREATEDB that owns the database and is not a
//! superuser (RDS's `rds_superuser`, Cloud SQL's `cloudsqlsuperuser` and
//! Azure's admin give about that). Only `earthdistance`, which PostgreSQL
//! does not mark trusted, needs the provider's own hand; the gateway says
//! so, and once it is there, migrates, serves, and keeps RLS deciding.

use sqlx::Connection;

use crate::cluster::OwnCluster;
use crate::helpers::{bearer, http_client, start_server, test_settings};

#[tokio::test]
async fn a_createrole_administrator_without_superuser_migrates_and_the_gateway_serves() {
    let dir = std::env::temp_dir().join(format!("phi-managed-{}", uuid::Uuid::new_v4().simple()));
    let cluster = OwnCluster::start(&dir, true);
    let port = cluster.port();
    let mut su = sqlx::PgConnection::connect(&cluster.admin("postgres"))
        .await
        .unwrap();
    for sql in [
        "CREATE ROLE cloud_admin LOGIN CREATEROLE CREATEDB PASSWORD 'cloud-admin-pw'",
        "CREATE DATABASE phi OWNER cloud_admin",
    ] {
        sqlx::query(sql).execute(&mut su).await.unwrap();
    }
    let admin = format!("postgres://cloud_admin:cloud-admin-pw@127.0.0.1:{port}/phi");
    // The login roles are the administrator's to make, as on a managed
    // server (deploy/pg.sh made them as its superuser).
    let mut cloud = sqlx::PgConnection::connect(&admin).await.unwrap();
    for (role, password) in [
        ("phi_app", "PHI_PG_APP_PASSWORD"),
        ("phi_analytics", "PHI_PG_ANALYTICS_PASSWORD"),
        ("phi_auditor", "PHI_PG_AUDITOR_PASSWORD"),
        ("phi_sealer", "PHI_PG_SEALER_PASSWORD"),
    ] {
        sqlx::query(&format!("DROP ROLE {role}"))
            .execute(&mut su)
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{}'",
            cluster.env(password)
        ))
        .execute(&mut cloud)
        .await
        .unwrap();
    }
    let settings = test_settings(
        &cluster.app("phi"),
        &[("MIGRATION_DATABASE_URL", admin.as_str())],
    );

    // Without the untrusted extension: a clear refusal, naming what to run.
    let err = phi_gateway::db::migrate(&settings.database)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("cannot create the extension earthdistance")
            && text.contains("CREATE EXTENSION earthdistance"),
        "{text}"
    );

    // The provider's step (its console, allow-list or own role).
    let mut su_phi = sqlx::PgConnection::connect(&cluster.admin("phi"))
        .await
        .unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS earthdistance CASCADE")
        .execute(&mut su_phi)
        .await
        .unwrap();
    phi_gateway::db::migrate(&settings.database).await.unwrap();
    // Again: nothing to do, nothing refused.
    phi_gateway::db::migrate(&settings.database).await.unwrap();

    let (owner_super, tables_owner): (bool, String) = sqlx::query_as(
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = 'cloud_admin'), \
                (SELECT tableowner::text FROM pg_tables WHERE tablename = 'symptom_submissions')",
    )
    .fetch_one(&mut su_phi)
    .await
    .unwrap();
    assert!(!owner_super);
    assert_eq!(tables_owner, "phi_owner");

    // The gateway on it: a patient writes and reads back; another sees
    // nothing of it.
    let address = start_server(settings).await;
    let client = http_client();
    let body = serde_json::json!({
        "symptoms": [{"name": "Headache", "severity": 3, "onset": "2026-11-30"}],
        "notes": "since Monday",
        "contactEmail": "pat@example.org",
        "dateOfBirth": "1990-01-02",
        "region": "CA-ON"
    });
    let created = client
        .post(format!("{address}/api/symptom-submissions"))
        .header("authorization", bearer("5", &[]))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let id = created.json::<serde_json::Value>().await.unwrap()["doc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let own = client
        .get(format!("{address}/api/symptom-submissions/{id}"))
        .header("authorization", bearer("5", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(
        own.json::<serde_json::Value>().await.unwrap()["notes"],
        "since Monday"
    );
    let other = client
        .get(format!("{address}/api/symptom-submissions/{id}"))
        .header("authorization", bearer("6", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}
