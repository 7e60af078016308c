//! The mapping file of an import (TOML): for each source table, the
//! collection its rows become, its key, the owner of submissions, and for
//! each field of the collection where its value comes from (a column, in
//! the clear or `pgp_sym_encrypt`ed; an object of columns; the rows of a
//! child table, for Payload's array fields). Names are checked here, so the
//! SQL built from them quotes identifiers only.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::schema::{self, Collection};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(rename = "table")]
    pub tables: Vec<TableMap>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMap {
    /// `table` or `schema.table` in the source.
    pub source: String,
    /// The collection's slug: `symptom-submissions`, `practitioners`, `herbs`.
    pub collection: String,
    /// The source's key column: ordered, unique (kept in `import_rows`).
    pub key: String,
    /// Submissions: the column holding the owner's user id, and the
    /// Payload collection it is of (`users`): the owner becomes `users:<id>`.
    pub owner: Option<String>,
    #[serde(default = "users")]
    pub owner_collection: String,
    /// API field name -> where its value comes from.
    pub fields: BTreeMap<String, FieldSource>,
}

fn users() -> String {
    "users".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldSource {
    /// A column in the clear.
    Column(String),
    Spec(FieldSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// A column (with `encrypted`, `json`).
    pub column: Option<String>,
    /// `pgp_sym_encrypt`ed under the old key (PHI_IMPORT_SOURCE_KEY).
    #[serde(default)]
    pub encrypted: bool,
    /// The column (decrypted) is JSON text.
    #[serde(default)]
    pub json: bool,
    /// An object of columns: `{ lat = "latitude", lon = "longitude" }`.
    pub object: Option<BTreeMap<String, String>>,
    /// A list from a child table (Payload's array fields).
    pub array: Option<ArraySource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArraySource {
    pub table: String,
    /// The child's column naming its parent's key (`_parent_id`).
    #[serde(default = "parent_id")]
    pub parent: String,
    /// The child's order column (`_order`).
    #[serde(default = "order")]
    pub order: String,
    /// Item field -> the child's column (a list of objects)...
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// ...or the child's one column (a list of values: Payload's `hasMany`
    /// selects).
    pub value: Option<String>,
}

fn parent_id() -> String {
    "_parent_id".into()
}

fn order() -> String {
    "_order".into()
}

/// A source name: letters, digits and `_`, not starting with a digit
/// (`schema.table` for tables).
pub fn ident(s: &str) -> anyhow::Result<String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    anyhow::ensure!(ok, "{s:?} is not a plain SQL name (letters, digits, _)");
    Ok(format!("\"{s}\""))
}

/// A column, or a column cast to one of a few types (`onset::date`: a
/// Payload date is a timestamp, the API's a date), as SQL on `alias`.
pub fn column(alias: &str, s: &str) -> anyhow::Result<String> {
    const CASTS: &[&str] = &[
        "date",
        "text",
        "integer",
        "numeric",
        "double precision",
        "jsonb",
    ];
    match s.split_once("::") {
        None => Ok(format!("{alias}.{}", ident(s)?)),
        Some((c, cast)) => {
            anyhow::ensure!(
                CASTS.contains(&cast),
                "{s:?}: a cast is one of {}",
                CASTS.join(", ")
            );
            Ok(format!("({alias}.{})::{cast}", ident(c)?))
        }
    }
}

/// `table` or `schema.table`, quoted.
pub fn table_name(s: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = s.split('.').collect();
    anyhow::ensure!(
        parts.len() <= 2,
        "{s:?}: a table is `table` or `schema.table`"
    );
    Ok(parts
        .iter()
        .map(|p| ident(p))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join("."))
}

impl Mapping {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let m: Mapping = toml::from_str(text).map_err(|e| anyhow::anyhow!("the mapping: {e}"))?;
        anyhow::ensure!(!m.tables.is_empty(), "the mapping names no [[table]]");
        let mut seen = std::collections::BTreeSet::new();
        for t in &m.tables {
            anyhow::ensure!(
                seen.insert(t.source.clone()),
                "{} is mapped twice",
                t.source
            );
            t.check()?;
        }
        Ok(m)
    }
}

impl TableMap {
    pub fn collection(&self) -> anyhow::Result<&'static Collection> {
        schema::ALL
            .iter()
            .copied()
            .find(|c| c.slug == self.collection)
            .filter(|c| ["symptom-submissions", "practitioners", "herbs"].contains(&c.slug))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: collection {:?} is not one an import writes (symptom-submissions, practitioners, herbs)",
                    self.source,
                    self.collection
                )
            })
    }

    pub fn is_submissions(&self) -> bool {
        self.collection == "symptom-submissions"
    }

    fn check(&self) -> anyhow::Result<()> {
        let c = self.collection()?;
        table_name(&self.source)?;
        ident(&self.key)?;
        match (&self.owner, self.is_submissions()) {
            (Some(o), true) => {
                ident(o)?;
            }
            (None, true) => anyhow::bail!(
                "{}: submissions need `owner`, the column of their patient's user id",
                self.source
            ),
            (Some(_), false) => anyhow::bail!("{}: only submissions have an owner", self.source),
            (None, false) => {}
        }
        ident(&self.owner_collection)?;
        for (field, src) in &self.fields {
            anyhow::ensure!(
                c.writes.iter().any(|w| w.name == field),
                "{}: {field:?} is not a field of {} (one of: {})",
                self.source,
                c.slug,
                c.writes
                    .iter()
                    .map(|w| w.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            match src {
                FieldSource::Column(col) => {
                    column("t", col)?;
                }
                FieldSource::Spec(s) => {
                    let kinds = [s.column.is_some(), s.object.is_some(), s.array.is_some()];
                    anyhow::ensure!(
                        kinds.iter().filter(|k| **k).count() == 1,
                        "{}: {field}: one of column, object, array",
                        self.source
                    );
                    if let Some(col) = &s.column {
                        column("t", col)?;
                    } else {
                        anyhow::ensure!(
                            !s.encrypted && !s.json,
                            "{}: {field}: encrypted and json apply to a column",
                            self.source
                        );
                    }
                    for col in s.object.iter().flat_map(|o| o.values()) {
                        column("t", col)?;
                    }
                    if let Some(a) = &s.array {
                        table_name(&a.table)?;
                        ident(&a.parent)?;
                        ident(&a.order)?;
                        a.columns
                            .values()
                            .try_for_each(|c| column("c", c).map(|_| ()))?;
                        anyhow::ensure!(
                            a.columns.is_empty() != a.value.is_none(),
                            "{}: {field}: an array has `columns` or one `value`",
                            self.source
                        );
                        if let Some(v) = &a.value {
                            column("c", v)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether any field is `pgp_sym_encrypt`ed.
    pub fn has_encrypted(&self) -> bool {
        self.fields
            .values()
            .any(|f| matches!(f, FieldSource::Spec(s) if s.encrypted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_names_only_fields_and_plain_names() {
        let ok = r#"
            [[table]]
            source = "public.symptom_submissions"
            collection = "symptom-submissions"
            key = "id"
            owner = "user_id"
            [table.fields]
            notes = { column = "notes", encrypted = true }
            symptoms = { array = { table = "symptom_submissions_symptoms", columns = { name = "name" } } }
            region = "region"
        "#;
        let m = Mapping::parse(ok).unwrap();
        assert!(m.tables[0].has_encrypted());
        for (bad, why) in [
            (
                ok.replace("region = \"region\"", "region = \"region; drop\""),
                "plain SQL name",
            ),
            (
                ok.replace("region = \"region\"", "region = \"region::regclass\""),
                "a cast is one of",
            ),
            (ok.replace("notes = {", "secret = {"), "not a field"),
            (ok.replace("owner = \"user_id\"", ""), "need `owner`"),
            (
                ok.replace("symptom-submissions\"", "consents\""),
                "not one an import writes",
            ),
        ] {
            let e = Mapping::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }
}
