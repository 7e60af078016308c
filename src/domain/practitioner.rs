//! Practitioners: a public directory entry with sealed contact fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::double_option;
use super::geo::Location;
use super::rules::{err, plain_text, slug as valid_slug};

pub const TABLE: &str = "practitioners";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Draft,
    Published,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
        }
    }
    pub fn from_db(s: &str) -> Self {
        if s == "published" {
            Status::Published
        } else {
            Status::Draft
        }
    }
}

fn valid_modalities(v: &[String]) -> Result<(), ValidationError> {
    if v.len() > 20 {
        return Err(err("length", "at most 20 modalities"));
    }
    if v.iter()
        .any(|m| m.trim().is_empty() || m.chars().count() > 64)
    {
        return Err(err("length", "each modality is 1 to 64 characters"));
    }
    Ok(())
}

fn valid_phone(s: &str) -> Result<(), ValidationError> {
    let ok = (5..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    ok.then_some(()).ok_or_else(|| {
        err(
            "phone",
            "must be a phone number (digits, spaces, + - ( ) .)",
        )
    })
}

/// A practitioner's fields as sent by POST (all required ones present) or
/// PATCH (any subset; `null` clears an optional field).
#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PractitionerFields {
    #[validate(length(min = 1, max = 200), custom(function = "plain_text"))]
    pub name: Option<String>,
    #[validate(custom(function = "valid_slug"))]
    pub slug: Option<String>,
    #[validate(custom(function = "valid_modalities"))]
    pub modalities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = 5000))]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    pub country: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 20))]
    pub postal_code: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(url, length(max = 500))]
    pub website: Option<Option<String>>,
    pub status: Option<Status>,
    #[validate(nested)]
    pub location: Option<Location>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(email, length(max = 254))]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "valid_phone"))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 64), custom(function = "plain_text"))]
    pub licence_number: Option<Option<String>>,
    /// The CMS user who is this practitioner (editors and admins set it).
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 255))]
    pub user_id: Option<Option<String>>,
}

impl PractitionerFields {
    /// POST needs these.
    pub fn missing_for_create(&self) -> Vec<&'static str> {
        let mut v = vec![];
        if self.name.is_none() {
            v.push("name");
        }
        if self.slug.is_none() {
            v.push("slug");
        }
        if self.location.is_none() {
            v.push("location");
        }
        v
    }
}

/// The sealed contact fields, opened (only for callers allowed to see them).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub licence_number: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerDoc {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub modalities: Vec<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub website: Option<String>,
    pub status: Status,
    pub location: Location,
    /// Present for staff and the practitioner themself.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub contact: Option<Contact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Present in proximity results: meters from the query point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
