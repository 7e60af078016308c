//! Consent: a patient shares all their submissions, or one, with a
//! practitioner, optionally until a time. The consent binds the CMS user
//! linked to that practitioner when it is given.

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

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentInput {
    pub practitioner_id: Uuid,
    /// One submission; absent shares them all.
    pub submission_id: Option<Uuid>,
    #[validate(custom(function = "in_the_future"))]
    pub expires_at: Option<DateTime<Utc>>,
}

impl super::Named for ConsentInput {
    fn named(&self) -> Vec<&'static str> {
        let Self {
            practitioner_id: _,
            submission_id,
            expires_at,
        } = self;
        super::names(&[
            ("practitionerId", true),
            ("submissionId", submission_id.is_some()),
            ("expiresAt", expires_at.is_some()),
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
    pub created_at: DateTime<Utc>,
}
