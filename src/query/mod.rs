//! Payload's list query language, parsed and checked: `where[field][op]=value`
//! (with nested `where[or][i]..` / `where[and][i]..`), `sort` (one or more
//! fields), `limit`, `page`, `pagination`, `depth`, and the collection's own
//! parameters. The result is a `ListQuery` whose filter names *declared*
//! fields (`schema`) with typed values; the store compiles it to SQL. No SQL
//! here.
//!
//! Rules, the same on every route: an unknown parameter, a field the caller
//! may not see (staff-only fields for anyone else), an unknown operator, a
//! parameter given twice (unless it is declared repeatable), or a control
//! character anywhere is a 400 naming what is wrong, never quoting a value
//! (a value may be an email).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::SecretText;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::schema::{Collection, FieldKind, FieldSpec, Visibility};

pub mod params;

pub use params::{BulkParams, CountParams, ItemParams, ListParams, NoParams, Params, from_pairs};

pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;
/// The deepest a page may start: deeper offsets cost the database a scan
/// of everything before them. Narrow the query (a filter on createdAt, or a
/// sort) instead. Callers without credentials get a tenth of it: their
/// counts stop there too, which keeps a counted public list to about a
/// thousand rows read.
pub const MAX_OFFSET: u32 = 10_000;
pub const MAX_OFFSET_ANONYMOUS: u32 = 1_000;
const MAX_DEPTH: usize = 3;
const MAX_CONDITIONS: usize = 16;
const MAX_LIKE_WORDS: usize = 8;
const MAX_VALUE_LEN: usize = 500;
const MAX_IN_VALUES: usize = 100;
const MAX_SORT_FIELDS: usize = 3;
/// `depth` beyond this populates nothing more.
pub const MAX_POPULATE_DEPTH: u8 = 10;

/// Payload's operators: the enum, its wire name and `ALL`, written once
/// (the store compiles each by an exhaustive match: a new one does not
/// build until it is compiled there, and `store::filter::tests::every_operator_the_parser_takes_compiles`
/// fails until the parser accepts it for some field).
macro_rules! operators {
    ($($variant:ident = $name:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op { $($variant),+ }

        impl Op {
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(Op::$variant),)+
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),+ }
            }
        }
    };
}

operators! {
    Equals = "equals",
    NotEquals = "not_equals",
    In = "in",
    NotIn = "not_in",
    Like = "like",
    Contains = "contains",
    Exists = "exists",
    GreaterThan = "greater_than",
    GreaterThanEqual = "greater_than_equal",
    LessThan = "less_than",
    LessThanEqual = "less_than_equal",
    Near = "near",
}

/// A condition's value, already typed for its field.
#[derive(Debug, Clone, PartialEq)]
pub enum CondValue {
    Text(String),
    Texts(Vec<String>),
    Uuid(Uuid),
    Uuids(Vec<Uuid>),
    Time(DateTime<Utc>),
    Exists(bool),
    /// `like`: every word must appear (case-insensitively).
    Words(Vec<String>),
    /// A plaintext value to match through a blind index: the service turns
    /// it into `Hashes` before the store sees the filter.
    Blind(Vec<SecretText>),
    Hashes(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub field: &'static FieldSpec,
    pub op: Op,
    pub value: CondValue,
}

/// Computes the blind indexes to match a plaintext value by (one per live
/// index key): (table, column, value) -> hashes. Supplied by the service.
pub type BlindHashes<'a> = &'a dyn Fn(&str, &str, &str) -> Vec<Vec<u8>>;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Cond(Cond),
}

impl Filter {
    /// The API names of the fields the filter reads, once each, sorted.
    pub fn field_names(&self) -> Vec<&'static str> {
        fn walk(f: &Filter, out: &mut Vec<&'static str>) {
            match f {
                Filter::And(p) | Filter::Or(p) => p.iter().for_each(|x| walk(x, out)),
                Filter::Cond(c) => out.push(c.field.name),
            }
        }
        let mut out = vec![];
        walk(self, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Replaces every plaintext blind-index value by its hashes (one per
    /// live index key), so no plaintext reaches the store.
    pub fn resolve_blind(&mut self, hashes: BlindHashes<'_>) {
        match self {
            Filter::And(p) | Filter::Or(p) => p.iter_mut().for_each(|x| x.resolve_blind(hashes)),
            Filter::Cond(c) => {
                if let (CondValue::Blind(values), FieldKind::BlindIndexed { table, column }) =
                    (&c.value, c.field.kind)
                {
                    let all = values
                        .iter()
                        .flat_map(|v| hashes(table, column, v.as_str()))
                        .collect();
                    c.value = CondValue::Hashes(all);
                }
            }
        }
    }
}

/// Payload's `near`: `lng,lat,maxDistanceMeters[,minDistanceMeters]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub max_m: f64,
    pub min_m: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: &'static FieldSpec,
    pub desc: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// A top-level `near` condition, taken out of the filter.
    pub near: Option<Near>,
    pub sort: Vec<Sort>,
    pub limit: u32,
    pub page: u32,
    /// Payload's `pagination=false`: the first `limit` documents without
    /// counting every match (no `totalDocs` query; the page says only what
    /// it holds).
    pub pagination: bool,
    /// Payload's `depth`: 0 leaves relationships as ids.
    pub depth: u8,
    /// Payload's `select`: the fields each document shows.
    pub select: Selection,
    /// The deepest this caller's page may start ([`MAX_OFFSET`], or
    /// [`MAX_OFFSET_ANONYMOUS`]).
    pub max_offset: u32,
}

impl ListQuery {
    /// Counts stop here: past the deepest page this caller may ask for, an
    /// exact count would only cost. Every page they may reach is still
    /// counted exactly.
    pub fn count_cap(&self) -> i64 {
        self.max_offset as i64 + self.limit as i64
    }

    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.limit as i64
    }

    /// The fields the request filtered or sorted by, for the audit entry.
    pub fn field_names(&self) -> Vec<&'static str> {
        let mut out = self
            .filter
            .as_ref()
            .map(Filter::field_names)
            .unwrap_or_default();
        if self.near.is_some() {
            out.push("location");
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Adds a condition (ANDed with the rest).
    pub fn and(&mut self, cond: Filter) {
        self.filter = Some(match self.filter.take() {
            None => cond,
            Some(Filter::And(mut parts)) => {
                parts.push(cond);
                Filter::And(parts)
            }
            Some(other) => Filter::And(vec![other, cond]),
        });
    }
}

/// Payload's `select`: which top-level fields a document shows (its `id`
/// always). `select[f]=true` names what to show, `select[f]=false` what to
/// leave out; one request uses one or the other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    #[default]
    All,
    Only(Vec<&'static str>),
    Except(Vec<&'static str>),
}

impl Selection {
    pub fn all() -> Self {
        Selection::All
    }

    pub fn only(fields: Vec<&'static str>) -> Self {
        Selection::Only(fields)
    }

    pub fn except(fields: Vec<&'static str>) -> Self {
        Selection::Except(fields)
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Selection::All)
    }

    /// Whether the document shows `field` (an API name).
    pub fn keeps(&self, field: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(f) => field == "id" || f.contains(&field),
            Selection::Except(f) => field == "id" || !f.contains(&field),
        }
    }

    /// This selection less `withheld` (fields a consent does not grant).
    pub fn without(&self, withheld: &[&'static str]) -> Selection {
        if withheld.is_empty() {
            return self.clone();
        }
        match self {
            Selection::All => Selection::Except(withheld.to_vec()),
            Selection::Only(f) => Selection::Only(
                f.iter()
                    .copied()
                    .filter(|x| !withheld.contains(x))
                    .collect(),
            ),
            Selection::Except(f) => {
                let mut all = f.clone();
                all.extend(withheld.iter().copied().filter(|x| !f.contains(x)));
                Selection::Except(all)
            }
        }
    }

    /// The fields shown, for a READ entry: every one of `every` the
    /// selection keeps, named (never an empty list standing for "all").
    pub fn shown(&self, every: &[&'static str]) -> Vec<&'static str> {
        every.iter().copied().filter(|f| self.keeps(f)).collect()
    }

    fn from_pairs(pairs: Vec<(&'static str, bool)>) -> Result<Self, ApiError> {
        if pairs.is_empty() {
            return Ok(Selection::All);
        }
        let shows = pairs[0].1;
        if pairs.iter().any(|(_, s)| *s != shows) {
            return Err(bad(
                "select: name the fields to show (select[field]=true) or the fields to leave \
                 out (select[field]=false), not both.",
            ));
        }
        let fields = pairs.into_iter().map(|(f, _)| f).collect();
        Ok(if shows {
            Selection::Only(fields)
        } else {
            Selection::Except(fields)
        })
    }
}

/// One `select[field]=true|false` parameter, checked against the fields the
/// collection's documents have.
fn select_field(
    coll: &Collection,
    key: &str,
    value: &str,
) -> Result<(&'static str, bool), ApiError> {
    let inner = key
        .strip_prefix("select[")
        .and_then(|r| r.strip_suffix(']'))
        .filter(|f| !f.contains(['[', ']']))
        .ok_or_else(|| {
            bad(format!(
                "'{}': select takes top-level fields only, as select[field]=true.",
                shown(key)
            ))
        })?;
    let field = coll
        .document
        .iter()
        .copied()
        .find(|f| *f == inner)
        .ok_or_else(|| {
            bad(format!(
                "select: '{}' is not a field of {} (fields: {}).",
                shown(inner),
                coll.slug,
                coll.document.join(", ")
            ))
        })?;
    let shows = match value {
        "true" => true,
        "false" => false,
        _ => {
            return Err(bad(format!("select[{field}] must be true or false.")));
        }
    };
    Ok((field, shows))
}

/// The query of a request about one document (`GET`, `PATCH`, `DELETE`
/// `/api/{collection}/{id}`): Payload's `depth` and `select`, and the
/// parameters that change nothing here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemQuery {
    pub depth: u8,
    pub select: Selection,
}

pub fn parse_item(query: &str, coll: &Collection) -> Result<ItemQuery, ApiError> {
    let sorted = sort_out(query, coll, ItemParams::names(), &[], None)?;
    let params: ItemParams = from_pairs(&sorted.standard)?;
    Ok(ItemQuery {
        depth: params.depth.unwrap_or(0),
        select: Selection::from_pairs(sorted.select)?,
    })
}

/// A write's parameters (POST, PATCH, DELETE): as a read by id, but the
/// answer is the written document itself, never populated.
pub fn parse_write(query: &str, coll: &Collection) -> Result<ItemQuery, ApiError> {
    let q = parse_item(query, coll)?;
    if q.depth > 0 {
        return Err(bad(
            "depth: a write answers with the document as written (depth 0); \
             read it with GET ?depth=N to populate its relationships.",
        ));
    }
    Ok(q)
}

/// Payload's parameters that mean nothing here or are refused, with why.
fn payload_param(k: &str, v: &str) -> Result<(), ApiError> {
    match k {
        // No field here is localized: every locale reads the same document.
        "locale" | "fallback-locale" => Ok(()),
        "draft" if v == "false" => Ok(()),
        "draft" => Err(bad(
            "draft: this gateway keeps no drafts or versions; omit draft or send draft=false.",
        )),
        "trash" if v == "false" => Ok(()),
        "trash" => Err(bad(
            "trash: this gateway keeps no trash (deletes are final); omit trash or send trash=false.",
        )),
        _ if ["populate", "joins"].contains(&k.split('[').next().unwrap_or(k)) => {
            Err(bad(format!(
                "{}: not supported here; use depth to populate relationships.",
                k.split('[').next().unwrap_or(k)
            )))
        }
        other => Err(bad(format!("Unknown query parameter '{}'.", shown(other)))),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[derive(Debug)]
enum Node {
    Leaf(String),
    Map(BTreeMap<String, Node>),
}

/// `where[a][b][0]` -> ["a", "b", "0"].
fn segments(key: &str) -> Result<Vec<String>, ApiError> {
    let mut rest = &key["where".len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
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
        rest = &inner[end + 1..];
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
    key: &str,
) -> Result<(), ApiError> {
    let (head, rest) = path.split_first().expect("non-empty");
    if rest.is_empty() {
        if node.contains_key(head) {
            return Err(bad(format!(
                "Query parameter '{}' is given more than once.",
                shown(key)
            )));
        }
        node.insert(head.clone(), Node::Leaf(value));
        return Ok(());
    }
    match node
        .entry(head.clone())
        .or_insert_with(|| Node::Map(BTreeMap::new()))
    {
        Node::Map(m) => insert(m, rest, value, key),
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

struct Builder<'a> {
    coll: &'a Collection,
    staff: bool,
    count: usize,
    near: Option<Near>,
}

impl Builder<'_> {
    fn spec(&self, name: &str) -> Result<&'static FieldSpec, ApiError> {
        self.coll
            .field(name)
            .filter(|f| self.staff || f.visibility == Visibility::Everyone)
            .ok_or_else(|| {
                bad(format!(
                    "The following path cannot be queried: {}",
                    shown(name)
                ))
            })
    }

    fn filter(
        &mut self,
        map: BTreeMap<String, Node>,
        depth: usize,
    ) -> Result<Option<Filter>, ApiError> {
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
                            Node::Map(m) => {
                                if let Some(f) = self.filter(m, depth + 1)? {
                                    subs.push(f);
                                }
                            }
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
                    let spec = self.spec(&key)?;
                    for (op_name, value) in ops {
                        let op = Op::parse(&op_name).ok_or_else(|| {
                            bad(format!(
                                "The operator '{}' is not supported (field '{}').",
                                shown(&op_name),
                                spec.name
                            ))
                        })?;
                        self.count += 1;
                        if self.count > MAX_CONDITIONS {
                            return Err(bad(format!(
                                "where: more than {MAX_CONDITIONS} conditions."
                            )));
                        }
                        let values = match value {
                            Node::Leaf(v) => Raw::One(v),
                            // where[f][in][0]=a&where[f][in][1]=b
                            Node::Map(m) => Raw::Many(
                                indexed(m)?
                                    .into_iter()
                                    .map(|n| match n {
                                        Node::Leaf(v) => Ok(v),
                                        Node::Map(_) => Err(bad(
                                            "Malformed where parameter: list items are values.",
                                        )),
                                    })
                                    .collect::<Result<_, _>>()?,
                            ),
                        };
                        if op == Op::Near || spec.kind == FieldKind::Location {
                            if depth > 0 || op != Op::Near || spec.kind != FieldKind::Location {
                                return Err(bad(format!(
                                    "The operator 'near' is only supported on 'location', as a top-level condition (field '{}').",
                                    spec.name
                                )));
                            }
                            if self.near.is_some() {
                                return Err(bad("where: one near condition at most."));
                            }
                            self.near = Some(parse_near(values.one(spec, op)?)?);
                            continue;
                        }
                        parts.push(Filter::Cond(cond(spec, op, values)?));
                    }
                }
                (_, Node::Leaf(_)) => {
                    return Err(bad(format!(
                        "Malformed where parameter for '{0}': expected where[{0}][operator]=value.",
                        shown(&key)
                    )));
                }
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Filter::And(parts)),
        })
    }
}

/// A condition's raw value(s): `where[f][op]=v` or `where[f][op][i]=v`.
enum Raw {
    One(String),
    Many(Vec<String>),
}

impl Raw {
    fn one(self, f: &FieldSpec, op: Op) -> Result<String, ApiError> {
        match self {
            Raw::One(v) => Ok(v),
            Raw::Many(_) => Err(bad(format!(
                "where[{}][{}] takes one value.",
                f.name,
                op.name()
            ))),
        }
    }

    /// Comma-separated or indexed.
    fn many(self, f: &FieldSpec) -> Result<Vec<String>, ApiError> {
        let list: Vec<String> = match self {
            Raw::One(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
            Raw::Many(v) => v,
        };
        if list.is_empty() || list.len() > MAX_IN_VALUES {
            return Err(bad(format!(
                "where[{}]: 1 to {MAX_IN_VALUES} values.",
                f.name
            )));
        }
        Ok(list)
    }
}

fn unsupported(field: &str, op: Op) -> ApiError {
    bad(format!(
        "The operator '{}' is not supported for field '{field}'.",
        op.name()
    ))
}

fn parse_bool(field: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!("where[{field}][exists] takes true or false."))),
    }
}

fn parse_uuid(field: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| bad(format!("where[{field}]: not a valid id.")))
}

fn parse_time(field: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    crate::domain::time::instant(v)
        .ok_or_else(|| bad(format!("where[{field}]: not a date or RFC 3339 time.")))
}

fn check_enum(field: &str, allowed: &[&str], v: String) -> Result<String, ApiError> {
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(bad(format!(
            "where[{field}]: value must be one of {}.",
            allowed.join(", ")
        )))
    }
}

fn cond(f: &'static FieldSpec, op: Op, raw: Raw) -> Result<Cond, ApiError> {
    let name = f.name;
    let value = if op == Op::Exists {
        if f.kind == FieldKind::Location {
            return Err(unsupported(name, op));
        }
        CondValue::Exists(parse_bool(name, &raw.one(f, op)?)?)
    } else {
        match (f.kind, op) {
            (FieldKind::Text, Op::Equals | Op::NotEquals | Op::Contains) => {
                CondValue::Text(raw.one(f, op)?)
            }
            (FieldKind::Enum(allowed), Op::Equals | Op::NotEquals) => {
                CondValue::Text(check_enum(name, allowed, raw.one(f, op)?)?)
            }
            (FieldKind::Text, Op::In | Op::NotIn) => CondValue::Texts(raw.many(f)?),
            (FieldKind::Enum(allowed), Op::In | Op::NotIn) => CondValue::Texts(
                raw.many(f)?
                    .into_iter()
                    .map(|v| check_enum(name, allowed, v))
                    .collect::<Result<_, _>>()?,
            ),
            (FieldKind::Text, Op::Like) => {
                let v = raw.one(f, op)?;
                let words: Vec<String> = v.split_whitespace().map(str::to_string).collect();
                if words.len() > MAX_LIKE_WORDS {
                    return Err(bad(format!(
                        "where[{name}][like]: at most {MAX_LIKE_WORDS} words."
                    )));
                }
                CondValue::Words(words)
            }
            (FieldKind::Uuid, Op::Equals | Op::NotEquals) => {
                CondValue::Uuid(parse_uuid(name, &raw.one(f, op)?)?)
            }
            (FieldKind::Uuid, Op::In | Op::NotIn) => CondValue::Uuids(
                raw.many(f)?
                    .iter()
                    .map(|v| parse_uuid(name, v))
                    .collect::<Result<_, _>>()?,
            ),
            (
                FieldKind::Timestamp,
                Op::Equals
                | Op::NotEquals
                | Op::GreaterThan
                | Op::GreaterThanEqual
                | Op::LessThan
                | Op::LessThanEqual,
            ) => CondValue::Time(parse_time(name, &raw.one(f, op)?)?),
            (FieldKind::TextArray, Op::Equals | Op::Contains | Op::NotEquals) => {
                CondValue::Text(raw.one(f, op)?)
            }
            (FieldKind::TextArray, Op::In | Op::NotIn) => CondValue::Texts(raw.many(f)?),
            (FieldKind::BlindIndexed { .. }, Op::Equals) => {
                CondValue::Blind(vec![SecretText::from(raw.one(f, op)?)])
            }
            (FieldKind::BlindIndexed { .. }, Op::In) => {
                CondValue::Blind(raw.many(f)?.into_iter().map(SecretText::from).collect())
            }
            _ => return Err(unsupported(name, op)),
        }
    };
    Ok(Cond {
        field: f,
        op,
        value,
    })
}

fn parse_near(raw: String) -> Result<Near, ApiError> {
    let usage = "near takes lng,lat,maxDistanceMeters[,minDistanceMeters].";
    let nums: Vec<f64> = raw
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(usage))?;
    if !(2..=4).contains(&nums.len()) || nums.iter().any(|n| !n.is_finite()) {
        return Err(bad(usage));
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
    check_radius(near.max_m, near.min_m)?;
    Ok(near)
}

/// The largest search radius: a metropolitan area, not the planet (a
/// radius covering everything makes every count read the whole table).
pub const MAX_RADIUS_M: f64 = 200_000.0;

pub fn check_radius(max_m: f64, min_m: f64) -> Result<(), ApiError> {
    if !(0.0..=MAX_RADIUS_M).contains(&max_m) || min_m < 0.0 || min_m > max_m {
        return Err(bad(format!(
            "near: distances must satisfy 0 <= min <= max <= {MAX_RADIUS_M} meters."
        )));
    }
    Ok(())
}

fn parse_sort(coll: &Collection, staff: bool, v: &str) -> Result<Vec<Sort>, ApiError> {
    let mut out: Vec<Sort> = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let (name, desc) = match part.strip_prefix('-') {
            Some(n) => (n, true),
            None => (part, false),
        };
        if name.is_empty() {
            return Err(bad("sort needs a field name."));
        }
        let field = coll
            .field(name)
            .filter(|f| f.sortable && (staff || f.visibility == Visibility::Everyone))
            .ok_or_else(|| bad(format!("Cannot sort by '{}'.", shown(name))))?;
        if out.iter().any(|s| s.field.name == field.name) {
            return Err(bad(format!("sort names '{}' twice.", field.name)));
        }
        out.push(Sort { field, desc });
    }
    if out.len() > MAX_SORT_FIELDS {
        return Err(bad(format!("sort takes at most {MAX_SORT_FIELDS} fields.")));
    }
    Ok(out)
}

/// A query string's pairs, sorted out by who parses them: the deep
/// objects (`where`, `select`) here, the route's standard parameters and
/// its own by their structs (`params`).
struct Sorted<'q> {
    root: BTreeMap<String, Node>,
    select: Vec<(&'static str, bool)>,
    standard: Vec<(Cow<'q, str>, Cow<'q, str>)>,
    own: Vec<(Cow<'q, str>, Cow<'q, str>)>,
}

/// Sorts `query`'s pairs out for a route taking the `standard` and `own`
/// parameters. `only`: the route takes fewer than a list (a count, a bulk
/// change), and a list's other parameters are refused saying so.
fn sort_out<'q>(
    query: &'q str,
    coll: &Collection,
    standard: &[String],
    own: &[String],
    only: Option<&str>,
) -> Result<Sorted<'q>, ApiError> {
    let takes = |name: &str| standard.iter().any(|s| s == name);
    let mut out = Sorted {
        root: BTreeMap::new(),
        select: Vec::new(),
        standard: Vec::new(),
        own: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k.chars().any(char::is_control) || v.chars().any(char::is_control) {
            return Err(bad(format!(
                "Query parameter '{}' holds a control character.",
                shown(&k)
            )));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(bad(format!("Query parameter '{}' is too long.", shown(&k))));
        }
        let base = k.split('[').next().unwrap_or_default();
        if k.starts_with("where[") && takes("where") {
            insert(&mut out.root, &segments(&k)?, v.into_owned(), &k)?;
        } else if k.starts_with("select[") && takes("select") {
            out.select.push(select_field(coll, &k, &v)?);
        } else if takes(&k) {
            out.standard.push((k, v));
        } else if own.iter().any(|o| *o == k) {
            out.own.push((k, v));
        } else if let Some(only) = only
            && ListParams::names().iter().any(|n| n == base)
        {
            return Err(bad(format!("{only}, not '{}'.", shown(&k))));
        } else {
            if seen.iter().any(|s| *s == k) {
                return Err(bad(format!(
                    "Query parameter '{}' is given more than once.",
                    shown(&k)
                )));
            }
            seen.push(k.to_string());
            payload_param(&k, &v)?;
        }
    }
    Ok(out)
}

/// The query a list's parameters make, as `who` may ask it.
fn list_query(
    sorted: Sorted<'_>,
    std: ListParams,
    coll: &Collection,
    who: &Principal,
) -> Result<ListQuery, ApiError> {
    let staff = who.is_staff();
    let ListParams {
        limit,
        page,
        pagination,
        sort,
        r#where: _,
        select: _,
        depth,
    } = std;
    let mut out = ListQuery {
        filter: None,
        near: None,
        sort: match sort.as_deref().map(str::trim) {
            // `sort=` (empty) is the default order, as in Payload.
            None | Some("") => vec![],
            Some(v) => parse_sort(coll, staff, v)?,
        },
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        page: page.unwrap_or(1),
        pagination: pagination.unwrap_or(true),
        // Payload's default is 2; here relationships are populated only when
        // asked (a second read, under the caller's own rights).
        depth: depth.unwrap_or(0),
        select: Selection::from_pairs(sorted.select)?,
        max_offset: if who.is_anonymous() {
            MAX_OFFSET_ANONYMOUS
        } else {
            MAX_OFFSET
        },
    };
    if !out.pagination && out.page != 1 {
        return Err(bad(
            "page needs pagination: without it there is only the first page.",
        ));
    }
    if out.offset() > out.max_offset as i64 {
        return Err(bad(format!(
            "page: a page may start at most {} documents in{}; narrow the query \
             (filter on createdAt, or sort) instead of paging that deep.",
            out.max_offset,
            if who.is_anonymous() {
                " without credentials"
            } else {
                ""
            }
        )));
    }
    if !sorted.root.is_empty() {
        let mut b = Builder {
            coll,
            staff,
            count: 0,
            near: None,
        };
        out.filter = b.filter(sorted.root, 0)?;
        out.near = b.near;
    }
    Ok(out)
}

/// Parses a raw query string for a list of `coll`, as `who` sees it, with
/// the route's own parameters `P`.
pub fn parse<P: Params>(
    query: &str,
    coll: &Collection,
    who: &Principal,
) -> Result<(ListQuery, P), ApiError> {
    let sorted = sort_out(query, coll, ListParams::names(), P::names(), None)?;
    let std: ListParams = from_pairs(&sorted.standard)?;
    let own: P = from_pairs(&sorted.own)?;
    Ok((list_query(sorted, std, coll, who)?, own))
}

/// The parameters of a route that takes exactly `T` (no `where`, no
/// paging): each pair must be one `T` names.
pub fn parse_params<T: Params>(query: &str) -> Result<T, ApiError> {
    let mut pairs = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k.chars().any(char::is_control) || v.chars().any(char::is_control) {
            return Err(bad(format!(
                "Query parameter '{}' holds a control character.",
                shown(&k)
            )));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(bad(format!("Query parameter '{}' is too long.", shown(&k))));
        }
        if !T::names().iter().any(|n| *n == k) {
            return Err(bad(format!("Unknown query parameter '{}'.", shown(&k))));
        }
        pairs.push((k, v));
    }
    from_pairs(&pairs)
}

/// Payload's `GET /api/{collection}/count`: `where` (and the collection's
/// own filters) only; the count stops where a list's would (10,000, or
/// 1,000 without credentials) and says so. The query runs as a list with no
/// page (`limit` 0), so it is scoped and audited as one.
pub fn parse_count<P: Params>(
    query: &str,
    coll: &Collection,
    who: &Principal,
) -> Result<(ListQuery, P), ApiError> {
    let only = "count takes where and the collection's filters only";
    let sorted = sort_out(query, coll, CountParams::names(), P::names(), Some(only))?;
    let _: CountParams = from_pairs(&sorted.standard)?;
    let own: P = from_pairs(&sorted.own)?;
    let mut q = list_query(sorted, ListParams::default(), coll, who)?;
    q.limit = 0;
    Ok((q, own))
}

/// Payload's bulk `PATCH`/`DELETE /api/{collection}?where=..`: a filter is
/// required (a bulk change of everything is refused), paging parameters
/// are not taken; the listing asks for one more than the bulk maximum so
/// that too many matches are refused, not cut.
pub fn parse_bulk<P: Params>(
    query: &str,
    coll: &Collection,
    who: &Principal,
    max: usize,
) -> Result<(ListQuery, P), ApiError> {
    let only = "a bulk change takes where and the collection's filters only";
    let sorted = sort_out(query, coll, BulkParams::names(), P::names(), Some(only))?;
    let _: BulkParams = from_pairs(&sorted.standard)?;
    let narrowed = !sorted.root.is_empty() || !sorted.own.is_empty();
    let own: P = from_pairs(&sorted.own)?;
    if !narrowed {
        return Err(bad(
            "a bulk change needs where (a change of every document is not taken).",
        ));
    }
    let mut q = list_query(sorted, ListParams::default(), coll, who)?;
    q.limit = max as u32 + 1;
    q.pagination = false;
    Ok((q, own))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use crate::schema::PRACTITIONERS;

    fn anon() -> Principal {
        Principal::anonymous()
    }

    fn staff() -> Principal {
        Principal::user("users", "ed", &[Role::Editor])
    }

    fn q(s: &str) -> Result<ListQuery, ApiError> {
        parse::<NoParams>(s, &PRACTITIONERS, &staff()).map(|(q, _)| q)
    }

    #[test]
    fn where_becomes_typed_conditions() {
        let lq = q("where[name][equals]=Ann&where[status][in]=draft,published").unwrap();
        let Some(Filter::And(parts)) = lq.filter else {
            panic!()
        };
        assert_eq!(parts.len(), 2);
        assert!(
            matches!(&parts[0], Filter::Cond(Cond { op: Op::Equals, value: CondValue::Text(t), .. }) if t == "Ann")
        );
        assert!(
            matches!(&parts[1], Filter::Cond(Cond { value: CondValue::Texts(t), .. }) if t.len() == 2)
        );
        let lq = q("where[or][0][status][equals]=draft&where[or][1][name][like]=a%20b").unwrap();
        assert!(matches!(lq.filter, Some(Filter::Or(ref p)) if p.len() == 2));
        assert_eq!(lq.field_names(), vec!["name", "status"]);
    }

    #[test]
    fn unknown_hidden_and_bad_values_are_named_never_quoted() {
        let msg = |s: &str, who: &Principal| {
            parse::<NoParams>(s, &PRACTITIONERS, who)
                .unwrap_err()
                .to_string()
        };
        assert!(msg("where[secret][equals]=1", &staff()).contains("cannot be queried: secret"));
        assert!(msg("where[name][regex]=1", &staff()).contains("'regex'"));
        assert!(
            msg("where[email][like]=a", &staff())
                .contains("'like' is not supported for field 'email'")
        );
        assert!(msg("where[status][equals]=gone", &staff()).contains("one of draft, published"));
        assert!(msg("where[createdAt][equals]=yesterday", &staff()).contains("not a date"));
        // Staff-only fields do not exist for anyone else.
        assert!(
            msg("where[userId][equals]=users:1", &anon()).contains("cannot be queried: userId")
        );
        assert!(msg("where[email][equals]=a@b.c", &anon()).contains("cannot be queried: email"));
        assert!(parse::<NoParams>("where[email][equals]=a@b.c", &PRACTITIONERS, &staff()).is_ok());
        let e = msg(
            "where[email][equals]=ann@example.org&where[email][like]=x",
            &staff(),
        );
        assert!(!e.contains("ann@example.org"), "{e}");
    }

    #[test]
    fn one_rule_for_repeats_and_control_characters() {
        assert!(
            q("limit=1&limit=100")
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        assert!(
            q("where[name][equals]=a&where[name][equals]=b")
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
        assert!(
            q("where[name][equals]=a%00b")
                .unwrap_err()
                .to_string()
                .contains("control character")
        );
        assert!(
            q("sort=name%0A")
                .unwrap_err()
                .to_string()
                .contains("control character")
        );
        // A route's own parameters: repeatable where its struct says so.
        #[derive(Debug, serde::Deserialize, utoipa::IntoParams, validator::Validate)]
        #[into_params(parameter_in = Query)]
        struct Own {
            #[serde(default)]
            taste: Vec<String>,
            q: Option<String>,
        }
        crate::query::params::params!(Own);
        let (_, own) = parse::<Own>("taste=bitter&taste=sweet", &PRACTITIONERS, &anon()).unwrap();
        assert_eq!((own.taste.len(), own.q), (2, None));
        let e = parse::<Own>("q=a&q=b", &PRACTITIONERS, &anon()).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn limits_pages_offsets_and_depth_are_bounded() {
        assert!(q("limit=100000").is_err());
        assert!(q("limit=0").is_err());
        assert_eq!(q("limit=100&page=3").unwrap().offset(), 200);
        assert!(q("page=0").is_err());
        assert!(
            q("limit=100&page=102")
                .unwrap_err()
                .to_string()
                .contains("narrow the query")
        );
        assert!(q("bogus=1").is_err());
        assert_eq!(q("depth=0").unwrap().depth, 0);
        assert!(q("depth=11").is_err());
        assert!(q("draft=false&locale=en&trash=false").is_ok());
        assert!(
            q("draft=true")
                .unwrap_err()
                .to_string()
                .contains("no drafts")
        );
        assert!(q("populate[x]=true").is_err());
        let deep = "where[or][0][and][0][or][0][and][0][name][equals]=x";
        assert!(q(deep).unwrap_err().to_string().contains("nesting"));
        assert!(q("where[or][0][and][0][or][0][name][equals]=x").is_ok());
    }

    #[test]
    fn sort_takes_several_fields() {
        let lq = q("sort=-createdAt,name").unwrap();
        assert_eq!(
            lq.sort
                .iter()
                .map(|s| (s.field.name, s.desc))
                .collect::<Vec<_>>(),
            vec![("createdAt", true), ("name", false)]
        );
        assert!(q("sort=name,-name").is_err());
        assert!(q("sort=modalities").is_err());
        assert!(parse::<NoParams>("sort=userId", &PRACTITIONERS, &anon()).is_err());
    }

    #[test]
    fn near_is_taken_out_in_payloads_order() {
        let lq = q("where[location][near]=-0.12,51.5,25000&where[name][equals]=a").unwrap();
        let near = lq.near.unwrap();
        assert_eq!(
            (near.lon, near.lat, near.max_m, near.min_m),
            (-0.12, 51.5, 25000.0, 0.0)
        );
        assert!(matches!(lq.filter, Some(Filter::Cond(_))));
        assert!(q("where[location][near]=200,51,10").is_err());
        assert!(
            q("where[location][near]=0,51,20037509")
                .unwrap_err()
                .to_string()
                .contains("max")
        );
        assert!(q("where[or][0][location][near]=0,51,10").is_err());
    }
}
