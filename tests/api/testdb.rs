//! A database of its own per test (or benchmark): cloned from a template
//! migrated once per migration set, dropped afterwards. Shared by the
//! integration tests and the benches (which include this file by path), so
//! both make databases the same way.

#![allow(dead_code)]

use std::sync::OnceLock;

use phi_gateway::db::MIGRATOR;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

/// The private cluster's superuser URL (exported by `deploy/pg.sh env`).
pub fn admin_url() -> String {
    std::env::var("PHI_PG_ADMIN_URL").expect(
        "PHI_PG_ADMIN_URL is not set: run the tests with deploy/test.sh \
         (or `source .local/pg/env` after deploy/pg.sh start)",
    )
}

pub fn app_password() -> String {
    std::env::var("PHI_PG_APP_PASSWORD").expect("PHI_PG_APP_PASSWORD is not set")
}

pub fn sealer_password() -> String {
    std::env::var("PHI_PG_SEALER_PASSWORD").expect("PHI_PG_SEALER_PASSWORD is not set")
}

/// `postgres://user:pw@host:port/<db>` for the same cluster.
pub fn url_for(user: &str, password: &str, db: &str) -> String {
    let admin = admin_url();
    let host = admin.split('@').nth(1).unwrap().split('/').next().unwrap();
    format!("postgres://{user}:{password}@{host}/{db}")
}

fn admin_url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

pub async fn admin_conn() -> PgConnection {
    PgConnection::connect(&admin_url()).await.unwrap()
}

/// The template's name changes whenever a migration does.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut h: u64 = 0xcbf29ce484222325;
        for m in MIGRATOR.iter() {
            for b in m
                .version
                .to_le_bytes()
                .iter()
                .chain(m.checksum.iter())
                .chain([m.migration_type.is_down_migration() as u8].iter())
            {
                h ^= *b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        }
        format!("phi_tpl_{h:016x}")
    })
}

/// Creates the migrated template once per cluster (several test processes
/// may race: an advisory lock serialises them, and the template appears under
/// its final name only when complete).
async fn ensure_template() {
    let name = template_name();
    let mut admin = admin_conn().await;
    admin
        .execute("SELECT pg_advisory_lock(7241001)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building}").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {building}").as_str())
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url_for(&building))
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.expect("migrations apply");
        pool.close().await;
        // The closed pool's backend may take a moment to leave, and has
        // been seen to stay (idle after the migrator's unlock) until
        // PostgreSQL's rename gave up: nothing else may be connected to
        // the half-built template, so whatever is goes.
        let mut tries = 0;
        loop {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&building)
            .execute(&mut admin)
            .await
            .unwrap();
            match admin
                .execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 100 && e.to_string().contains("being accessed") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("renaming the template: {e}"),
            }
        }
    }
    admin
        .execute("SELECT pg_advisory_unlock(7241001)")
        .await
        .unwrap();
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A migrated database: a clone of the template, with the
    /// database-level privileges the migrations set (which `CREATE
    /// DATABASE` does not copy) set again.
    pub async fn migrated() -> Self {
        ensure_template().await;
        Self::create(Some(template_name())).await
    }

    /// An empty database (no migrations).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_conn().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin.execute(sql.as_str()).await.unwrap();
        if template.is_some() {
            // What the migrations grant on the database itself (0001, 0009,
            // 0010).
            admin
                .execute(
                    format!(
                        "REVOKE ALL ON DATABASE {name} FROM PUBLIC; \
                         GRANT CONNECT ON DATABASE {name} TO phi_app, phi_analytics, phi_auditor, phi_sealer; \
                         GRANT TEMPORARY ON DATABASE {name} TO phi_owner"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
        }
        Self { name }
    }

    pub fn admin_url(&self) -> String {
        admin_url_for(&self.name)
    }

    pub fn app_url(&self) -> String {
        url_for("phi_app", &app_password(), &self.name)
    }

    pub fn sealer_url(&self) -> String {
        url_for("phi_sealer", &sealer_password(), &self.name)
    }

    /// A pool as the sealer's role.
    pub async fn sealer_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.sealer_url())
            .await
            .unwrap()
    }

    pub async fn admin_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.admin_url())
            .await
            .unwrap()
    }

    pub async fn app_conn(&self) -> PgConnection {
        PgConnection::connect(&self.app_url()).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we can borrow: use a thread
        // with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
