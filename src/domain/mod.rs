//! Domain types: what the API accepts and returns, parsed once at the edge.
//!
//! Bodies are parsed strictly (`json`: one object, no duplicate keys, no
//! control characters), deserialized with the failing field's path, then
//! checked with `validator`. Every problem becomes a `FieldError` with its
//! path. Messages never quote the value: it may be PHI. PHI strings are
//! `SecretText`, wiped when dropped.

pub mod consent;
pub mod geo;
pub mod herb;
pub mod iso3166;
pub mod json;
pub mod practitioner;
pub mod region;
pub mod secret;
pub mod submission;
pub mod time;

use serde::{Deserialize, Deserializer};
use validator::{ValidationErrors, ValidationErrorsKind};

use crate::error::FieldError;

pub use secret::SecretText;

/// A request body that can say which fields it names (for a refusal's
/// audit entry, and to tell an empty change from a real one).
pub trait Named {
    /// The API names of the fields the body holds, in declaration order.
    fn named(&self) -> Vec<&'static str>;
}

/// The names whose flag is set.
fn names(present: &[(&'static str, bool)]) -> Vec<&'static str> {
    present
        .iter()
        .filter(|(_, here)| *here)
        .map(|(n, _)| *n)
        .collect()
}

fn join(parent: &str, child: &str) -> String {
    if parent == child || parent.ends_with(&format!(".{child}")) {
        // serde_path_to_error already names an unknown field in its path.
        parent.to_string()
    } else if parent.is_empty() || parent == "." {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// Turns serde's message into one that names the problem but not the value.
pub(crate) fn describe_serde_error(path: &str, message: &str) -> FieldError {
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_string);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = quoted(rest).unwrap_or_default();
        return FieldError::new(join(path, &field), "is not a known field");
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = quoted(rest).unwrap_or_default();
        return FieldError::new(join(path, &field), "is required");
    }
    let path = if path.is_empty() || path == "." {
        "body"
    } else {
        path
    };
    // "invalid type: string \"...\", expected f64": keep what was expected.
    let expected = message
        .rsplit_once("expected ")
        .map(|(_, e)| e.split(" at line").next().unwrap_or(e).to_string());
    match expected {
        Some(e) => FieldError::new(path, format!("invalid value: expected {e}")),
        None => FieldError::new(path, "invalid value"),
    }
}

/// validator's nested errors, as a flat list of paths.
pub fn flatten(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    walk(errors, "", &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn walk(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = join(prefix, &camel(field));
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| default_message(&e.code));
                    out.push(FieldError::new(path.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => walk(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    walk(inner, &format!("{path}[{i}]"), out);
                }
            }
        }
    }
}

fn default_message(code: &str) -> String {
    match code {
        "length" => "has the wrong length".into(),
        "range" => "is out of range".into(),
        "email" => "is not a valid email address".into(),
        "url" => "is not a valid URL".into(),
        other => format!("is invalid ({other})"),
    }
}

/// For PATCH: absent = leave alone, `null` = clear, value = set.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// For a field that may be left out of a PATCH but never cleared: absent is
/// `None`, `null` is an error (Payload: "This field is required.").
pub fn non_null<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(de)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "is required: it may be left out of a change, not set to null",
        )),
    }
}

/// Validation helpers shared by the collections.
pub mod rules {
    use validator::ValidationError;

    pub fn err(code: &'static str, message: &'static str) -> ValidationError {
        let mut e = ValidationError::new(code);
        e.message = Some(message.into());
        e
    }

    /// Lowercase letters, digits and single hyphens.
    pub fn slug(s: &str) -> Result<(), ValidationError> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--");
        ok.then_some(()).ok_or_else(|| {
            err(
                "slug",
                "must be lowercase letters, digits and single hyphens",
            )
        })
    }

    /// `plain_text` for a PHI string.
    pub fn plain_secret(s: &super::SecretText) -> Result<(), ValidationError> {
        plain_text(s.as_str())
    }

    /// A namespaced CMS user id, `collection:id` (`users:5`).
    pub fn user_ref(s: &str) -> Result<(), ValidationError> {
        let ok = s.split_once(':').is_some_and(|(c, id)| {
            !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
                && !id.is_empty()
                && id.len() <= 255
                && id.chars().all(|ch| !ch.is_control() && !ch.is_whitespace())
        });
        ok.then_some(()).ok_or_else(|| {
            err(
                "user",
                "must be a CMS user id qualified by its collection, e.g. users:5",
            )
        })
    }

    /// Text that is not blank and has no control characters.
    pub fn plain_text(s: &str) -> Result<(), ValidationError> {
        if s.trim().is_empty() {
            return Err(err("blank", "must not be blank"));
        }
        if s.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
        {
            return Err(err("control", "must not contain control characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        let e = describe_serde_error(
            "dateOfBirth",
            "invalid type: string \"1961-02-30 secret\", expected a date at line 1 column 9",
        );
        assert_eq!(e.path, "dateOfBirth");
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert_eq!(e.message, "invalid value: expected a date");
        let e = describe_serde_error("location", "unknown field `alt`, expected `lat` or `lon`");
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("location.alt", "is not a known field")
        );
        let e = describe_serde_error(
            "location.alt",
            "unknown field `alt`, expected `lat` or `lon`",
        );
        assert_eq!(e.path, "location.alt");
        let e = describe_serde_error(".", "missing field `name`");
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("name", "is required")
        );
    }
}
