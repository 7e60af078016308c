//! The one description of each collection (`schema`) against the live
//! database: every column that can hold sealed or keyed-hash bytes is
//! covered, so a new sealed column cannot be left out of key usage,
//! re-encryption and retirement checks; and every column, field and
//! constraint the description names exists.

use std::collections::BTreeSet;

use phi_gateway::schema::{ALL, FieldKind};

use crate::helpers::TestDb;

#[tokio::test]
async fn the_collection_descriptions_match_the_live_schema() {
    let db = TestDb::migrated().await;
    let pool = db.admin_pool().await;
    let bytea: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND data_type = 'bytea' AND table_name <> '_sqlx_migrations' \
           AND table_name IN (SELECT table_name FROM information_schema.tables \
                              WHERE table_schema = 'public' AND table_type = 'BASE TABLE') \
         ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let declared: BTreeSet<(String, String)> = ALL
        .iter()
        .flat_map(|c| {
            c.sealed
                .iter()
                .map(|s| (c.table.to_string(), s.to_string()))
                .chain(
                    c.blind
                        .iter()
                        .map(|b| (c.table.to_string(), b.column.to_string())),
                )
        })
        .collect();
    let live: BTreeSet<(String, String)> = bytea.into_iter().collect();
    let uncovered: Vec<_> = live.difference(&declared).collect();
    assert!(
        uncovered.is_empty(),
        "bytea columns no collection declares as sealed or blind-indexed: {uncovered:?}"
    );
    let missing: Vec<_> = declared.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "declared but not bytea in the database: {missing:?}"
    );

    // Every table of the public schema is described: a new collection's
    // table left out of `schema::ALL` is a failing test, not a table the
    // key rotation, the audit map and the field tests never reach.
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    // `key_checks` holds the keyring's check values (migration 0013): key
    // metadata, no document. `import_runs` and `import_rows` (0018) say
    // which source key became which record: bookkeeping, no value.
    // `auth_logouts` (0019): logged-out sessions' keys, no value.
    let described: BTreeSet<String> = ALL
        .iter()
        .map(|c| c.table)
        .chain(["key_checks", "import_runs", "import_rows", "auth_logouts"])
        .map(String::from)
        .collect();
    assert_eq!(
        tables, described,
        "tables of the public schema vs schema::ALL"
    );

    for c in ALL {
        let columns: BTreeSet<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(c.table)
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert!(!columns.is_empty(), "no table {}", c.table);
        for f in c.fields {
            if f.kind != FieldKind::Location {
                assert!(
                    columns.contains(f.column),
                    "{}.{} ({})",
                    c.table,
                    f.column,
                    f.name
                );
            }
        }
        for (col, _) in c.default_order {
            assert!(columns.contains(*col), "{}.{col}", c.table);
        }
        for (constraint, path) in c.constraints {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = $2::regclass)",
            )
            .bind(constraint)
            .bind(c.table)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(
                found,
                "{}: no constraint {constraint} (for {path})",
                c.table
            );
        }
    }
}

/// The audit trigger's column map (`audit.fields`, migration 0015) is the
/// one `schema.rs` describes, and names every sealed column of the tables
/// it audits: a sealed column added without its line there is a failing
/// test, not an entry without the field's name.
#[tokio::test]
async fn the_audit_triggers_map_is_the_descriptions() {
    let db = TestDb::migrated().await;
    let pool = db.admin_pool().await;
    let live: BTreeSet<(String, String, String, i32, bool, bool)> = sqlx::query_as(
        "SELECT entity_type, column_name, api_name, ord, on_create, with_values FROM audit.fields",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let described: BTreeSet<(String, String, String, i32, bool, bool)> = ALL
        .iter()
        .flat_map(|c| {
            c.audited.iter().enumerate().map(|(i, a)| {
                (
                    c.table.to_string(),
                    a.column.to_string(),
                    a.name.to_string(),
                    i as i32 + 1,
                    a.on_create,
                    a.with_values,
                )
            })
        })
        .collect();
    assert_eq!(live, described);
    // Every table with an audit trigger has its map, and its sealed
    // columns are in it (none of them with values).
    let triggered: BTreeSet<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE t.tgname = 'zz_audit_changes'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let mapped: BTreeSet<String> = ALL
        .iter()
        .filter(|c| !c.audited.is_empty())
        .map(|c| c.table.to_string())
        .collect();
    assert_eq!(triggered, mapped);
    // Each trigger runs the function generated from the map (0020), and
    // that function names every mapped column: a map changed without
    // `audit.generate_trigger` fails here.
    for c in ALL.iter().filter(|c| !c.audited.is_empty()) {
        let (function, source): (String, String) = sqlx::query_as(
            "SELECT p.proname::text, p.prosrc FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgname = 'zz_audit_changes' AND c.relname = $1",
        )
        .bind(c.table)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(function, format!("{}_changed", c.table));
        assert!(
            source.contains("Generated by audit.generate_trigger"),
            "{source}"
        );
        for a in c.audited {
            assert!(
                source.contains(&format!(
                    "NEW.{} IS DISTINCT FROM OLD.{}",
                    a.column, a.column
                )) && source.contains(&format!("'{}'", a.name)),
                "{}.{} is mapped but not in {function}",
                c.table,
                a.column
            );
        }
    }
    for c in ALL.iter().filter(|c| !c.audited.is_empty()) {
        for s in c.sealed {
            let a = c
                .audited
                .iter()
                .find(|a| a.column == *s)
                .unwrap_or_else(|| panic!("{}.{s} is sealed but not audited", c.table));
            assert!(!a.with_values, "{}.{s}: a sealed column's values", c.table);
        }
        for a in c.audited {
            assert!(
                c.document.contains(&a.name) || c.table == "consents",
                "{}.{} is no field of the documents",
                c.table,
                a.name
            );
        }
    }
}

/// `audit::Action` is the database's `audit.action` enum: an action added
/// on one side only is a failing test, not a 500 on its first use.
#[tokio::test]
async fn the_actions_are_the_databases() {
    let db = TestDb::migrated().await;
    let pool = db.admin_pool().await;
    let live: BTreeSet<String> =
        sqlx::query_scalar("SELECT unnest(enum_range(NULL::audit.action))::text")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let ours: BTreeSet<String> = phi_gateway::audit::Action::ALL
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    assert_eq!(live, ours);
}
