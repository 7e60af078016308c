//! The demo data set, written through the services the API uses (so it is
//! sealed, indexed and audited as any request's data).

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use super::data::{CITIES, CLASSICAL_HERBS, MODALITIES, Rng, region_code};
use crate::crypto::KeyringHandle;
use crate::domain::SecretText;
use crate::domain::geo::Location;
use crate::domain::herb::{NewHerb, TcmProperties};
use crate::domain::practitioner::{NewPractitioner, Status};
use crate::domain::submission::{NewSubmission, SubmissionStatus, Symptom};
use crate::identity::{Principal, Role};
use crate::service::{Services, consents, herbs, practitioners, submissions};

fn admin() -> Principal {
    Principal::operator("seed", &[Role::Admin])
}

fn slugify(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whose the demo records are: the first patient's (two submissions and a
/// consent) and the practitioner's (linked to the first directory record).
/// Defaults: `demo-patient-1` and `demo-practitioner`, the development
/// tokens of deploy/run-local.sh; compose.yaml names its Payload users'
/// numeric ids instead.
#[derive(Debug, Clone)]
pub struct DemoUsers {
    pub patient: String,
    pub practitioner: String,
}

impl Default for DemoUsers {
    fn default() -> Self {
        Self {
            patient: "demo-patient-1".into(),
            practitioner: "demo-practitioner".into(),
        }
    }
}

/// Demo data through the services. Does nothing when herbs already exist.
pub async fn demo(
    db: &crate::store::Db,
    keyring: Arc<KeyringHandle>,
    users: &DemoUsers,
) -> anyhow::Result<String> {
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM herbs")
        .fetch_one(&db.pool)
        .await?;
    if existing > 0 {
        return Ok("already present, left as it is".into());
    }
    let svc = Services::new(db.clone(), db.clone(), keyring);
    let staff = admin();
    for (name, sci, taste, temp, meridians, actions) in CLASSICAL_HERBS {
        let tcm: TcmProperties = serde_json::from_value(
            json!({"taste": taste, "temperature": temp, "meridians": meridians, "actions": actions}),
        )
        .with_context(|| format!("the demo herb {name}"))?;
        herbs::create(
            &svc,
            &staff,
            NewHerb {
                name: name.to_string(),
                slug: slugify(name),
                scientific_name: Some(sci.to_string()),
                description: Some(format!("{name} ({sci}): {}.", actions.join("; "))),
                status: Status::Published,
                tcm_properties: tcm.normalised(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("seeding herb {name}: {e:?}"))?;
    }
    let mut rng = Rng::new(42);
    let mut first_practitioner = None;
    let mut count = 0;
    for (city, region, country, lat, lon) in CITIES {
        for i in 0..6 {
            let slug = format!("{}-{}", slugify(city), i + 1);
            let doc = practitioners::create(
                &svc,
                &staff,
                NewPractitioner {
                    name: format!("{} Practitioner {}", city, i + 1),
                    slug: slug.clone(),
                    modalities: crate::domain::practitioner::dedup(vec![
                        rng.pick(MODALITIES).to_string(),
                        rng.pick(MODALITIES).to_string(),
                    ]),
                    bio: None,
                    city: Some(city.to_string()),
                    region: Some(region.to_string()),
                    country: Some(country.to_string()),
                    postal_code: None,
                    website: None,
                    status: Status::Published,
                    location: Location {
                        lat: lat + (rng.unit() - 0.5) * 0.2,
                        lon: lon + (rng.unit() - 0.5) * 0.2,
                    },
                    email: Some(SecretText::from(format!("{slug}@clinic.example"))),
                    phone: Some(SecretText::from("+1 555 0100")),
                    licence_number: Some(SecretText::from(format!("LIC-{}", 1000 + count))),
                    user_id: (count == 0).then(|| format!("users:{}", users.practitioner)),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("seeding practitioner {slug}: {e:?}"))?;
            first_practitioner.get_or_insert(doc.id);
            count += 1;
        }
    }
    for (user, symptom, notes) in [
        (
            users.patient.as_str(),
            "Lower back pain",
            "Worse after sitting; better with heat.",
        ),
        (
            users.patient.as_str(),
            "Insomnia",
            "Wakes at 3am most nights.",
        ),
        (
            "demo-patient-2",
            "Seasonal allergies with sneezing",
            "Spring is worst.",
        ),
    ] {
        submissions::create(
            &svc,
            &Principal::user("users", user, &[]),
            NewSubmission {
                symptoms: vec![Symptom {
                    name: SecretText::from(symptom),
                    severity: 5,
                    onset: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("a date"),
                    notes: None,
                }],
                notes: Some(SecretText::from(notes)),
                contact_email: Some(SecretText::from(format!("{user}@example.org"))),
                date_of_birth: chrono::NaiveDate::from_ymd_opt(1985, 4, 12),
                region: region_code("Toronto"),
                status: SubmissionStatus::Submitted,
                practitioner_id: first_practitioner,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("seeding a submission: {e:?}"))?;
    }
    // demo-patient-1 shares their symptoms and notes (not their contact,
    // birth date or region) with the practitioner linked to
    // users:demo-practitioner: every role has something to see.
    if let Some(practitioner_id) = first_practitioner {
        consents::create(
            &svc,
            &Principal::user("users", &users.patient, &[]),
            crate::domain::consent::ConsentInput {
                practitioner_id,
                submission_id: None,
                expires_at: None,
                scope: Some(vec![
                    crate::domain::consent::ConsentScope::Symptoms,
                    crate::domain::consent::ConsentScope::Notes,
                ]),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("seeding a consent: {e:?}"))?;
    }
    Ok(format!(
        "{} herbs, {count} practitioners, 3 submissions, 1 consent",
        CLASSICAL_HERBS.len()
    ))
}
