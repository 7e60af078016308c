//! Consent: a patient shares all their submissions, or one, with a
//! practitioner, optionally until a time. The consent binds the CMS user
//! linked to that practitioner when it is given. It grants chosen parts
//! of the submissions (`ConsentScope`), all of them unless it says.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::{Validate, ValidationError};

use super::rules::err;

fn in_the_future(t: &DateTime<Utc>) -> Result<(), ValidationError> {
    if *t <= Utc::now() {
        return Err(err("time", "must be in the future"));
    }
    Ok(())
}

/// A part of a submission a consent may grant (minimum necessary: HIPAA
/// 164.514(d)). What is not granted is never opened for the practitioner
/// and is absent from their answers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ConsentScope {
    /// `symptoms` and what is derived from them (`symptomCategories`).
    Symptoms,
    Notes,
    /// The contact email.
    Contact,
    /// `dateOfBirth` and what is derived from it (`ageBand`).
    DateOfBirth,
    /// The region (a geographic subdivision is an identifier too).
    Region,
}

impl ConsentScope {
    pub const ALL: &'static [ConsentScope] = &[
        ConsentScope::Symptoms,
        ConsentScope::Notes,
        ConsentScope::Contact,
        ConsentScope::DateOfBirth,
        ConsentScope::Region,
    ];

    /// The database's spelling (`consents.scope`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentScope::Symptoms => "symptoms",
            ConsentScope::Notes => "notes",
            ConsentScope::Contact => "contact",
            ConsentScope::DateOfBirth => "dateOfBirth",
            ConsentScope::Region => "region",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The submission document's fields this part is.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            ConsentScope::Symptoms => &["symptoms", "symptomCategories"],
            ConsentScope::Notes => &["notes"],
            ConsentScope::Contact => &["contactEmail"],
            ConsentScope::DateOfBirth => &["dateOfBirth", "ageBand"],
            ConsentScope::Region => &["region"],
        }
    }

    /// The fields a set of granted parts leaves out.
    pub fn withheld(granted: &[ConsentScope]) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|s| !granted.contains(s))
            .flat_map(|s| s.fields().iter().copied())
            .collect()
    }
}

fn a_scope(scope: &[ConsentScope]) -> Result<(), ValidationError> {
    if scope.is_empty() {
        return Err(err(
            "scope",
            "must grant at least one part (symptoms, notes, contact, dateOfBirth, region): \
             to share nothing, give no consent",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentInput {
    pub practitioner_id: Uuid,
    /// One submission; absent shares them all.
    pub submission_id: Option<Uuid>,
    #[validate(custom(function = "in_the_future"))]
    pub expires_at: Option<DateTime<Utc>>,
    /// The parts shared; absent shares all of them.
    #[serde(default, deserialize_with = "crate::domain::non_null")]
    #[validate(custom(function = "a_scope"))]
    pub scope: Option<Vec<ConsentScope>>,
}

impl ConsentInput {
    /// The parts granted, sorted and each once.
    pub fn scope(&self) -> Vec<ConsentScope> {
        let mut s = self
            .scope
            .clone()
            .unwrap_or_else(|| ConsentScope::ALL.to_vec());
        s.sort();
        s.dedup();
        s
    }
}

impl super::Named for ConsentInput {
    fn named(&self) -> Vec<&'static str> {
        let Self {
            practitioner_id: _,
            submission_id,
            expires_at,
            scope,
        } = self;
        super::names(&[
            ("practitionerId", true),
            ("submissionId", submission_id.is_some()),
            ("expiresAt", expires_at.is_some()),
            ("scope", scope.is_some()),
        ])
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentDoc {
    pub id: Uuid,
    pub owner: String,
    pub practitioner_id: Uuid,
    pub submission_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The parts of the submissions it grants.
    pub scope: Vec<ConsentScope>,
    pub created_at: DateTime<Utc>,
}
