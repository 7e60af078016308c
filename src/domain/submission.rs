//! Symptom submissions: PHI. Every identifying or clinical field is sealed;
//! the service derives coarse, de-identified fields (age band, region,
//! symptom categories) for analytics.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::double_option;
use super::rules::{err, plain_text};

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

fn notes_len(s: &str) -> Result<(), ValidationError> {
    (s.chars().count() <= MAX_NOTES_CHARS)
        .then_some(())
        .ok_or_else(|| err("length", "must be at most 10,000 characters"))
}

/// One symptom, as the patient reports it. Sealed as part of `symptoms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    #[validate(length(min = 1, max = 200), custom(function = "plain_text"))]
    pub name: String,
    #[validate(range(min = 0, max = 10, message = "must be from 0 to 10"))]
    pub severity: u8,
    #[validate(custom(function = "not_future"))]
    pub onset: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 2000))]
    pub notes: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmissionFields {
    #[validate(
        length(min = 1, max = 50, message = "must list 1 to 50 symptoms"),
        nested
    )]
    pub symptoms: Option<Vec<Symptom>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "notes_len"))]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(email, length(max = 254))]
    pub contact_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[validate(custom(function = "not_future"))]
    pub date_of_birth: Option<Option<NaiveDate>>,
    /// A coarse region (state, province, county), kept in plaintext for
    /// analytics; never a street address or postal code.
    #[serde(default, deserialize_with = "double_option")]
    #[validate(length(min = 1, max = 100))]
    pub region: Option<Option<String>>,
    pub status: Option<SubmissionStatus>,
    #[serde(default, deserialize_with = "double_option")]
    pub practitioner_id: Option<Option<Uuid>>,
}

impl SubmissionFields {
    pub fn missing_for_create(&self) -> Vec<&'static str> {
        if self.symptoms.is_none() {
            vec!["symptoms"]
        } else {
            vec![]
        }
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
            let name = s.name.to_lowercase();
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
    pub owner: String,
    pub status: SubmissionStatus,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: Vec<Symptom>,
    pub notes: Option<String>,
    pub contact_email: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub age_band: Option<String>,
    pub region: Option<String>,
    pub symptom_categories: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
            name: n.into(),
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
