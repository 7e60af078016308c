//! PostgreSQL clusters of a test's own (deploy/pg.sh), for the tests that
//! stop, kill, back up or replicate PostgreSQL: the shared test cluster
//! must never see that. Destroyed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `deploy/NAME ARGS`, fails the test if it fails, returns its output.
/// `fast`: deploy/pg.sh's PHI_PG_FAST (fsync and synchronous commit off).
pub fn script(name: &str, args: &[&str], fast: bool) -> String {
    let out = Command::new("bash")
        .arg(root().join("deploy").join(name))
        .args(args)
        .env("PHI_PG_FAST", if fast { "1" } else { "0" })
        .output()
        .unwrap();
    let text = crate::helpers::output_text(&out);
    assert!(out.status.success(), "{name} {args:?}: {text}");
    text
}

pub struct OwnCluster {
    pub dir: PathBuf,
    fast: bool,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("deploy/pg.sh"))
            .arg("destroy")
            .arg(&self.dir)
            .output();
    }
}

impl OwnCluster {
    /// Makes and starts a cluster in `dir`.
    pub fn start(dir: &Path, fast: bool) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let c = Self::at(dir, fast);
        c.pg("start");
        c
    }

    /// A cluster something else made in `dir` (a restore), to clean up.
    pub fn at(dir: &Path, fast: bool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            fast,
        }
    }

    pub fn pg(&self, cmd: &str) {
        script("pg.sh", &[cmd, self.dir.to_str().unwrap()], self.fast);
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// A variable of the cluster's environment (deploy/pg.sh env).
    pub fn env(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("env"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}='")))
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{name} not in {}/env", self.dir.display()))
            .to_string()
    }

    pub fn port(&self) -> String {
        self.env("PHI_PG_PORT")
    }

    /// The superuser's URL for database `db`.
    pub fn admin(&self, db: &str) -> String {
        let url = self.env("PHI_PG_ADMIN_URL");
        format!("{}/{db}", url.rsplit_once('/').unwrap().0)
    }

    /// A login role's URL (`password_var`: its variable in the env file).
    pub fn url(&self, user: &str, password_var: &str, db: &str) -> String {
        format!(
            "postgres://{user}:{}@127.0.0.1:{}/{db}",
            self.env(password_var),
            self.port()
        )
    }

    pub fn app(&self, db: &str) -> String {
        self.url("phi_app", "PHI_PG_APP_PASSWORD", db)
    }

    pub fn sealer(&self, db: &str) -> String {
        self.url("phi_sealer", "PHI_PG_SEALER_PASSWORD", db)
    }

    /// Creates database `db` and migrates it.
    pub async fn migrated(&self, db: &str) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.admin("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut c)
            .await
            .unwrap();
        let admin = self.admin(db);
        let settings = crate::helpers::test_settings(
            &self.app(db),
            &[("MIGRATION_DATABASE_URL", admin.as_str())],
        );
        phi_gateway::db::migrate(&settings.database).await.unwrap();
    }
}
