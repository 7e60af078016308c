//! Herbs: reference data with Traditional Chinese Medicine properties.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::double_option;
use super::practitioner::Status;
use super::rules::{err, plain_text, slug as valid_slug};

pub const TABLE: &str = "herbs";

/// A fixed vocabulary: the enum, its wire spelling, and its OpenAPI
/// schema written from that spelling (the derive read the variants' Rust
/// names through the macro, and the document said `Liver` where the API
/// takes `liver`).
macro_rules! vocabulary {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const ALL: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($text => Some($name::$variant),)+ _ => None } }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc.trim()),*];
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description((!doc.is_empty()).then(|| doc.join(" ")))
                    .enum_values(Some($name::ALL.iter().copied()))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

vocabulary!(Taste {
    Sour = "sour", Bitter = "bitter", Sweet = "sweet", Pungent = "pungent",
    Salty = "salty", Bland = "bland", Astringent = "astringent",
});

vocabulary!(Temperature {
    Cold = "cold", Cool = "cool", Neutral = "neutral", Warm = "warm", Hot = "hot",
});

vocabulary!(
    /// The twelve primary meridians.
    Meridian {
        Lung = "lung", LargeIntestine = "large intestine", Stomach = "stomach",
        Spleen = "spleen", Heart = "heart", SmallIntestine = "small intestine",
        Bladder = "bladder", Kidney = "kidney", Pericardium = "pericardium",
        TripleBurner = "triple burner", Gallbladder = "gallbladder", Liver = "liver",
    }
);

fn valid_actions(v: &[String]) -> Result<(), ValidationError> {
    if v.len() > 30
        || v.iter()
            .any(|a| a.trim().is_empty() || a.chars().count() > 100)
    {
        return Err(err("length", "at most 30 actions of 1 to 100 characters"));
    }
    Ok(())
}

/// Stored as `tcm_properties` jsonb; the GIN `jsonb_path_ops` index serves
/// containment (`@>`) filters on it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TcmProperties {
    #[serde(default)]
    pub taste: Vec<Taste>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
    #[serde(default)]
    pub meridians: Vec<Meridian>,
    #[serde(default)]
    #[validate(custom(function = "valid_actions"))]
    pub actions: Vec<String>,
}

impl TcmProperties {
    /// Sorted and without duplicates, so equal properties store equally.
    pub fn normalised(mut self) -> Self {
        self.taste.sort();
        self.taste.dedup();
        self.meridians.sort();
        self.meridians.dedup();
        for a in &mut self.actions {
            *a = a.trim().to_lowercase();
        }
        self.actions.sort();
        self.actions.dedup();
        self
    }
}

#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HerbFields {
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(length(min = 1, max = 200), custom(function = "plain_text"))]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(custom(function = "valid_slug"))]
    #[schema(min_length = 1, max_length = 100, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub scientific_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(max = 20000))]
    #[schema(max_length = 20000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(nested)]
    pub tcm_properties: Option<TcmProperties>,
}

impl super::Named for HerbFields {
    /// Which fields a body names, in the API's spelling. Destructured
    /// whole: a new field does not build until it is named here.
    fn named(&self) -> Vec<&'static str> {
        let Self {
            name,
            slug,
            scientific_name,
            description,
            status,
            tcm_properties,
        } = self;
        super::names(&[
            ("name", name.is_some()),
            ("slug", slug.is_some()),
            ("scientificName", scientific_name.is_some()),
            ("description", description.is_some()),
            ("status", status.is_some()),
            ("tcmProperties", tcm_properties.is_some()),
        ])
    }
}

/// A new herb: what POST must carry, checked.
#[derive(Debug)]
pub struct NewHerb {
    pub name: String,
    pub slug: String,
    pub scientific_name: Option<String>,
    pub description: Option<String>,
    pub status: Status,
    pub tcm_properties: TcmProperties,
}

impl TryFrom<HerbFields> for NewHerb {
    type Error = crate::error::ApiError;
    fn try_from(f: HerbFields) -> Result<Self, Self::Error> {
        let mut missing = vec![];
        if f.name.is_none() {
            missing.push("name");
        }
        if f.slug.is_none() {
            missing.push("slug");
        }
        let (Some(name), Some(slug)) = (f.name, f.slug) else {
            return Err(crate::error::ApiError::required(&missing));
        };
        Ok(Self {
            name: name.trim().to_string(),
            slug,
            scientific_name: f.scientific_name.flatten(),
            description: f.description.flatten(),
            status: f.status.unwrap_or_default(),
            tcm_properties: f.tcm_properties.unwrap_or_default().normalised(),
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HerbDoc {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub scientific_name: Option<String>,
    pub description: Option<String>,
    pub status: Status,
    pub tcm_properties: TcmProperties,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
