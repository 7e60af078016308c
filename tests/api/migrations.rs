use phi_gateway::db::MIGRATOR;
use sqlx::{Connection, Executor, Row};

use crate::helpers::TestDb;

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    let db = TestDb::empty().await;
    let pool = db.admin_pool().await;
    MIGRATOR.run(&pool).await.expect("up");
    MIGRATOR.undo(&pool, 0).await.expect("down");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_extension WHERE extname IN ('cube', 'earthdistance')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "down left extensions behind");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
         AND tablename <> '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "down left tables behind");
    MIGRATOR.run(&pool).await.expect("up again");
    pool.close().await;
}

#[tokio::test]
async fn roles_have_exactly_the_powers_the_design_gives_them() {
    let db = TestDb::migrated().await;
    let pool = db.admin_pool().await;
    let rows = sqlx::query(
        "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb \
         FROM pg_roles WHERE rolname LIKE 'phi\\_%' ORDER BY rolname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let got: Vec<(String, bool, bool, bool, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("phi_analytics".into(), true, false, false, false, false),
            ("phi_app".into(), true, false, false, false, false),
            ("phi_auditor".into(), true, false, false, false, false),
            ("phi_owner".into(), false, false, false, false, false),
            ("phi_sealer".into(), true, false, false, false, false),
        ]
    );
    // phi_app owns nothing in this database.
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner \
         WHERE r.rolname = 'phi_app'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(owned, 0);
}

#[tokio::test]
async fn phi_app_cannot_create_tables_or_bypass_rls() {
    // Migrated in place, not cloned: a clone does not inherit the database's
    // own privileges (datacl), which this test is about.
    let db = TestDb::empty().await;
    let pool = db.admin_pool().await;
    MIGRATOR.run(&pool).await.expect("up");
    pool.close().await;
    let mut app = db.app_conn().await;
    for ddl in [
        "CREATE TABLE sneaky (x int)",
        "CREATE TEMP TABLE sneaky (x int)",
        "CREATE SCHEMA sneaky",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'select 1'",
    ] {
        let err = app.execute(ddl).await.expect_err(ddl);
        let code = err.as_database_error().and_then(|e| e.code()).unwrap();
        assert_eq!(code, "42501", "{ddl}: {err}"); // insufficient_privilege
    }

    // A table under forced RLS whose policy admits nobody: phi_app sees no
    // row even with SELECT granted, and cannot switch RLS off.
    let mut admin = sqlx::PgConnection::connect(&db.admin_url()).await.unwrap();
    admin
        .execute(
            "SET ROLE phi_owner; \
             CREATE TABLE rls_probe (id int); \
             INSERT INTO rls_probe VALUES (1), (2); \
             ALTER TABLE rls_probe ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE rls_probe FORCE ROW LEVEL SECURITY; \
             CREATE POLICY nobody ON rls_probe USING (false); \
             GRANT SELECT ON rls_probe TO phi_app; RESET ROLE;",
        )
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM rls_probe")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    app.execute("SET row_security = off")
        .await
        .expect("setting is allowed");
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rls_probe")
        .fetch_one(&mut app)
        .await
        .expect_err("row_security=off must not let phi_app read past a policy");
    assert!(err.to_string().contains("row-level security"), "{err}");
    let err = app
        .execute("ALTER TABLE rls_probe DISABLE ROW LEVEL SECURITY")
        .await
        .unwrap_err();
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "42501");
}
