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
