//! Practitioners: a public directory entry with sealed contact fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::double_option;
use super::geo::Location;
use super::rules::{err, plain_secret, plain_text, slug as valid_slug, user_ref};
use super::secret::SecretText;

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

fn web_address(s: &str) -> Result<(), ValidationError> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        .then_some(())
        .ok_or_else(|| err("url", "must be an http:// or https:// address"))
}

fn valid_phone(s: &SecretText) -> Result<(), ValidationError> {
    let s = s.as_str();
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
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(length(min = 1, max = 200), custom(function = "plain_text"))]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(custom(function = "valid_slug"))]
    #[schema(min_length = 1, max_length = 100, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(custom(function = "valid_modalities"))]
    #[schema(max_items = 20)]
    pub modalities: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = 5000))]
    #[schema(max_length = 5000)]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub city: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub region: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100)]
    pub country: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 20))]
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: Option<Option<String>>,
    /// An http(s) URL: a public listing links to it, so no `javascript:`
    /// or `data:` (a link that runs in the reader's browser).
    #[serde(default, deserialize_with = "double_option")]
    #[validate(url, length(max = 500), custom(function = "web_address"))]
    #[schema(max_length = 500, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub website: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(nested)]
    pub location: Option<Location>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(email, length(max = 254))]
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub email: Option<Option<SecretText>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "valid_phone"))]
    #[schema(value_type = Option<String>, min_length = 5, max_length = 32, pattern = "^[0-9 +().-]+$")]
    pub phone: Option<Option<SecretText>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 64), custom(function = "plain_secret"))]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub licence_number: Option<Option<SecretText>>,
    /// The CMS user who is this practitioner, qualified by collection
    /// (`users:5`). Only admins link or unlink; every change is audited with
    /// its old and new value.
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "user_ref"))]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}:[^\\s]{1,255}$")]
    pub user_id: Option<Option<String>>,
}

impl super::Named for PractitionerFields {
    /// Which fields a body names, in the API's spelling. Destructured
    /// whole: a new field does not build until it is named here.
    fn named(&self) -> Vec<&'static str> {
        let Self {
            name,
            slug,
            modalities,
            bio,
            city,
            region,
            country,
            postal_code,
            website,
            status,
            location,
            email,
            phone,
            licence_number,
            user_id,
        } = self;
        super::names(&[
            ("name", name.is_some()),
            ("slug", slug.is_some()),
            ("modalities", modalities.is_some()),
            ("bio", bio.is_some()),
            ("city", city.is_some()),
            ("region", region.is_some()),
            ("country", country.is_some()),
            ("postalCode", postal_code.is_some()),
            ("website", website.is_some()),
            ("status", status.is_some()),
            ("location", location.is_some()),
            ("email", email.is_some()),
            ("phone", phone.is_some()),
            ("licenceNumber", licence_number.is_some()),
            ("userId", user_id.is_some()),
        ])
    }
}

/// A new practitioner: what POST must carry, checked.
#[derive(Debug)]
pub struct NewPractitioner {
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
    pub email: Option<SecretText>,
    pub phone: Option<SecretText>,
    pub licence_number: Option<SecretText>,
    pub user_id: Option<String>,
}

impl TryFrom<PractitionerFields> for NewPractitioner {
    type Error = crate::error::ApiError;
    fn try_from(f: PractitionerFields) -> Result<Self, Self::Error> {
        let mut missing = vec![];
        if f.name.is_none() {
            missing.push("name");
        }
        if f.slug.is_none() {
            missing.push("slug");
        }
        if f.location.is_none() {
            missing.push("location");
        }
        let (Some(name), Some(slug), Some(location)) = (f.name, f.slug, f.location) else {
            return Err(crate::error::ApiError::required(&missing));
        };
        Ok(Self {
            name: name.trim().to_string(),
            slug,
            modalities: dedup(f.modalities.unwrap_or_default()),
            bio: f.bio.flatten(),
            city: f.city.flatten(),
            region: f.region.flatten(),
            country: f.country.flatten(),
            postal_code: f.postal_code.flatten(),
            website: f.website.flatten(),
            status: f.status.unwrap_or_default(),
            location,
            email: f.email.flatten(),
            phone: f.phone.flatten(),
            licence_number: f.licence_number.flatten(),
            user_id: f.user_id.flatten(),
        })
    }
}

/// Modalities keep their order, once each, trimmed.
pub fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for m in list {
        let m = m.trim().to_string();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// The sealed contact fields, opened (only for callers allowed to see them).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[schema(value_type = Option<String>)]
    pub email: Option<SecretText>,
    #[schema(value_type = Option<String>)]
    pub phone: Option<SecretText>,
    #[schema(value_type = Option<String>)]
    pub licence_number: Option<SecretText>,
}

impl Contact {
    /// The API names of the fields that hold a value.
    pub fn disclosed(&self) -> Vec<&'static str> {
        let mut v = vec![];
        if self.email.is_some() {
            v.push("email");
        }
        if self.phone.is_some() {
            v.push("phone");
        }
        if self.licence_number.is_some() {
            v.push("licenceNumber");
        }
        v
    }
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
    /// Shown to staff only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Present in proximity results: meters from the query point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
