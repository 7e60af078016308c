//! SQL for `consents`. A consent names the practitioner record and binds
//! the CMS user linked to it at the time (`practitioner_user`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Result, Tx};

const COLUMNS: &str = "id, owner_id, practitioner_id, submission_id, expires_at, scope, created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: Uuid,
    pub owner_id: String,
    pub practitioner_id: Uuid,
    pub submission_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The parts of the submissions granted, in the database's spelling.
    pub scope: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// What the caller may know of a practitioner before consenting: visible
/// to them, and whether it has a linked user to share with.
pub async fn practitioner_linked(tx: &mut Tx, id: Uuid) -> Result<Option<bool>> {
    Ok(tx
        .q_scalar("SELECT user_id IS NOT NULL FROM practitioners WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Inserts a consent bound to the practitioner's currently linked user.
/// None when the practitioner is not visible or has no linked user.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    owner_id: &str,
    practitioner_id: Uuid,
    submission_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    scope: &[&str],
) -> Result<Option<ConsentRow>> {
    let sql = format!(
        "INSERT INTO consents (id, owner_id, practitioner_id, practitioner_user, submission_id, expires_at, scope) \
         SELECT $1, $2, p.id, p.user_id, $4, $5, $6 FROM practitioners p \
         WHERE p.id = $3 AND p.user_id IS NOT NULL RETURNING {COLUMNS}"
    );
    Ok(tx
        .q_as(&sql)
        .bind(id)
        .bind(owner_id)
        .bind(practitioner_id)
        .bind(submission_id)
        .bind(expires_at)
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The caller's consent that says exactly this already (the practitioner
/// still linked to the same user), if any: giving it again changes nothing.
pub async fn find_same(
    tx: &mut Tx,
    owner_id: &str,
    practitioner_id: Uuid,
    submission_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    scope: &[&str],
) -> Result<Option<ConsentRow>> {
    let sql = format!(
        "SELECT {} FROM consents c JOIN practitioners p ON p.id = c.practitioner_id \
         WHERE c.owner_id = $1 AND c.practitioner_id = $2 AND c.practitioner_user = p.user_id \
           AND c.submission_id IS NOT DISTINCT FROM $3 AND c.expires_at IS NOT DISTINCT FROM $4 \
           AND c.scope @> $5 AND c.scope <@ $5 \
         ORDER BY c.created_at LIMIT 1",
        COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(tx
        .q_as(&sql)
        .bind(owner_id)
        .bind(practitioner_id)
        .bind(submission_id)
        .bind(expires_at)
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The caller's consents, given or naming them: the policies decide, and
/// this leakproof condition on the two indexed columns lets the planner
/// use their indexes under row-level security (the policies' OR does not).
const MINE: &str =
    "(owner_id = (SELECT app_user_id()) OR practitioner_user = (SELECT app_user_id()))";

pub async fn list(tx: &mut Tx, limit: i64, offset: i64) -> Result<Vec<ConsentRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM consents WHERE {MINE} \
         ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    );
    Ok(tx
        .q_as(&sql)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut **tx)
        .await?)
}

pub async fn count(tx: &mut Tx) -> Result<i64> {
    let sql = format!("SELECT count(*) FROM consents WHERE {MINE}");
    Ok(tx.q_scalar(&sql).fetch_one(&mut **tx).await?)
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> Result<Option<ConsentRow>> {
    let sql = format!("DELETE FROM consents WHERE id = $1 RETURNING {COLUMNS}");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}
