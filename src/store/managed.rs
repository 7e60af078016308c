//! Before the migrations, on a server where the migrating role is not a
//! superuser (`db::migrate` calls it; it does nothing for a superuser).

use anyhow::{Context, bail};
use sqlx::PgPool;

/// On a managed PostgreSQL (RDS, Cloud SQL, Azure) the migration role is
/// not a superuser: it has CREATEROLE and owns the database. Two things the
/// migrations need it may lack, both settled here, before them, so that the
/// migrations themselves stay as they were applied everywhere:
///
/// - `cube` and `earthdistance`: earthdistance is not a trusted extension,
///   so only a superuser, or the provider's own role (`rds_superuser`,
///   `cloudsqlsuperuser`, Azure's admin once `azure.extensions` allows
///   them), may create it. When it is missing and cannot be created, say
///   so and what to run, rather than fail inside migration 1.
/// - membership in `phi_owner`, which owns every object (the migrations
///   `SET ROLE phi_owner`): a superuser has it implicitly; a CREATEROLE role
///   creates the role and grants it to itself.
pub async fn prepare(pool: &PgPool) -> anyhow::Result<()> {
    let (superuser, user): (bool, String) =
        sqlx::query_as("SELECT rolsuper, rolname::text FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pool)
            .await
            .context("reading the migration role")?;
    if superuser {
        return Ok(());
    }
    for ext in ["cube", "earthdistance"] {
        let present: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = $1)")
                .bind(ext)
                .fetch_one(pool)
                .await?;
        if present {
            continue;
        }
        if let Err(e) = sqlx::query(&format!("CREATE EXTENSION IF NOT EXISTS {ext}"))
            .execute(pool)
            .await
        {
            let why = match &e {
                sqlx::Error::Database(d) => d.message().to_string(),
                other => other.to_string(),
            };
            bail!(
                "the migration role {user} cannot create the extension {ext} ({why}). As the \
                 provider's administrator (RDS: a member of rds_superuser; Cloud SQL: \
                 cloudsqlsuperuser; Azure: after adding cube and earthdistance to the server \
                 parameter azure.extensions; self-managed: a superuser) run, in this database: \
                 CREATE EXTENSION cube; CREATE EXTENSION earthdistance; then migrate again \
                 (deploy/README.md, Managed PostgreSQL)"
            );
        }
    }
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phi_owner') \
           AND pg_has_role(current_user, 'phi_owner', 'MEMBER')",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(false);
    if member {
        return Ok(());
    }
    let created = sqlx::query(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'phi_owner') THEN \
             CREATE ROLE phi_owner NOLOGIN; \
           END IF; \
         END $$",
    )
    .execute(pool)
    .await;
    let granted = match created {
        Ok(_) => sqlx::query(&format!(
            "GRANT phi_owner TO \"{}\"",
            user.replace('"', "\"\"")
        ))
        .execute(pool)
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    granted.with_context(|| {
        format!(
            "the migration role {user} is not a superuser and cannot own the gateway's objects: \
             it needs CREATEROLE (to create phi_owner and the login roles) or membership in \
             phi_owner (GRANT phi_owner TO {user}, as an administrator)"
        )
    })
}
