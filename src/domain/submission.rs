//! Symptom submissions: PHI. Every identifying or clinical field is sealed.
//! The coarse, de-identified facts (age band, symptom categories) are
//! derived from sealed fields when a submission is read or written, and kept
//! for analytics apart from the owner (`submission_facts`).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::double_option;
use super::region::Region;
use super::rules::{err, plain_secret};
use super::secret::SecretText;

pub const TABLE: &str = "symptom_submissions";
pub const MAX_NOTES_CHARS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionStatus {
    #[default]
    Submitted,
    Reviewed,
    Archived,
}

impl SubmissionStatus {
    pub const ALL: &'static [&'static str] = &["submitted", "reviewed", "archived"];
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Submitted => "submitted",
            SubmissionStatus::Reviewed => "reviewed",
            SubmissionStatus::Archived => "archived",
        }
    }
    pub fn from_db(s: &str) -> Self {
        match s {
            "reviewed" => SubmissionStatus::Reviewed,
            "archived" => SubmissionStatus::Archived,
            _ => SubmissionStatus::Submitted,
        }
    }
}

fn not_future(d: &NaiveDate) -> Result<(), ValidationError> {
    let today = Utc::now().date_naive();
    if *d > today {
        return Err(err("date", "must not be in the future"));
    }
    if d.year() < 1900 {
        return Err(err("date", "must be after 1900"));
    }
    Ok(())
}

fn notes_len(s: &SecretText) -> Result<(), ValidationError> {
    (s.chars_count() <= MAX_NOTES_CHARS)
        .then_some(())
        .ok_or_else(|| err("length", "must be at most 10,000 characters"))
}

/// One symptom, as the patient reports it. Sealed as part of `symptoms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    #[validate(length(min = 1, max = 200), custom(function = "plain_secret"))]
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    pub name: SecretText,
    #[validate(range(min = 0, max = 10, message = "must be from 0 to 10"))]
    #[schema(minimum = 0, maximum = 10)]
    pub severity: u8,
    #[validate(custom(function = "not_future"))]
    pub onset: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 2000))]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub notes: Option<SecretText>,
}

/// A submission's fields as sent by POST (`symptoms` required) or PATCH
/// (any subset; `null` clears an optional field).
#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmissionFields {
    #[validate(
        length(min = 1, max = 50, message = "must list 1 to 50 symptoms"),
        nested
    )]
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[schema(min_items = 1, max_items = 50)]
    pub symptoms: Option<Vec<Symptom>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "notes_len"))]
    #[schema(value_type = Option<String>, max_length = 10000)]
    pub notes: Option<Option<SecretText>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(email, length(max = 254))]
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    pub contact_email: Option<Option<SecretText>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "not_future"))]
    pub date_of_birth: Option<Option<NaiveDate>>,
    /// An ISO 3166 country or subdivision code (sealed like the rest).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Region>)]
    pub region: Option<Option<Region>>,
    /// Owners set `submitted` or `archived`; a practitioner it is shared
    /// with sets `reviewed` (and nothing else).
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    pub status: Option<SubmissionStatus>,
    #[serde(default, deserialize_with = "double_option")]
    pub practitioner_id: Option<Option<Uuid>>,
}

impl super::Named for SubmissionFields {
    /// Which fields a body names, in the API's spelling. Destructured
    /// whole: a new field does not build until it is named here.
    fn named(&self) -> Vec<&'static str> {
        let Self {
            symptoms,
            notes,
            contact_email,
            date_of_birth,
            region,
            status,
            practitioner_id,
        } = self;
        super::names(&[
            ("symptoms", symptoms.is_some()),
            ("notes", notes.is_some()),
            ("contactEmail", contact_email.is_some()),
            ("dateOfBirth", date_of_birth.is_some()),
            ("region", region.is_some()),
            ("status", status.is_some()),
            ("practitionerId", practitioner_id.is_some()),
        ])
    }
}

impl SubmissionFields {
    /// Whether the change moves the submission's de-identified facts.
    /// Destructured whole: a new field is decided here.
    pub fn touches_facts(&self) -> bool {
        let Self {
            symptoms,
            notes: _,
            contact_email: _,
            date_of_birth,
            region,
            status: _,
            practitioner_id: _,
        } = self;
        symptoms.is_some() || date_of_birth.is_some() || region.is_some()
    }
}

/// A new submission: what POST must carry, checked.
#[derive(Debug)]
pub struct NewSubmission {
    pub symptoms: Vec<Symptom>,
    pub notes: Option<SecretText>,
    pub contact_email: Option<SecretText>,
    pub date_of_birth: Option<NaiveDate>,
    pub region: Option<Region>,
    pub status: SubmissionStatus,
    pub practitioner_id: Option<Uuid>,
}

impl TryFrom<SubmissionFields> for NewSubmission {
    type Error = crate::error::ApiError;
    fn try_from(f: SubmissionFields) -> Result<Self, Self::Error> {
        let Some(symptoms) = f.symptoms else {
            return Err(crate::error::ApiError::invalid("symptoms", "is required"));
        };
        Ok(Self {
            symptoms,
            notes: f.notes.flatten(),
            contact_email: f.contact_email.flatten(),
            date_of_birth: f.date_of_birth.flatten(),
            region: f.region.flatten(),
            status: f.status.unwrap_or_default(),
            practitioner_id: f.practitioner_id.flatten(),
        })
    }
}

/// Ten-year bands; 90 and over together (HIPAA Safe Harbor aggregates ages
/// over 89).
pub fn age_band(dob: NaiveDate, today: NaiveDate) -> String {
    let mut age = today.year() - dob.year();
    if (today.month(), today.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    match age.max(0) {
        a if a >= 90 => "90+".to_string(),
        a => {
            let lo = a / 10 * 10;
            format!("{lo}-{}", lo + 9)
        }
    }
}

const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "pain",
        &["pain", "ache", "cramp", "sore", "migraine", "headache"],
    ),
    (
        "digestive",
        &[
            "nausea",
            "bloat",
            "diarr",
            "constipat",
            "stomach",
            "digest",
            "reflux",
            "appetite",
        ],
    ),
    ("sleep", &["insomnia", "sleep", "tired", "fatigue"]),
    (
        "respiratory",
        &["cough", "breath", "wheez", "congest", "sneez", "throat"],
    ),
    ("skin", &["rash", "itch", "eczema", "acne", "hives", "skin"]),
    (
        "mood",
        &["anxi", "depress", "stress", "irritab", "mood", "panic"],
    ),
    ("fever", &["fever", "chill", "sweat"]),
];

/// Coarse categories from symptom names, for de-identified analytics.
pub fn categories(symptoms: &[Symptom]) -> Vec<String> {
    let mut out: Vec<String> = symptoms
        .iter()
        .map(|s| {
            let name = s.name.as_str().to_lowercase();
            CATEGORIES
                .iter()
                .find(|(_, words)| words.iter().any(|w| name.contains(w)))
                .map(|(c, _)| c.to_string())
                .unwrap_or_else(|| "other".to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionDoc {
    pub id: Uuid,
    /// The owner's namespaced user id (`users:5`).
    pub owner: String,
    pub status: SubmissionStatus,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: Vec<Symptom>,
    #[schema(value_type = Option<String>)]
    pub notes: Option<SecretText>,
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<SecretText>,
    pub date_of_birth: Option<NaiveDate>,
    /// Derived from `dateOfBirth` when read.
    pub age_band: Option<String>,
    #[schema(value_type = Option<Region>)]
    pub region: Option<Region>,
    /// Derived from the symptoms' names when read.
    pub symptom_categories: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The fields the caller's consent does not grant: never opened, and
    /// left out of the answer (`routes::shape`), not shown as null.
    #[serde(skip)]
    #[schema(ignore)]
    pub withheld: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn age_bands_count_birthdays() {
        assert_eq!(age_band(d("1990-06-15"), d("2026-06-14")), "30-39");
        assert_eq!(age_band(d("1990-06-15"), d("2020-06-14")), "20-29");
        assert_eq!(age_band(d("1990-06-15"), d("2020-06-15")), "30-39");
        assert_eq!(age_band(d("1930-01-01"), d("2026-01-01")), "90+");
        assert_eq!(age_band(d("2026-01-01"), d("2026-03-01")), "0-9");
    }

    #[test]
    fn categories_are_coarse_and_unique() {
        let s = |n: &str| Symptom {
            name: SecretText::from(n),
            severity: 3,
            onset: d("2026-01-01"),
            notes: None,
        };
        assert_eq!(
            categories(&[
                s("Lower back pain"),
                s("Headache"),
                s("Trouble sleeping"),
                s("Tingling")
            ]),
            vec!["other", "pain", "sleep"]
        );
    }
}
