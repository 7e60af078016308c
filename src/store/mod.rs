//! SQL of the request path, one module per table, and nothing else: takes
//! and returns sealed values (`SealedField`, blind index bytes), never
//! plaintext PHI; knows nothing of HTTP or keys. Everything runs on the
//! request's transaction from `begin`, which sets the caller's identity.
//!
//! Errors are `StoreError`, classified once from `sqlx::Error` here:
//! callers see "unique constraint X" or "refused by row-level security",
//! never a SQLSTATE.

pub mod api_keys;
pub mod audit;
pub mod consents;
mod error;
pub mod facts;
pub mod filter;
pub mod health;
pub mod herbs;
pub mod imports;
pub mod keys;
pub mod managed;
pub mod practitioners;
pub mod sessions;
pub mod submissions;
mod tx;

pub use error::{Result, StoreError};
pub use tx::{Tx, acquire_figures, held, hold_connections_on_this_thread};

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::crypto::SealedField;
use crate::identity::Principal;

/// How a gateway's statements go to the database, one value per gateway
/// (several in one process, as in the tests, never mix): whether they may
/// be prepared by name (not behind a transaction-mode pooler: PgBouncer
/// before 1.21 keeps no prepared statements across transactions, so every
/// query is then prepared unnamed, inside its transaction), and the
/// statement timeouts by caller. A `Tx` carries it; every query of the
/// store is built from its `Tx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub persistent: bool,
    pub timeouts: Timeouts,
    /// The hot requests (a submission's create, a read by id) may run as
    /// one statement that sets the identity itself (`app_begin`, migration
    /// 0021), in a transaction of its own: the pool's connections carry
    /// the statement timeout from their start, since such a statement
    /// cannot set it for itself. Set by `serve` (`with_one_statement`),
    /// never behind a transaction-mode pooler; other callers (tools,
    /// tests that build services) open transactions.
    pub one_statement: bool,
}

impl Mode {
    /// How a gateway with these settings sends its statements: prepared by
    /// name unless a transaction-mode pooler sits between, with the
    /// statement timeouts by caller.
    pub fn of(db: &crate::config::DatabaseSettings) -> Self {
        Self {
            persistent: !db.pooler,
            timeouts: Timeouts {
                statement_ms: db.statement_timeout.as_millis() as u64,
                anonymous_statement_ms: db.anonymous_statement_timeout.as_millis() as u64,
            },
            one_statement: false,
        }
    }

    /// This mode with one-statement requests, when the pool's connections
    /// can carry the statement timeout (no transaction-mode pooler between,
    /// which would refuse the startup option): the options to open them
    /// with, and the mode.
    pub fn with_one_statement(
        self,
        options: sqlx::postgres::PgConnectOptions,
    ) -> (sqlx::postgres::PgConnectOptions, Self) {
        if !self.persistent {
            return (options, self);
        }
        let ms = self.timeouts.statement_ms.to_string();
        (
            options.options([("statement_timeout", ms.as_str())]),
            Self {
                one_statement: true,
                ..self
            },
        )
    }
}

impl Default for Mode {
    fn default() -> Self {
        Self {
            persistent: true,
            timeouts: Timeouts::default(),
            one_statement: false,
        }
    }
}

/// Per-transaction limits by caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub statement_ms: u64,
    pub anonymous_statement_ms: u64,
}

impl Default for Timeouts {
    /// The settings' defaults (`DATABASE_STATEMENT_TIMEOUT_MS`,
    /// `DATABASE_ANONYMOUS_STATEMENT_TIMEOUT_MS`).
    fn default() -> Self {
        Self {
            statement_ms: 30_000,
            anonymous_statement_ms: 2_000,
        }
    }
}

impl Tx {
    /// `sqlx::query`, in this transaction's mode.
    pub fn q<'a>(&self, sql: &'a str) -> Query<'a, Postgres, PgArguments> {
        sqlx::query(sql).persistent(self.persistent())
    }

    pub fn q_as<'a, R>(&self, sql: &'a str) -> QueryAs<'a, Postgres, R, PgArguments>
    where
        R: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(sql).persistent(self.persistent())
    }

    pub fn q_scalar<'a, T>(&self, sql: &'a str) -> QueryScalar<'a, Postgres, T, PgArguments>
    where
        (T,): for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_scalar(sql).persistent(self.persistent())
    }
}

/// A pool and the mode its gateway uses it in: what services hold, and
/// what a request's transaction begins from.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: PgPool,
    pub mode: Mode,
}

impl Db {
    pub fn new(pool: PgPool, mode: Mode) -> Self {
        Self { pool, mode }
    }

    /// A request's transaction, with the caller's identity set (`begin`).
    pub async fn begin(&self, who: &Principal) -> Result<Tx> {
        begin(&self.pool, self.mode, who).await
    }

    /// A connection for one statement that sets the caller's identity
    /// itself (`IDENTITY_FROM`, bound with `bind_identity!`), when this
    /// gateway's mode allows it (`Mode::one_statement`); `None` otherwise,
    /// and the caller opens a transaction (`begin`).
    pub async fn single(&self) -> Result<Option<Tx>> {
        if !self.mode.one_statement {
            return Ok(None);
        }
        Ok(Some(Tx::unbegun(&self.pool, self.mode.persistent).await?))
    }

    /// A transaction with no caller's identity (`begin_plain`).
    pub async fn begin_plain(&self) -> Result<Tx> {
        begin_plain(&self.pool, self.mode).await
    }
}

/// A transaction of the service's role with no caller's identity (the
/// audit pool's refusals, upkeep, health checks, operator commands).
pub async fn begin_plain(pool: &PgPool, mode: Mode) -> Result<Tx> {
    Ok(Tx::begin(pool, mode.persistent).await?)
}

/// What sets the caller's identity inside a one-statement request: the
/// first item of its FROM, bound to `$1`..`$11` (`bind_identity!`). Every
/// table of the statement is read after it: an INSERT selects its row from
/// it, a read is a LATERAL subquery that names `who.ok` (migration 0021).
pub const IDENTITY_FROM: &str =
    "app_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS who(ok)";

/// The caller's identity as the settings take it (`app.user_id`, ..,
/// `app.purpose`), in `begin`'s and `app_begin`'s order.
pub(crate) fn identity_values(who: &Principal) -> [String; 10] {
    [
        who.user_id.clone().unwrap_or_default(),
        who.roles_csv(),
        if who.break_glass() { "on" } else { "" }.to_string(),
        who.collection.clone().unwrap_or_default(),
        who.request_id.clone().unwrap_or_default(),
        who.client_addr.clone().unwrap_or_default(),
        who.api_key_id.map(|u| u.to_string()).unwrap_or_default(),
        if who.break_glass() {
            who.break_glass_reason.clone().unwrap_or_default()
        } else {
            String::new()
        },
        who.client_request_id.clone().unwrap_or_default(),
        who.purpose()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
    ]
}

/// Binds the caller's identity as `$1`..`$11` of a statement that begins
/// with [`IDENTITY_FROM`]: the ten settings and the session to check.
macro_rules! bind_identity {
    ($q:expr, $who:expr) => {{
        let who: &$crate::identity::Principal = $who;
        let [a, b, c, d, e, f, g, h, i, j] = $crate::store::identity_values(who);
        $q.bind(a)
            .bind(b)
            .bind(c)
            .bind(d)
            .bind(e)
            .bind(f)
            .bind(g)
            .bind(h)
            .bind(i)
            .bind(j)
            .bind(who.session.as_ref().map(|s| s.key.clone()))
    }};
}
pub(crate) use bind_identity;

/// Opens the request's transaction and sets the caller's identity (and the
/// statement timeout for this kind of caller) with transaction-local
/// settings, which end with the transaction: a pooled connection (or
/// PgBouncer in transaction mode) never carries one caller's identity into
/// another's request. Every database access made on behalf of a request
/// starts here; one round trip.
pub async fn begin(pool: &PgPool, mode: Mode, who: &Principal) -> Result<Tx> {
    let mut tx = Tx::begin(pool, mode.persistent).await?;
    let t = mode.timeouts;
    let timeout = if who.is_anonymous() {
        t.anonymous_statement_ms
    } else {
        t.statement_ms
    };
    // The policies read user, roles and break-glass; the audit triggers
    // read the rest. A Payload user's token also asks whether its session
    // was logged out (0019); nobody else's request names the function (a
    // health check works on a database without the migrations).
    macro_rules! set {
        () => {
            "SELECT set_config('app.user_id', $1, true), \
              set_config('app.roles', $2, true), \
              set_config('app.break_glass', $3, true), \
              set_config('app.collection', $4, true), \
              set_config('app.request_id', $5, true), \
              set_config('app.client_addr', $6, true), \
              set_config('app.api_key_id', $7, true), \
              set_config('app.reason', $8, true), \
              set_config('app.client_request_id', $9, true), \
              set_config('app.purpose', $10, true), \
              set_config('statement_timeout', $11, true)"
        };
    }
    const SET: &str = set!();
    const SET_AND_CHECK: &str = concat!(set!(), ", app_session_ended($12)");
    let session = who.session.as_ref().map(|s| s.key.as_str());
    let [a, b, c, d, e, f, g, h, i, j] = identity_values(who);
    let q = tx
        .q(if session.is_some() {
            SET_AND_CHECK
        } else {
            SET
        })
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(d)
        .bind(e)
        .bind(f)
        .bind(g)
        .bind(h)
        .bind(i)
        .bind(j)
        .bind(timeout.to_string());
    let Some(session) = session else {
        q.execute(&mut *tx).await?;
        return Ok(tx);
    };
    let row = q.bind(session).fetch_one(&mut *tx).await?;
    // A logged-out session's token (the same round trip): refused.
    if row.try_get::<bool, _>(11)? {
        return Err(StoreError::SessionEnded);
    }
    Ok(tx)
}

/// A column's new value in an UPDATE.
pub enum Value {
    Text(Option<String>),
    TextArray(Vec<String>),
    Float(f64),
    Sealed(Option<SealedField>),
    Bytes(Option<Vec<u8>>),
    Uuid(Option<Uuid>),
    Json(serde_json::Value),
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
    };
}

/// `UPDATE table SET c = $n, .., updated_at = now() WHERE id = $m RETURNING cols`.
/// Column names come from the store's own code, never from input.
async fn update_returning<R>(
    tx: &mut Tx,
    table: &str,
    returning: &str,
    id: Uuid,
    sets: Vec<(&'static str, Value)>,
) -> Result<Option<R>>
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
    Ok(qb
        .build_query_as::<R>()
        .persistent(tx.persistent())
        .fetch_optional(&mut **tx)
        .await?)
}

/// A page of rows and the number of matches, as the list asked.
pub struct Rows<R> {
    pub rows: Vec<R>,
    /// Every match (or, without pagination, what the page holds), up to
    /// [`ListQuery::count_cap`](crate::query::ListQuery::count_cap).
    pub total: i64,
    /// There are more matches than `total` says.
    pub capped: bool,
}

/// One page: `SELECT select FROM from WHERE TRUE <filter> <extra> ORDER BY
/// .. LIMIT .. OFFSET ..`, then the count when the page cannot tell it.
struct Listing<'a> {
    /// The table, or for the reference collections the view that repeats
    /// its read policy (migration 0010).
    from: &'a str,
    select: &'a str,
    order: String,
    extra: &'a (dyn Fn(&mut QueryBuilder<'_, Postgres>) + Sync),
    /// See `practitioners::list`: take the page from an index walk in
    /// distance order and apply the radius outside it.
    knn_within_m: Option<f64>,
    /// The statement's text is particular to this request (an inline
    /// point): run it unnamed instead of caching it.
    one_off: bool,
}

async fn list<R>(tx: &mut Tx, l: Listing<'_>, q: &crate::query::ListQuery) -> Result<Rows<R>>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let limit = q.limit as i64;
    let offset = q.offset();
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{}SELECT {} FROM {} WHERE TRUE",
        if l.knn_within_m.is_some() {
            "SELECT * FROM ("
        } else {
            ""
        },
        l.select,
        l.from
    ));
    filter::push_where(&mut qb, q.filter.as_ref())?;
    if l.knn_within_m.is_none() {
        (l.extra)(&mut qb);
    }
    qb.push(&l.order)
        .push(" LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    if let Some(max_m) = l.knn_within_m {
        qb.push(") knn WHERE distance_m <= ").push_bind(max_m);
    }
    // `limit` 0: a count alone (`query::parse_count`), no page to read.
    let rows: Vec<R> = if limit == 0 {
        Vec::new()
    } else {
        qb.build_query_as()
            .persistent(tx.persistent() && !l.one_off)
            .fetch_all(&mut **tx)
            .await?
    };
    let short_page = (rows.len() as i64) < limit && (!rows.is_empty() || offset == 0);
    if short_page || !q.pagination {
        let total = offset + rows.len() as i64;
        return Ok(Rows {
            rows,
            total,
            capped: false,
        });
    }
    let cap = q.count_cap();
    let mut c = QueryBuilder::<Postgres>::new(format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} WHERE TRUE",
        l.from
    ));
    filter::push_where(&mut c, q.filter.as_ref())?;
    (l.extra)(&mut c);
    c.push(" LIMIT ").push_bind(cap + 1).push(") matches");
    let counted: i64 = c
        .build_query_scalar()
        .persistent(tx.persistent() && !l.one_off)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Rows {
        rows,
        total: counted.min(cap),
        capped: counted > cap,
    })
}

#[cfg(test)]
mod tests {
    use super::Mode;

    /// Each gateway's statement mode and timeouts come from its own
    /// settings (they were a process-wide value the first gateway fixed,
    /// with a default of 5 s where the settings say 2 s).
    #[test]
    fn each_gateway_carries_its_own_statement_mode() {
        let settings = |extra: &[(&'static str, &'static str)]| {
            let mut e: std::collections::HashMap<&str, &str> = [
                ("DATABASE_URL", "postgres://a@h/d"),
                ("PHI_ENVIRONMENT", "development"),
            ]
            .into_iter()
            .collect();
            e.extend(extra.iter().copied());
            crate::config::Settings::from_parts("", None, &e).unwrap()
        };
        let plain = Mode::of(&settings(&[]).database);
        assert_eq!(plain, Mode::default());
        assert_eq!(plain.timeouts.anonymous_statement_ms, 2_000);
        let pooled = Mode::of(
            &settings(&[
                ("DATABASE_POOLER", "true"),
                ("DATABASE_ANONYMOUS_STATEMENT_TIMEOUT_MS", "700"),
            ])
            .database,
        );
        assert!(!pooled.persistent);
        assert_eq!(pooled.timeouts.anonymous_statement_ms, 700);
    }
}
