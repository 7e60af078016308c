//! SQL, one module per table. Takes and returns sealed values (`SealedField`,
//! blind index bytes), never plaintext PHI; knows nothing of HTTP or keys.
//! Everything runs on the request's transaction from `db::scoped`.

pub mod consents;
pub mod herbs;
pub mod practitioners;
pub mod submissions;

use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::crypto::SealedField;
use crate::error::ApiError;
use crate::query::{BlindIndexLookup, FieldSpec, Filter, push_filter};

/// A column's new value in an UPDATE.
pub enum Value {
    Text(Option<String>),
    TextArray(Vec<String>),
    Float(f64),
    Sealed(Option<SealedField>),
    Bytes(Option<Vec<u8>>),
    Uuid(Option<Uuid>),
    Json(serde_json::Value),
    Date(Option<NaiveDate>),
}

fn push_value(qb: &mut QueryBuilder<'_, Postgres>, v: Value) {
    match v {
        Value::Text(t) => qb.push_bind(t),
        Value::TextArray(a) => qb.push_bind(a),
        Value::Float(f) => qb.push_bind(f),
        Value::Sealed(s) => qb.push_bind(s),
        Value::Bytes(b) => qb.push_bind(b),
        Value::Uuid(u) => qb.push_bind(u),
        Value::Json(j) => qb.push_bind(j),
        Value::Date(d) => qb.push_bind(d),
    };
}

/// `UPDATE table SET c = $n, .., updated_at = now() WHERE id = $m RETURNING cols`.
/// Column names come from the caller's code, never from input.
pub async fn update_returning<R>(
    conn: &mut PgConnection,
    table: &str,
    returning: &str,
    id: Uuid,
    sets: Vec<(&'static str, Value)>,
) -> Result<Option<R>, sqlx::Error>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut qb = QueryBuilder::<Postgres>::new(format!("UPDATE {table} SET "));
    for (col, v) in sets {
        qb.push(col).push(" = ");
        push_value(&mut qb, v);
        qb.push(", ");
    }
    qb.push("updated_at = now() WHERE id = ")
        .push_bind(id)
        .push(" RETURNING ")
        .push(returning);
    qb.build_query_as::<R>().fetch_optional(conn).await
}

/// Extra conditions a collection adds (proximity, containment); called once
/// per query built, so it binds its own copies.
pub type Extra<'a> = &'a (dyn Fn(&mut QueryBuilder<'_, Postgres>) + Sync);

pub struct ListSpec<'a> {
    pub from: &'a str,
    pub select: &'a str,
    pub filter: Option<&'a Filter>,
    pub fields: &'a [FieldSpec],
    pub blind: BlindIndexLookup<'a>,
    pub extra: Extra<'a>,
    pub order: &'a str,
    pub limit: i64,
    pub offset: i64,
    /// Count every match for `totalDocs` when the page cannot tell it
    /// (false for Payload's `pagination=false`).
    pub count: bool,
    /// Nearest-first page within this many metres: `order` walks an index
    /// in distance order, and the page is taken from that walk before the
    /// radius (`extra`) is applied, outside it. Under row-level security the
    /// planner may not use non-leakproof conditions (the earthdistance box
    /// and distance) inside the index scan, and with them in the scan it
    /// falls back to reading the whole table; the walk stops after
    /// offset + limit visible rows instead. Only valid when every row
    /// beyond the radius comes after every row within it (no minimum
    /// distance). The count still applies `extra` in full.
    pub knn_within_m: Option<f64>,
}

/// The caller's filter, and the collection's own conditions (`extra`) when
/// `with_extra`.
fn push_where(
    qb: &mut QueryBuilder<'_, Postgres>,
    spec: &ListSpec<'_>,
    with_extra: bool,
) -> Result<(), ApiError> {
    if let Some(f) = spec.filter {
        qb.push(" AND ");
        push_filter(qb, f, spec.fields, spec.blind)?;
    }
    if with_extra {
        (spec.extra)(qb);
    }
    Ok(())
}

/// One page of rows and the total, counting only when the page cannot tell
/// and the caller wants it.
pub async fn list_rows<R>(
    conn: &mut PgConnection,
    spec: ListSpec<'_>,
) -> Result<(Vec<R>, i64), ApiError>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "{}SELECT {} FROM {} WHERE TRUE",
        if spec.knn_within_m.is_some() {
            "SELECT * FROM ("
        } else {
            ""
        },
        spec.select,
        spec.from
    ));
    push_where(&mut q, &spec, spec.knn_within_m.is_none())?;
    q.push(spec.order)
        .push(" LIMIT ")
        .push_bind(spec.limit)
        .push(" OFFSET ")
        .push_bind(spec.offset);
    if let Some(max_m) = spec.knn_within_m {
        q.push(") knn WHERE distance_m <= ").push_bind(max_m);
    }
    let rows: Vec<R> = q.build_query_as().fetch_all(&mut *conn).await?;
    let short_page = (rows.len() as i64) < spec.limit && (!rows.is_empty() || spec.offset == 0);
    let total = if short_page || !spec.count {
        spec.offset + rows.len() as i64
    } else {
        let mut c =
            QueryBuilder::<Postgres>::new(format!("SELECT count(*) FROM {} WHERE TRUE", spec.from));
        push_where(&mut c, &spec, true)?;
        c.build_query_scalar::<i64>().fetch_one(&mut *conn).await?
    };
    Ok((rows, total))
}
