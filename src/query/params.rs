//! The query parameters each route takes, one struct per shape: parsed by
//! serde (from the pairs `query` sorts out of the query string), checked
//! by validator, documented by `IntoParams`, and handed to the service as
//! the typed value. Nothing describes a parameter a second time.
//!
//! `where` and `select` are deep objects (`where[name][equals]=x`) that
//! `query` parses itself into a `Filter` and a `Selection`; in these structs
//! they are `Deep` fields, which document them and refuse the flat form.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;
use validator::Validate;

use crate::error::{ApiError, FieldError};

/// A route's parameters: a struct that deserializes from the query string's
/// pairs, validates, and documents itself. `spec` is read from its
/// document once (`params!` implements it).
pub trait Params: DeserializeOwned + IntoParams + Validate {
    fn spec() -> &'static Spec;
    fn names() -> &'static [String] {
        &Self::spec().names
    }
}

/// What a parameter struct's document says of its parameters.
#[derive(Debug)]
pub struct Spec {
    pub names: Vec<String>,
    /// Those that take free text, where an empty value means something (an
    /// empty `sort` is the default order). Any other given empty is refused:
    /// `depth=` is not `depth` left out.
    pub text: Vec<String>,
}

/// `T`'s parameters as its `IntoParams` document describes them.
pub fn spec_of<T: IntoParams>() -> Spec {
    let mut spec = Spec {
        names: Vec::new(),
        text: Vec::new(),
    };
    for p in T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query)) {
        let schema = serde_json::to_value(&p.schema).unwrap_or_default();
        let item = if schema["type"] == "array" {
            &schema["items"]
        } else {
            &schema
        };
        if item["type"] == "string" && item.get("enum").is_none() {
            spec.text.push(p.name.clone());
        }
        spec.names.push(p.name);
    }
    spec
}

/// Implements `Params` for parameter structs (their spec cached).
macro_rules! params {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::query::params::Params for $t {
            fn spec() -> &'static $crate::query::params::Spec {
                static SPEC: std::sync::OnceLock<$crate::query::params::Spec> =
                    std::sync::OnceLock::new();
                SPEC.get_or_init($crate::query::params::spec_of::<$t>)
            }
        }
    )+};
}
pub(crate) use params;

/// A deep-object parameter (`where`, `select`), parsed by `query`; given
/// flat (`where=x`), it is refused with the form it takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deep;

impl<'de> Deserialize<'de> for Deep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _ = Cow::<str>::deserialize(d)?;
        Err(serde::de::Error::custom(
            "must be given as a deep object: where[field][operator]=value, select[field]=true",
        ))
    }
}

/// Payload's list parameters.
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    #[validate(range(min = 1, max = 100, message = "must be from 1 to 100"))]
    pub limit: Option<u32>,
    /// Page number from 1; a page may start at most 10,000 documents in
    /// (1,000 without credentials).
    #[param(minimum = 1)]
    #[validate(range(min = 1, message = "must be 1 or more"))]
    pub page: Option<u32>,
    /// `false`: the first `limit` documents without counting all matches
    /// (`totalDocs` is then the page's size). Faster on large result sets.
    pub pagination: Option<bool>,
    /// A declared sortable field; `-field` for descending; several,
    /// comma-separated. Empty: the default order.
    pub sort: Option<String>,
    /// `where[field][operator]=value`; nested `where[or][0]..` and
    /// `where[and][0]..`. Operators: equals, not_equals, in, not_in, like,
    /// contains, exists, greater_than(_equal), less_than(_equal), near.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    pub r#where: Option<Deep>,
    /// Payload 3's field selection: `select[field]=true` shows only those
    /// fields (and `id`), `select[field]=false` hides them; not both kinds
    /// in one request. Only selected sealed fields are decrypted.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    pub select: Option<Deep>,
    /// 0 (default) leaves relationships as ids; 1 to 10 (Payload's
    /// `maxDepth`) populates a submission's `practitionerId` with the
    /// practitioner's document, as the caller may see it.
    #[param(minimum = 0, maximum = 10)]
    #[validate(range(max = 10, message = "must be from 0 to 10"))]
    pub depth: Option<u8>,
}

/// Payload's count parameters: the filter only (and the collection's own).
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CountParams {
    /// As for the list: `where[field][operator]=value`, nested `or`/`and`.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    pub r#where: Option<Deep>,
}

/// A bulk change's parameters: a filter (`where`, or the collection's own
/// filters) is required: a change of every document is not taken.
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BulkParams {
    /// As for the list: `where[field][operator]=value`, nested `or`/`and`.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    pub r#where: Option<Deep>,
}

/// A document's parameters (by id: GET, PATCH, DELETE; and POST's answer).
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemParams {
    /// As for lists: `select[field]=true|false`.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    pub select: Option<Deep>,
    /// On GET: 0 (default) to 10 populates `practitionerId`. A write's
    /// answer is not populated: 0 only.
    #[param(minimum = 0, maximum = 10)]
    #[validate(range(max = 10, message = "must be from 0 to 10"))]
    pub depth: Option<u8>,
}

/// A collection with no parameters of its own.
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

params!(ListParams, CountParams, BulkParams, ItemParams, NoParams);

/// Deserializes `pairs` (each a name `T` takes) into `T`, then validates it.
/// Errors name the parameter, never its value: a value given twice where
/// one is taken, a value of the wrong form, a rule broken.
pub fn from_pairs<T: Params>(pairs: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<T, ApiError> {
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, v)| v.is_empty() && !T::spec().text.iter().any(|t| t == k))
    {
        return Err(ApiError::invalid(
            k.as_ref(),
            "is empty: give a value, or leave it out",
        ));
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .finish();
    let de = serde_html_form::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    let t: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let name = path
            .split(['[', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        let given = pairs.iter().filter(|(k, _)| *k == name).count();
        if given > 1 && !path.contains('[') {
            return ApiError::bad_request(format!(
                "Query parameter '{name}' is given more than once."
            ));
        }
        let message = e.inner().to_string();
        let error = if message.starts_with("must ") {
            FieldError::new(name, message)
        } else {
            crate::domain::describe_serde_error(&name, &message)
        };
        ApiError::Validation(vec![error])
    })?;
    t.validate()
        .map_err(|e| ApiError::Validation(crate::domain::flatten(&e)))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(s.as_bytes()).collect()
    }

    #[test]
    fn the_names_are_the_documents() {
        assert_eq!(
            ListParams::names(),
            [
                "limit",
                "page",
                "pagination",
                "sort",
                "where",
                "select",
                "depth"
            ]
        );
        assert!(NoParams::names().is_empty());
        assert_eq!(ListParams::spec().text, ["sort"]);
    }

    #[test]
    fn errors_name_the_parameter_never_the_value() {
        let err = |s: &str| format!("{:?}", from_pairs::<ListParams>(&pairs(s)).unwrap_err());
        assert!(err("limit=1&limit=2").contains("more than once"));
        let e = err("limit=500");
        assert!(e.contains("limit"), "{e}");
        let e = err("limit=secret-value");
        assert!(e.contains("limit") && !e.contains("secret-value"), "{e}");
        assert!(err("where=x").contains("where"));
        assert!(err("depth=").contains("is empty"));
        assert!(from_pairs::<ListParams>(&pairs("sort=")).is_ok());
        let ok: ListParams = from_pairs(&pairs("limit=5&pagination=false")).unwrap();
        assert_eq!((ok.limit, ok.pagination), (Some(5), Some(false)));
    }
}
