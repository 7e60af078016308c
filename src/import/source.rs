//! Reading the source database of an import: read-only, a page of rows at a
//! time in key order, each row's mapped fields as one JSON object built by
//! the source itself (`pgp_sym_decrypt` with the old key for encrypted
//! columns, a child table's rows as a list). An operator subsystem: its
//! SQL lives here (ARCHITECTURE.md); every name in it comes from a checked
//! mapping (`mapping::ident`).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use super::mapping::{FieldSource, TableMap, column, ident, table_name};

/// A read-only connection to the source.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let opts: PgConnectOptions = url
        .parse()
        .map_err(|_| anyhow::anyhow!("--source is not a PostgreSQL URL"))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET default_transaction_read_only = on").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the source: {e}"))?;
    Ok(pool)
}

/// One source row: its key (as text) and its fields as the API would get
/// them (an object that still has to pass the API's validation).
pub struct SourceRow {
    pub key: String,
    pub owner: Option<String>,
    pub fields: Map<String, Value>,
}

/// The SQL of one page of a table: `($1 last key or NULL, $2 limit, $3 old key)`.
pub async fn page_sql(pool: &PgPool, t: &TableMap) -> anyhow::Result<String> {
    let table = table_name(&t.source)?;
    let key = ident(&t.key)?;
    let key_type: Option<String> = sqlx::query_scalar(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
    )
    .bind(&t.source)
    .bind(&t.key)
    .fetch_optional(pool)
    .await?;
    let key_type = key_type
        .ok_or_else(|| anyhow::anyhow!("{}: no table with a column {:?}", t.source, t.key))?;
    let mut cols = vec![format!("t.{key}::text AS \"__key\"")];
    if let Some(o) = &t.owner {
        cols.push(format!("t.{}::text AS \"__owner\"", ident(o)?));
    }
    let mut obj = Vec::new();
    for (field, src) in &t.fields {
        let expr = match src {
            FieldSource::Column(c) => format!("to_jsonb({})", column("t", c)?),
            FieldSource::Spec(s) => {
                if let Some(c) = &s.column {
                    let v = if s.encrypted {
                        anyhow::ensure!(
                            !c.contains("::"),
                            "{}: {field}: an encrypted column is decrypted, not cast",
                            t.source
                        );
                        format!("pgp_sym_decrypt(t.{}, $3)", ident(c)?)
                    } else {
                        column("t", c)?
                    };
                    if s.json {
                        format!("({v})::jsonb")
                    } else {
                        format!("to_jsonb({v})")
                    }
                } else if let Some(o) = &s.object {
                    let parts = o
                        .iter()
                        .map(|(k, c)| Ok(format!("'{k}', {}", column("t", c)?)))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    // Item keys are field names of the API: checked by its
                    // validation, and plain here.
                    anyhow::ensure!(
                        o.keys()
                            .all(|k| k.chars().all(|c| c.is_ascii_alphanumeric())),
                        "{}: {field}: object keys are plain names",
                        t.source
                    );
                    format!("jsonb_build_object({})", parts.join(", "))
                } else if let Some(a) = &s.array {
                    anyhow::ensure!(
                        a.columns
                            .keys()
                            .all(|k| k.chars().all(|c| c.is_ascii_alphanumeric())),
                        "{}: {field}: item keys are plain names",
                        t.source
                    );
                    let item = match &a.value {
                        Some(v) => column("c", v)?,
                        None => format!(
                            "jsonb_build_object({})",
                            a.columns
                                .iter()
                                .map(|(k, c)| Ok(format!("'{k}', {}", column("c", c)?)))
                                .collect::<anyhow::Result<Vec<_>>>()?
                                .join(", ")
                        ),
                    };
                    format!(
                        "(SELECT coalesce(jsonb_agg({item} ORDER BY c.{}), '[]'::jsonb) \
                         FROM {} c WHERE c.{} = t.{key})",
                        ident(&a.order)?,
                        table_name(&a.table)?,
                        ident(&a.parent)?
                    )
                } else {
                    anyhow::bail!("{}: {field}: no source", t.source)
                }
            }
        };
        anyhow::ensure!(
            field.chars().all(|c| c.is_ascii_alphanumeric()),
            "{}: {field:?} is not a field name",
            t.source
        );
        obj.push(format!("'{field}', {expr}"));
    }
    // jsonb_build_object takes at most 100 arguments: fields are far fewer.
    cols.push(format!(
        "jsonb_build_object({}) AS \"__fields\"",
        obj.join(", ")
    ));
    Ok(format!(
        "SELECT {} FROM {table} t WHERE ($1::text IS NULL OR t.{key} > $1::text::{key_type}) \
         AND ($3::text IS NULL OR true) ORDER BY t.{key} LIMIT $2",
        cols.join(", ")
    ))
}

/// A page of rows after `after` (None: from the start).
pub async fn page(
    pool: &PgPool,
    sql: &str,
    after: Option<&str>,
    limit: i64,
    old_key: Option<&SecretString>,
) -> anyhow::Result<Vec<SourceRow>> {
    let rows = sqlx::query(sql)
        .bind(after)
        .bind(limit)
        .bind(old_key.map(|k| k.expose_secret().to_string()))
        .fetch_all(pool)
        .await
        .map_err(|e| {
            let msg = e.as_database_error().map(|d| d.message().to_string());
            match msg.as_deref() {
                Some(m) if m.contains("Wrong key or corrupt data") => anyhow::anyhow!(
                    "the old key (PHI_IMPORT_SOURCE_KEY) does not decrypt the source's encrypted columns \
                     (pgcrypto: {m}); nothing was written from this page"
                ),
                Some(m) => anyhow::anyhow!("reading the source: {m}"),
                None => anyhow::anyhow!("reading the source: {e}"),
            }
        })?;
    rows.into_iter()
        .map(|r| {
            let fields: Value = r.try_get("__fields")?;
            let Value::Object(mut fields) = fields else {
                anyhow::bail!("the source gave no object");
            };
            // A column that is NULL is a field left out, as the API takes it.
            fields.retain(|_, v| !v.is_null());
            Ok(SourceRow {
                key: r.try_get("__key")?,
                owner: r.try_get::<Option<String>, _>("__owner").ok().flatten(),
                fields,
            })
        })
        .collect()
}

/// How many rows a table has (for the progress bar and `--verify`).
pub async fn count(pool: &PgPool, t: &TableMap) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table_name(&t.source)?))
            .fetch_one(pool)
            .await?,
    )
}
