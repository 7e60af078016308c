//! A checked Payload filter (`query::Filter`) and sort, compiled to SQL.
//! Every value is bound; the only text put into SQL comes from the
//! collection's description (`schema`).

use sqlx::{Postgres, QueryBuilder};

use super::error::{Result, StoreError};
use crate::query::{Cond, CondValue, Filter, Op, Sort};
use crate::schema::FieldKind;

/// ` AND (<filter>)` when there is one.
pub fn push_where(qb: &mut QueryBuilder<'_, Postgres>, filter: Option<&Filter>) -> Result<()> {
    if let Some(f) = filter {
        qb.push(" AND ");
        push_filter(qb, f)?;
    }
    Ok(())
}

pub fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, filter: &Filter) -> Result<()> {
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
                push_filter(qb, p)?;
            }
            qb.push(")");
        }
        Filter::Cond(c) => push_cond(qb, c)?,
    }
    Ok(())
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

fn unresolved() -> StoreError {
    StoreError::Other(sqlx::Error::Protocol(
        "a blind-index condition reached the store unresolved".into(),
    ))
}

/// A condition the parser should not have let through (an operator with a
/// value of another shape): an error, never SQL for some other operator.
fn mismatched(c: &Cond) -> StoreError {
    StoreError::Other(sqlx::Error::Protocol(format!(
        "operator {} reached the store with a value it does not take (field {})",
        c.op.name(),
        c.field.name
    )))
}

/// One condition. Matched on the operator first, with no arm for "any
/// other operator": a new `Op` does not build until it is compiled here,
/// and a value of the wrong shape is an error, never another operator.
fn push_cond(qb: &mut QueryBuilder<'_, Postgres>, c: &Cond) -> Result<()> {
    let col = c.field.column;
    let array = c.field.kind == FieldKind::TextArray;
    if let CondValue::Blind(_) = c.value {
        return Err(unresolved());
    }
    match c.op {
        Op::Exists => {
            let CondValue::Exists(yes) = c.value else {
                return Err(mismatched(c));
            };
            qb.push(match (array, yes) {
                (true, true) => format!("cardinality({col}) > 0"),
                (true, false) => format!("cardinality({col}) = 0"),
                (false, true) => format!("{col} IS NOT NULL"),
                (false, false) => format!("{col} IS NULL"),
            });
        }
        Op::Equals => match &c.value {
            CondValue::Text(v) if array => {
                qb.push_bind(v.clone()).push(format!(" = ANY({col})"));
            }
            CondValue::Text(v) => {
                qb.push(format!("{col} = ")).push_bind(v.clone());
            }
            CondValue::Uuid(u) => {
                qb.push(format!("{col} = ")).push_bind(*u);
            }
            CondValue::Time(t) => {
                qb.push(format!("{col} = ")).push_bind(*t);
            }
            CondValue::Hashes(h) => {
                qb.push(format!("{col} = ANY("))
                    .push_bind(h.clone())
                    .push(")");
            }
            _ => return Err(mismatched(c)),
        },
        Op::NotEquals => match &c.value {
            CondValue::Text(v) if array => {
                qb.push("NOT (")
                    .push_bind(v.clone())
                    .push(format!(" = ANY({col}))"));
            }
            CondValue::Text(v) => {
                qb.push(format!("{col} IS DISTINCT FROM "))
                    .push_bind(v.clone());
            }
            CondValue::Uuid(u) => {
                qb.push(format!("{col} IS DISTINCT FROM ")).push_bind(*u);
            }
            CondValue::Time(t) => {
                qb.push(format!("{col} IS DISTINCT FROM ")).push_bind(*t);
            }
            _ => return Err(mismatched(c)),
        },
        Op::In => match &c.value {
            CondValue::Texts(v) if array => {
                qb.push(format!("{col} && ")).push_bind(v.clone());
            }
            CondValue::Texts(v) => {
                qb.push(format!("{col} = ANY("))
                    .push_bind(v.clone())
                    .push(")");
            }
            CondValue::Uuids(list) => {
                qb.push(format!("({col} = ANY("))
                    .push_bind(list.clone())
                    .push("))");
            }
            CondValue::Hashes(h) => {
                qb.push(format!("{col} = ANY("))
                    .push_bind(h.clone())
                    .push(")");
            }
            _ => return Err(mismatched(c)),
        },
        Op::NotIn => match &c.value {
            CondValue::Texts(v) if array => {
                qb.push(format!("NOT ({col} && "))
                    .push_bind(v.clone())
                    .push(")");
            }
            CondValue::Texts(v) => {
                qb.push(format!("NOT ({col} = ANY("))
                    .push_bind(v.clone())
                    .push(format!(")) AND {col} IS NOT NULL"));
            }
            CondValue::Uuids(list) => {
                qb.push(format!("NOT ({col} = ANY("))
                    .push_bind(list.clone())
                    .push("))");
            }
            _ => return Err(mismatched(c)),
        },
        Op::Contains => match &c.value {
            CondValue::Text(v) if array => {
                qb.push_bind(v.clone()).push(format!(" = ANY({col})"));
            }
            CondValue::Text(v) => {
                qb.push(format!("{col} ILIKE "))
                    .push_bind(format!("%{}%", like_escape(v)));
            }
            _ => return Err(mismatched(c)),
        },
        // Payload's like: every word appears, case-insensitively.
        Op::Like => {
            let CondValue::Words(words) = &c.value else {
                return Err(mismatched(c));
            };
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
        Op::GreaterThan | Op::GreaterThanEqual | Op::LessThan | Op::LessThanEqual => {
            let sign = match c.op {
                Op::GreaterThan => ">",
                Op::GreaterThanEqual => ">=",
                Op::LessThan => "<",
                Op::LessThanEqual => "<=",
                Op::Equals
                | Op::NotEquals
                | Op::In
                | Op::NotIn
                | Op::Like
                | Op::Contains
                | Op::Exists
                | Op::Near => return Err(mismatched(c)),
            };
            let CondValue::Time(t) = c.value else {
                return Err(mismatched(c));
            };
            qb.push(format!("{col} {sign} ")).push_bind(t);
        }
        // `near` is taken out of the filter by the parser (the collection
        // compiles it): never a condition here.
        Op::Near => return Err(mismatched(c)),
    }
    Ok(())
}

/// ` ORDER BY` the requested fields (else the default), then `id` so
/// pages do not overlap.
pub fn order_by(sort: &[Sort], default: &[(&str, bool)]) -> String {
    let dir = |desc: bool| if desc { "DESC" } else { "ASC" };
    let mut parts: Vec<String> = if sort.is_empty() {
        default
            .iter()
            .map(|(c, desc)| format!("{c} {}", dir(*desc)))
            .collect()
    } else {
        sort.iter()
            .map(|s| format!("{} {} NULLS LAST", s.field.column, dir(s.desc)))
            .collect()
    };
    let last_desc = sort
        .last()
        .map(|s| s.desc)
        .or(default.last().map(|d| d.1))
        .unwrap_or(false);
    parts.push(format!("id {}", dir(last_desc)));
    format!(" ORDER BY {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Principal, Role};
    use crate::query::{NoParams, parse};
    use crate::schema::PRACTITIONERS;

    fn sql(q: &str) -> String {
        let who = Principal::user("users", "ed", &[Role::Editor]);
        let mut lq = parse::<NoParams>(q, &PRACTITIONERS, &who).unwrap().0;
        if let Some(f) = lq.filter.as_mut() {
            f.resolve_blind(&|_, _, _| vec![vec![1u8]]);
        }
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_filter(&mut qb, lq.filter.as_ref().unwrap()).unwrap();
        qb.sql().to_string()
    }

    #[test]
    fn filters_become_bound_sql() {
        assert_eq!(sql("where[name][equals]=Ann"), "name = $1");
        assert_eq!(
            sql("where[or][0][status][equals]=draft&where[or][1][name][like]=a%20b"),
            "(status = $1 OR name ILIKE $2 AND name ILIKE $3)"
        );
        assert_eq!(
            sql("where[createdAt][greater_than]=2026-01-01&where[status][in]=draft,published"),
            "(created_at > $1 AND status = ANY($2))"
        );
        assert_eq!(sql("where[email][equals]=a@b.c"), "email_bidx = ANY($1)");
        assert_eq!(sql("where[name][exists]=false"), "name IS NULL");
        assert_eq!(
            sql("where[modalities][contains]=reiki"),
            "$1 = ANY(modalities)"
        );
    }

    #[test]
    fn values_never_reach_the_sql_text() {
        let s = sql("where[name][equals]=x'%3B%20DROP%20TABLE%20herbs%3B--");
        assert!(!s.contains("DROP"), "{s}");
    }

    #[test]
    fn unresolved_blind_values_never_reach_sql() {
        let who = Principal::user("users", "ed", &[Role::Editor]);
        let lq = parse::<NoParams>("where[email][equals]=a@b.c", &PRACTITIONERS, &who)
            .unwrap()
            .0;
        let mut qb = QueryBuilder::<Postgres>::new("");
        assert!(push_filter(&mut qb, lq.filter.as_ref().unwrap()).is_err());
    }

    /// Every operator the parser takes, on every field of every collection
    /// it takes it for, compiles here; and every operator is taken for some
    /// field (a new one that only half exists fails).
    #[test]
    fn every_operator_the_parser_takes_compiles() {
        use crate::query::Op;
        use crate::schema::{ALL, FieldKind};
        let who = Principal::user("users", "ed", &[Role::Editor]);
        let mut taken = std::collections::BTreeSet::new();
        for coll in ALL {
            for f in coll.fields {
                let value = match f.kind {
                    FieldKind::Text | FieldKind::TextArray => "a".to_string(),
                    FieldKind::Enum(allowed) => allowed[0].to_string(),
                    FieldKind::Uuid => uuid::Uuid::nil().to_string(),
                    FieldKind::Timestamp => "2026-01-01".to_string(),
                    FieldKind::BlindIndexed { .. } => "a@b.c".to_string(),
                    FieldKind::Location => "0,0,1000".to_string(),
                };
                for op in Op::ALL {
                    let v = if *op == Op::Exists { "true" } else { &value };
                    let q = format!("where[{}][{}]={v}", f.name, op.name());
                    let Ok((mut lq, NoParams {})) = parse(&q, coll, &who) else {
                        continue;
                    };
                    taken.insert(op.name());
                    if let Some(filter) = lq.filter.as_mut() {
                        filter.resolve_blind(&|_, _, _| vec![vec![1u8]]);
                        let mut qb = QueryBuilder::<Postgres>::new("");
                        push_filter(&mut qb, filter)
                            .unwrap_or_else(|e| panic!("{q} on {}: {e}", coll.slug));
                    }
                }
            }
        }
        let all: std::collections::BTreeSet<_> = Op::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(taken, all, "operators no field takes");
    }

    #[test]
    fn order_ends_with_the_id() {
        assert_eq!(
            order_by(&[], &[("created_at", true)]),
            " ORDER BY created_at DESC, id DESC"
        );
        let who = Principal::anonymous();
        let lq = parse::<NoParams>("sort=-createdAt,name", &PRACTITIONERS, &who)
            .unwrap()
            .0;
        assert_eq!(
            order_by(&lq.sort, &[]),
            " ORDER BY created_at DESC NULLS LAST, name ASC NULLS LAST, id ASC"
        );
    }
}
