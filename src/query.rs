//! Payload's list query language: `where[field][op]=value` (with nested
//! `where[or][i]..` / `where[and][i]..`), `sort`, `limit`, `page`, parsed
//! into a `ListQuery` and turned into SQL over *declared* fields only.
//!
//! Every value becomes a bound parameter; the only text this module puts into
//! SQL comes from the collection's `FieldSpec` table. Error messages name
//! fields and operators, never values (a value may be an email).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;
const MAX_PAGE: u32 = 100_000;
const MAX_DEPTH: usize = 3;
const MAX_CONDITIONS: usize = 32;
const MAX_VALUE_LEN: usize = 500;
const MAX_IN_VALUES: usize = 100;
/// Query parameters Payload clients send that mean nothing here.
const IGNORED_PARAMS: &[&str] = &["depth", "locale", "fallback-locale", "draft"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Like,
    Contains,
    Exists,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
    Near,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "equals" => Op::Equals,
            "not_equals" => Op::NotEquals,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            "like" => Op::Like,
            "contains" => Op::Contains,
            "exists" => Op::Exists,
            "greater_than" => Op::GreaterThan,
            "greater_than_equal" => Op::GreaterThanEqual,
            "less_than" => Op::LessThan,
            "less_than_equal" => Op::LessThanEqual,
            "near" => Op::Near,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Like => "like",
            Op::Contains => "contains",
            Op::Exists => "exists",
            Op::GreaterThan => "greater_than",
            Op::GreaterThanEqual => "greater_than_equal",
            Op::LessThan => "less_than",
            Op::LessThanEqual => "less_than_equal",
            Op::Near => "near",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Cond {
        field: String,
        op: Op,
        values: Vec<String>,
    },
}

/// Payload's `near`: `lng,lat,maxDistanceMeters[,minDistanceMeters]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub max_m: f64,
    pub min_m: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// Field name and descending?
    pub sort: Option<(String, bool)>,
    pub limit: u32,
    pub page: u32,
    /// Payload's `pagination=false`: the first `limit` documents without
    /// counting every match (no `totalDocs` query; the page says only what
    /// it holds).
    pub pagination: bool,
    /// Parameters the collection declared for itself (e.g. `taste=bitter`).
    pub extra: Vec<(String, String)>,
}

impl ListQuery {
    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.limit as i64
    }
}

#[derive(Debug)]
enum Node {
    Leaf(Vec<String>),
    Map(BTreeMap<String, Node>),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// `where[a][b][0]` -> ["a", "b", "0"].
fn segments(key: &str) -> Result<Vec<String>, ApiError> {
    let rest = &key["where".len()..];
    let mut out = Vec::new();
    let mut chars = rest;
    while !chars.is_empty() {
        let Some(inner) = chars.strip_prefix('[') else {
            return Err(bad(
                "Malformed where parameter: expected where[field][operator].",
            ));
        };
        let Some(end) = inner.find(']') else {
            return Err(bad("Malformed where parameter: unclosed bracket."));
        };
        let seg = &inner[..end];
        if seg.is_empty() || seg.len() > 64 {
            return Err(bad("Malformed where parameter: empty or overlong segment."));
        }
        out.push(seg.to_string());
        chars = &inner[end + 1..];
    }
    if out.is_empty() || out.len() > 4 * MAX_DEPTH + 4 {
        return Err(bad("Malformed where parameter."));
    }
    Ok(out)
}

fn insert(
    node: &mut BTreeMap<String, Node>,
    path: &[String],
    value: String,
) -> Result<(), ApiError> {
    let (head, rest) = path.split_first().expect("non-empty");
    if rest.is_empty() {
        match node
            .entry(head.clone())
            .or_insert_with(|| Node::Leaf(vec![]))
        {
            Node::Leaf(v) => v.push(value),
            Node::Map(_) => return Err(bad("Malformed where parameter: mixed value and object.")),
        }
        return Ok(());
    }
    match node
        .entry(head.clone())
        .or_insert_with(|| Node::Map(BTreeMap::new()))
    {
        Node::Map(m) => insert(m, rest, value),
        Node::Leaf(_) => Err(bad("Malformed where parameter: mixed value and object.")),
    }
}

/// `{"0": {...}, "1": {...}}` in index order.
fn indexed(map: BTreeMap<String, Node>) -> Result<Vec<Node>, ApiError> {
    let mut items: Vec<(usize, Node)> = map
        .into_iter()
        .map(|(k, v)| {
            k.parse::<usize>()
                .map(|i| (i, v))
                .map_err(|_| bad("Malformed where parameter: and/or take numbered conditions."))
        })
        .collect::<Result<_, _>>()?;
    items.sort_by_key(|(i, _)| *i);
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

fn to_filter(
    map: BTreeMap<String, Node>,
    depth: usize,
    count: &mut usize,
) -> Result<Filter, ApiError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "where: and/or nesting deeper than {MAX_DEPTH} is not allowed."
        )));
    }
    let mut parts = Vec::new();
    for (key, node) in map {
        match (key.as_str(), node) {
            ("and" | "or", Node::Map(children)) => {
                let mut subs = Vec::new();
                for child in indexed(children)? {
                    match child {
                        Node::Map(m) => subs.push(to_filter(m, depth + 1, count)?),
                        Node::Leaf(_) => {
                            return Err(bad(
                                "Malformed where parameter: and/or items are objects.",
                            ));
                        }
                    }
                }
                parts.push(if key == "and" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                });
            }
            (_, Node::Map(ops)) => {
                for (op_name, value) in ops {
                    let op = Op::parse(&op_name).ok_or_else(|| {
                        bad(format!(
                            "The operator '{op_name}' is not supported (field '{key}')."
                        ))
                    })?;
                    let values = match value {
                        Node::Leaf(v) => v,
                        // where[f][in][0]=a&where[f][in][1]=b
                        Node::Map(m) => indexed(m)?
                            .into_iter()
                            .map(|n| match n {
                                Node::Leaf(mut v) if v.len() == 1 => Ok(v.remove(0)),
                                _ => Err(bad("Malformed where parameter: list items are values.")),
                            })
                            .collect::<Result<_, _>>()?,
                    };
                    *count += 1;
                    if *count > MAX_CONDITIONS {
                        return Err(bad(format!(
                            "where: more than {MAX_CONDITIONS} conditions."
                        )));
                    }
                    parts.push(Filter::Cond {
                        field: key.clone(),
                        op,
                        values,
                    });
                }
            }
            (_, Node::Leaf(_)) => {
                return Err(bad(format!(
                    "Malformed where parameter for '{key}': expected where[{key}][operator]=value."
                )));
            }
        }
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::And(parts)
    })
}

/// Parses a raw query string. `extra` names the collection's own parameters.
pub fn parse(query: &str, extra: &[&str]) -> Result<ListQuery, ApiError> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    let mut out = ListQuery {
        filter: None,
        sort: None,
        limit: DEFAULT_LIMIT,
        page: 1,
        pagination: true,
        extra: vec![],
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if v.len() > MAX_VALUE_LEN {
            return Err(bad(format!(
                "Query parameter '{}' is too long.",
                k.chars().take(64).collect::<String>()
            )));
        }
        if k.starts_with("where[") {
            insert(&mut root, &segments(&k)?, v.into_owned())?;
            continue;
        }
        match k.as_ref() {
            "limit" => {
                out.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}."
                        ))
                    })?;
            }
            "page" => {
                out.page = v
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=MAX_PAGE).contains(p))
                    .ok_or_else(|| {
                        bad(format!("page must be a whole number from 1 to {MAX_PAGE}."))
                    })?;
            }
            "pagination" => {
                out.pagination = match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("pagination must be true or false.")),
                };
            }
            "sort" => {
                let (name, desc) = match v.strip_prefix('-') {
                    Some(n) => (n, true),
                    None => (v.as_ref(), false),
                };
                if name.is_empty() {
                    return Err(bad("sort needs a field name."));
                }
                out.sort = Some((name.to_string(), desc));
            }
            name if extra.contains(&name) => out.extra.push((k.into_owned(), v.into_owned())),
            name if IGNORED_PARAMS.contains(&name) => {}
            other => {
                return Err(bad(format!(
                    "Unknown query parameter '{}'.",
                    other.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    if !out.pagination && out.page != 1 {
        return Err(bad(
            "page needs pagination: without it there is only the first page.",
        ));
    }
    if !root.is_empty() {
        let mut count = 0;
        out.filter = Some(to_filter(root, 0, &mut count)?);
    }
    Ok(out)
}

/// How a declared field may be queried.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind {
    Text,
    Enum(&'static [&'static str]),
    Uuid,
    Timestamp,
    TextArray,
    /// Sealed, with a blind index in `column`: `equals` and `in` only.
    BlindIndexed {
        table: &'static str,
        column: &'static str,
    },
    /// `near` only; handled by the collection (see `take_near`).
    Location,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The name in the API (camelCase, as Payload).
    pub name: &'static str,
    /// The SQL column (or expression) it maps to.
    pub column: &'static str,
    pub kind: FieldKind,
    pub sortable: bool,
}

/// Computes the blind indexes to match a plaintext value by (one per live
/// index key); supplied by the service from the keyring.
pub type BlindIndexLookup<'a> = &'a dyn Fn(&str, &str, &str) -> Vec<Vec<u8>>;

fn spec<'f>(fields: &'f [FieldSpec], name: &str) -> Result<&'f FieldSpec, ApiError> {
    fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| bad(format!("The following path cannot be queried: {name}")))
}

/// Removes a top-level `near` condition from the filter and parses it.
pub fn take_near(
    filter: &mut Option<Filter>,
    fields: &[FieldSpec],
) -> Result<Option<Near>, ApiError> {
    fn is_near(f: &Filter) -> bool {
        matches!(f, Filter::Cond { op: Op::Near, .. })
    }
    let cond = match filter.take() {
        Some(f) if is_near(&f) => Some(f),
        Some(Filter::And(mut parts)) => {
            let pos = parts.iter().position(is_near);
            let c = pos.map(|p| parts.remove(p));
            *filter = if parts.is_empty() {
                None
            } else {
                Some(Filter::And(parts))
            };
            c
        }
        other => {
            *filter = other;
            None
        }
    };
    let Some(Filter::Cond { field, values, .. }) = cond else {
        return Ok(None);
    };
    let s = spec(fields, &field)?;
    if !matches!(s.kind, FieldKind::Location) {
        return Err(bad(format!(
            "The operator 'near' is not supported for field '{field}'."
        )));
    }
    let raw = values.first().map(String::as_str).unwrap_or("");
    let nums: Vec<f64> = raw
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("near takes lng,lat,maxDistanceMeters[,minDistanceMeters]."))?;
    if !(2..=4).contains(&nums.len()) || nums.iter().any(|n| !n.is_finite()) {
        return Err(bad(
            "near takes lng,lat,maxDistanceMeters[,minDistanceMeters].",
        ));
    }
    let near = Near {
        lon: nums[0],
        lat: nums[1],
        max_m: nums.get(2).copied().unwrap_or(50_000.0),
        min_m: nums.get(3).copied().unwrap_or(0.0),
    };
    if !(-90.0..=90.0).contains(&near.lat) || !(-180.0..=180.0).contains(&near.lon) {
        return Err(bad(
            "near: longitude must be within [-180, 180] and latitude within [-90, 90].",
        ));
    }
    if !(0.0..=20_037_509.0).contains(&near.max_m) || near.min_m < 0.0 || near.min_m > near.max_m {
        return Err(bad(
            "near: distances must satisfy 0 <= min <= max <= 20037509 meters.",
        ));
    }
    Ok(Some(near))
}

fn one<'v>(field: &str, op: Op, values: &'v [String]) -> Result<&'v str, ApiError> {
    match values {
        [v] => Ok(v),
        _ => Err(bad(format!(
            "where[{field}][{}] takes one value.",
            op.name()
        ))),
    }
}

/// `in` values: repeated/indexed parameters, or one comma-separated value.
fn many(field: &str, values: &[String]) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = if values.len() == 1 {
        values[0].split(',').map(|s| s.trim().to_string()).collect()
    } else {
        values.to_vec()
    };
    if list.is_empty() || list.len() > MAX_IN_VALUES {
        return Err(bad(format!(
            "where[{field}]: in/not_in take 1 to {MAX_IN_VALUES} values."
        )));
    }
    Ok(list)
}

fn parse_bool(field: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!("where[{field}][exists] takes true or false."))),
    }
}

fn parse_uuid(field: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| bad(format!("where[{field}]: not a valid id.")))
}

fn parse_time(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| bad(format!("where[{field}]: not a date or RFC 3339 time.")))
}

fn check_enum(field: &str, allowed: &[&str], v: &str) -> Result<String, ApiError> {
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(bad(format!(
            "where[{field}]: value must be one of {}.",
            allowed.join(", ")
        )))
    }
}

/// `%`, `_` and `\` match themselves in LIKE patterns built from input.
fn like_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unsupported(field: &str, op: Op) -> ApiError {
    bad(format!(
        "The operator '{}' is not supported for field '{field}'.",
        op.name()
    ))
}

/// Appends the filter as SQL, binding every value.
pub fn push_filter(
    qb: &mut QueryBuilder<'_, Postgres>,
    filter: &Filter,
    fields: &[FieldSpec],
    blind: BlindIndexLookup<'_>,
) -> Result<(), ApiError> {
    match filter {
        Filter::And(parts) | Filter::Or(parts) if parts.is_empty() => {
            qb.push("TRUE");
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_filter(qb, p, fields, blind)?;
            }
            qb.push(")");
        }
        Filter::Cond { field, op, values } => {
            push_cond(qb, spec(fields, field)?, *op, values, blind)?
        }
    }
    Ok(())
}

fn push_cond(
    qb: &mut QueryBuilder<'_, Postgres>,
    f: &FieldSpec,
    op: Op,
    values: &[String],
    blind: BlindIndexLookup<'_>,
) -> Result<(), ApiError> {
    let col = f.column;
    let name = f.name;
    if op == Op::Exists {
        let yes = parse_bool(name, one(name, op, values)?)?;
        match (f.kind, yes) {
            (FieldKind::TextArray, true) => qb.push(format!("cardinality({col}) > 0")),
            (FieldKind::TextArray, false) => qb.push(format!("cardinality({col}) = 0")),
            (FieldKind::Location, _) => return Err(unsupported(name, op)),
            (_, true) => qb.push(format!("{col} IS NOT NULL")),
            (_, false) => qb.push(format!("{col} IS NULL")),
        };
        return Ok(());
    }
    let cmp = |op: Op| match op {
        Op::Equals => "=",
        Op::NotEquals => "IS DISTINCT FROM",
        Op::GreaterThan => ">",
        Op::GreaterThanEqual => ">=",
        Op::LessThan => "<",
        _ => "<=",
    };
    match f.kind {
        FieldKind::Text | FieldKind::Enum(_) => {
            let check = |v: &str| -> Result<String, ApiError> {
                match f.kind {
                    FieldKind::Enum(allowed) => check_enum(name, allowed, v),
                    _ => Ok(v.to_string()),
                }
            };
            match op {
                Op::Equals | Op::NotEquals => {
                    let v = check(one(name, op, values)?)?;
                    qb.push(format!("{col} {} ", cmp(op))).push_bind(v);
                }
                Op::In | Op::NotIn => {
                    let list = many(name, values)?
                        .iter()
                        .map(|v| check(v))
                        .collect::<Result<Vec<_>, _>>()?;
                    if op == Op::In {
                        qb.push(format!("{col} = ANY(")).push_bind(list).push(")");
                    } else {
                        qb.push(format!("NOT ({col} = ANY("))
                            .push_bind(list)
                            .push(") AND {col} IS NOT NULL)".replace("{col}", col));
                    }
                }
                Op::Contains if matches!(f.kind, FieldKind::Text) => {
                    let v = one(name, op, values)?;
                    qb.push(format!("{col} ILIKE "))
                        .push_bind(format!("%{}%", like_escape(v)));
                }
                // Payload's like: every word appears, case-insensitively.
                Op::Like if matches!(f.kind, FieldKind::Text) => {
                    let v = one(name, op, values)?;
                    let words: Vec<&str> = v.split_whitespace().take(16).collect();
                    if words.is_empty() {
                        qb.push("TRUE");
                    }
                    for (i, w) in words.iter().enumerate() {
                        if i > 0 {
                            qb.push(" AND ");
                        }
                        qb.push(format!("{col} ILIKE "))
                            .push_bind(format!("%{}%", like_escape(w)));
                    }
                }
                _ => return Err(unsupported(name, op)),
            }
        }
        FieldKind::Uuid => match op {
            Op::Equals | Op::NotEquals => {
                let v = parse_uuid(name, one(name, op, values)?)?;
                qb.push(format!("{col} {} ", cmp(op))).push_bind(v);
            }
            Op::In | Op::NotIn => {
                let list = many(name, values)?
                    .iter()
                    .map(|v| parse_uuid(name, v))
                    .collect::<Result<Vec<_>, _>>()?;
                let neg = if op == Op::NotIn { "NOT " } else { "" };
                qb.push(format!("{neg}({col} = ANY("))
                    .push_bind(list)
                    .push("))");
            }
            _ => return Err(unsupported(name, op)),
        },
        FieldKind::Timestamp => match op {
            Op::Equals
            | Op::NotEquals
            | Op::GreaterThan
            | Op::GreaterThanEqual
            | Op::LessThan
            | Op::LessThanEqual => {
                let v = parse_time(name, one(name, op, values)?)?;
                qb.push(format!("{col} {} ", cmp(op))).push_bind(v);
            }
            _ => return Err(unsupported(name, op)),
        },
        FieldKind::TextArray => match op {
            Op::Equals | Op::Contains => {
                let v = one(name, op, values)?.to_string();
                qb.push("").push_bind(v).push(format!(" = ANY({col})"));
            }
            Op::NotEquals => {
                let v = one(name, op, values)?.to_string();
                qb.push("NOT (")
                    .push_bind(v)
                    .push(format!(" = ANY({col}))"));
            }
            Op::In => {
                qb.push(format!("{col} && ")).push_bind(many(name, values)?);
            }
            Op::NotIn => {
                qb.push(format!("NOT ({col} && "))
                    .push_bind(many(name, values)?)
                    .push(")");
            }
            _ => return Err(unsupported(name, op)),
        },
        FieldKind::BlindIndexed { table, column } => match op {
            Op::Equals | Op::In => {
                let list = if op == Op::Equals {
                    vec![one(name, op, values)?.to_string()]
                } else {
                    many(name, values)?
                };
                let hashes: Vec<Vec<u8>> =
                    list.iter().flat_map(|v| blind(table, column, v)).collect();
                qb.push(format!("{col} = ANY(")).push_bind(hashes).push(")");
            }
            _ => return Err(unsupported(name, op)),
        },
        FieldKind::Location => return Err(unsupported(name, op)),
    }
    Ok(())
}

/// `ORDER BY <col> ASC|DESC, id` for a sortable declared field.
pub fn order_by(
    sort: &Option<(String, bool)>,
    fields: &[FieldSpec],
    default: &str,
) -> Result<String, ApiError> {
    match sort {
        None => Ok(format!(" ORDER BY {default}")),
        Some((name, desc)) => {
            let f = fields
                .iter()
                .find(|f| f.name == name && f.sortable)
                .ok_or_else(|| bad(format!("Cannot sort by '{name}'.")))?;
            let dir = if *desc { "DESC" } else { "ASC" };
            Ok(format!(" ORDER BY {} {dir} NULLS LAST, id {dir}", f.column))
        }
    }
}

/// Payload's paginated list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub docs: Vec<T>,
    pub total_docs: i64,
    pub limit: u32,
    pub total_pages: i64,
    pub page: u32,
    pub paging_counter: i64,
    pub has_prev_page: bool,
    pub has_next_page: bool,
    pub prev_page: Option<u32>,
    pub next_page: Option<u32>,
}

impl<T> Page<T> {
    /// `total_docs` is ignored when the query asked for no pagination: the
    /// page is then all that was looked at.
    pub fn new(docs: Vec<T>, total_docs: i64, q: &ListQuery) -> Self {
        let total_docs = if q.pagination {
            total_docs
        } else {
            docs.len() as i64
        };
        let limit = q.limit as i64;
        let total_pages = ((total_docs + limit - 1) / limit).max(1);
        let page = q.page;
        Self {
            docs,
            total_docs,
            limit: q.limit,
            total_pages,
            page,
            paging_counter: (page as i64 - 1) * limit + 1,
            has_prev_page: page > 1,
            has_next_page: (page as i64) < total_pages,
            prev_page: (page > 1).then(|| page - 1),
            next_page: ((page as i64) < total_pages).then(|| page + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FieldSpec] = &[
        FieldSpec {
            name: "name",
            column: "name",
            kind: FieldKind::Text,
            sortable: true,
        },
        FieldSpec {
            name: "status",
            column: "status",
            kind: FieldKind::Enum(&["draft", "published"]),
            sortable: true,
        },
        FieldSpec {
            name: "createdAt",
            column: "created_at",
            kind: FieldKind::Timestamp,
            sortable: true,
        },
        FieldSpec {
            name: "email",
            column: "email_bidx",
            kind: FieldKind::BlindIndexed {
                table: "t",
                column: "email",
            },
            sortable: false,
        },
        FieldSpec {
            name: "location",
            column: "",
            kind: FieldKind::Location,
            sortable: false,
        },
    ];

    fn sql(q: &str) -> Result<String, ApiError> {
        let lq = parse(q, &[])?;
        let mut qb = QueryBuilder::<Postgres>::new("");
        let lookup = |_: &str, _: &str, _: &str| vec![vec![1u8]];
        push_filter(&mut qb, lq.filter.as_ref().unwrap(), FIELDS, &lookup)?;
        Ok(qb.sql().to_string())
    }

    #[test]
    fn where_becomes_bound_sql() {
        assert_eq!(sql("where[name][equals]=Ann").unwrap(), "name = $1");
        assert_eq!(
            sql("where[or][0][status][equals]=draft&where[or][1][name][like]=a%20b").unwrap(),
            "(status = $1 OR name ILIKE $2 AND name ILIKE $3)"
        );
        assert_eq!(
            sql("where[createdAt][greater_than]=2026-01-01&where[status][in]=draft,published")
                .unwrap(),
            "(created_at > $1 AND status = ANY($2))"
        );
        assert_eq!(
            sql("where[email][equals]=a@b.c").unwrap(),
            "email_bidx = ANY($1)"
        );
        assert_eq!(sql("where[name][exists]=false").unwrap(), "name IS NULL");
    }

    #[test]
    fn values_never_reach_the_sql_text() {
        let s = sql("where[name][equals]=x'%3B%20DROP%20TABLE%20herbs%3B--").unwrap();
        assert!(!s.contains("DROP"), "{s}");
    }

    #[test]
    fn unknown_fields_operators_and_bad_values_are_named() {
        let msg = |q: &str| sql(q).unwrap_err().to_string();
        assert!(msg("where[secret][equals]=1").contains("cannot be queried: secret"));
        assert!(msg("where[name][regex]=1").contains("'regex'"));
        assert!(msg("where[email][like]=a").contains("'like' is not supported for field 'email'"));
        assert!(msg("where[status][equals]=gone").contains("one of draft, published"));
        assert!(msg("where[createdAt][equals]=yesterday").contains("not a date"));
        let e = msg("where[email][equals]=ann@example.org&where[email][like]=x");
        assert!(!e.contains("ann@example.org"), "{e}");
    }

    #[test]
    fn limits_pages_and_depth_are_bounded() {
        assert!(parse("limit=100000", &[]).is_err());
        assert!(parse("limit=0", &[]).is_err());
        assert_eq!(parse("limit=100&page=3", &[]).unwrap().offset(), 200);
        assert!(parse("page=0", &[]).is_err());
        assert!(parse("bogus=1", &[]).is_err());
        assert!(parse("depth=2", &[]).is_ok());
        let deep = "where[or][0][and][0][or][0][and][0][name][equals]=x";
        assert!(sql(deep).unwrap_err().to_string().contains("nesting"));
        assert!(sql("where[or][0][and][0][or][0][name][equals]=x").is_ok());
    }

    #[test]
    fn near_is_taken_out_in_payloads_order() {
        let mut lq = parse(
            "where[location][near]=-0.12,51.5,25000&where[name][equals]=a",
            &[],
        )
        .unwrap();
        let near = take_near(&mut lq.filter, FIELDS).unwrap().unwrap();
        assert_eq!(
            (near.lon, near.lat, near.max_m, near.min_m),
            (-0.12, 51.5, 25000.0, 0.0)
        );
        assert!(matches!(lq.filter, Some(Filter::And(ref p)) if p.len() == 1));
        let mut lq = parse("where[location][near]=200,51,10", &[]).unwrap();
        assert!(take_near(&mut lq.filter, FIELDS).is_err());
    }

    #[test]
    fn pages_follow_payload() {
        let q = parse("limit=10&page=2", &[]).unwrap();
        let p = Page::new(vec![(); 10], 25, &q);
        assert_eq!(
            (p.total_pages, p.paging_counter, p.prev_page, p.next_page),
            (3, 11, Some(1), Some(3))
        );
        let q = parse("", &[]).unwrap();
        let p: Page<()> = Page::new(vec![], 0, &q);
        assert_eq!(
            (p.total_pages, p.has_next_page, p.has_prev_page),
            (1, false, false)
        );
        // Without pagination a full page says only what it holds.
        let q = parse("limit=10&pagination=false", &[]).unwrap();
        assert!(!q.pagination);
        let p = Page::new(vec![(); 10], 999, &q);
        assert_eq!(
            (p.total_docs, p.total_pages, p.has_next_page, p.next_page),
            (10, 1, false, None)
        );
        assert!(parse("pagination=true", &[]).unwrap().pagination);
        assert!(parse("pagination=no", &[]).is_err());
        assert!(parse("pagination=false&page=2", &[]).is_err());
        assert!(parse("pagination=false&page=1", &[]).is_ok());
    }
}
