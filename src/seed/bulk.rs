//! Large synthetic sets for benchmarks: batched `INSERT .. SELECT FROM
//! UNNEST(..)` as the operator, values sealed in process exactly as the
//! services seal them.

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use super::data::{CITIES, CLASSICAL_HERBS, MODALITIES, Rng, region_code};
use crate::crypto::blind_index::normalise_email;
use crate::crypto::{Keyring, Place};
use crate::progress::Progress;

const BULK_BATCH: u64 = 5000;

/// A transaction whose audit entries name the seeding operator.
async fn operator_tx(pool: &PgPool) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.user_id', 'operator:seed', true), set_config('app.collection', 'operator', true)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Large synthetic sets, batched; for benchmarks.
pub async fn bulk(
    pool: &PgPool,
    keyring: &Keyring,
    practitioners: u64,
    herbs: u64,
    submissions: u64,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut rng = Rng::new(0x5eed);
    let run = uuid::Uuid::now_v7().simple().to_string()[..8].to_string();
    if practitioners > 0 {
        progress.begin("practitioners", practitioners);
        let mut done = 0;
        while done < practitioners {
            let n = BULK_BATCH.min(practitioners - done);
            let (
                mut ids,
                mut slugs,
                mut names,
                mut lats,
                mut lons,
                mut cities,
                mut emails,
                mut bidx,
                mut mods,
            ) = (
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
            );
            for i in done..done + n {
                let id = uuid::Uuid::now_v7();
                let (city, _, _, lat, lon) = rng.pick(CITIES);
                // Roughly within 50 km of the centre.
                let dlat = (rng.unit() - 0.5) * 0.9;
                let dlon = (rng.unit() - 0.5) * 0.9 / lat.to_radians().cos().max(0.2);
                let email = format!("p{i}-{run}@bulk.example");
                ids.push(id);
                slugs.push(format!("bulk-{run}-{i}"));
                names.push(format!("Practitioner {i}"));
                lats.push(lat + dlat);
                lons.push((lon + dlon).clamp(-180.0, 180.0));
                cities.push(city.to_string());
                mods.push(rng.pick(MODALITIES).to_string());
                bidx.push(
                    keyring
                        .blind_index("practitioners", "email", &normalise_email(&email))
                        .as_bytes()
                        .to_vec(),
                );
                emails.push(
                    keyring
                        .seal(email.as_bytes(), &Place::new("practitioners", "email", id))?
                        .into_bytes(),
                );
            }
            let mut tx = operator_tx(pool).await?;
            sqlx::query(
                "INSERT INTO practitioners (id, slug, name, lat, lon, city, email, email_bidx, modalities, status) \
                 SELECT id, slug, name, lat, lon, city, email, bidx, ARRAY[modality], 'published' \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[], $7::bytea[], $8::bytea[], $9::text[]) \
                 AS t(id, slug, name, lat, lon, city, email, bidx, modality)",
            )
            .bind(ids).bind(slugs).bind(names).bind(lats).bind(lons).bind(cities).bind(emails).bind(bidx).bind(mods)
            .execute(&mut *tx)
            .await
            .context("inserting practitioners")?;
            tx.commit().await?;
            done += n;
            progress.at(done);
        }
        progress.end();
    }
    if herbs > 0 {
        progress.begin("herbs", herbs);
        let mut done = 0;
        while done < herbs {
            let n = BULK_BATCH.min(herbs - done);
            let (mut ids, mut slugs, mut names, mut props) = (vec![], vec![], vec![], vec![]);
            for i in done..done + n {
                let (name, _, _, _, _, _) = rng.pick(CLASSICAL_HERBS);
                let tastes: Vec<&str> = (0..1 + rng.below(2))
                    .map(|_| *rng.pick(crate::domain::herb::Taste::ALL))
                    .collect();
                let meridians: Vec<&str> = (0..1 + rng.below(3))
                    .map(|_| *rng.pick(crate::domain::herb::Meridian::ALL))
                    .collect();
                let temperature = *rng.pick::<&str>(crate::domain::herb::Temperature::ALL);
                let tcm = crate::domain::herb::TcmProperties {
                    taste: tastes
                        .iter()
                        .filter_map(|t| crate::domain::herb::Taste::parse(t))
                        .collect(),
                    temperature: crate::domain::herb::Temperature::parse(temperature),
                    meridians: meridians
                        .iter()
                        .filter_map(|m| crate::domain::herb::Meridian::parse(m))
                        .collect(),
                    actions: vec![],
                }
                .normalised();
                ids.push(uuid::Uuid::now_v7());
                slugs.push(format!("bulk-{run}-{i}"));
                names.push(format!("{name} {i}"));
                props.push(serde_json::to_value(tcm)?);
            }
            let mut tx = operator_tx(pool).await?;
            sqlx::query(
                "INSERT INTO herbs (id, slug, name, tcm_properties, status) \
                 SELECT id, slug, name, props, 'published' \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[]) AS t(id, slug, name, props)",
            )
            .bind(ids).bind(slugs).bind(names).bind(props)
            .execute(&mut *tx)
            .await
            .context("inserting herbs")?;
            tx.commit().await?;
            done += n;
            progress.at(done);
        }
        progress.end();
    }
    if submissions > 0 {
        progress.begin("submissions", submissions);
        let mut done = 0;
        let notes = "Synthetic benchmark notes. ".repeat(40);
        while done < submissions {
            let n = BULK_BATCH.min(submissions - done);
            let (mut ids, mut owners, mut symptoms, mut sealed_notes, mut regions, mut refs) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut fact_regions = vec![];
            for i in done..done + n {
                let id = uuid::Uuid::now_v7();
                let s = json!([{"name": "Headache", "severity": 1 + rng.below(9), "onset": "2026-06-01"}]);
                ids.push(id);
                owners.push(format!("users:bulk-user-{}", i % 10_000));
                symptoms.push(
                    keyring
                        .seal(
                            s.to_string().as_bytes(),
                            &Place::new("symptom_submissions", "symptoms", id),
                        )?
                        .into_bytes(),
                );
                sealed_notes.push(
                    keyring
                        .seal(
                            notes.as_bytes(),
                            &Place::new("symptom_submissions", "notes", id),
                        )?
                        .into_bytes(),
                );
                let region = region_code(rng.pick(CITIES).0).expect("every city has a code");
                regions.push(
                    keyring
                        .seal(
                            region.as_str().as_bytes(),
                            &Place::new("symptom_submissions", "region", id),
                        )?
                        .into_bytes(),
                );
                fact_regions.push(region.as_str().to_string());
                refs.push(
                    keyring
                        .blind_index("submission_facts", "submission", &id.to_string())
                        .as_bytes()
                        .to_vec(),
                );
            }
            let mut tx = operator_tx(pool).await?;
            sqlx::query(
                "WITH s AS (INSERT INTO symptom_submissions (id, owner_id, symptoms, notes, region) \
                 SELECT id, owner, symptoms, notes, region \
                 FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[]) \
                 AS t(id, owner, symptoms, notes, region) RETURNING created_at) \
                 INSERT INTO submission_facts (ref, week, region, age_band, categories) \
                 SELECT r, date_trunc('week', now() AT TIME ZONE 'UTC')::date, fr, 'unknown', ARRAY['pain'] \
                 FROM UNNEST($6::bytea[], $7::text[]) AS f(r, fr)",
            )
            .bind(ids).bind(owners).bind(symptoms).bind(sealed_notes).bind(regions).bind(refs).bind(fact_regions)
            .execute(&mut *tx)
            .await
            .context("inserting submissions")?;
            tx.commit().await?;
            done += n;
            progress.at(done);
        }
        progress.end();
    }
    sqlx::query("ANALYZE practitioners, herbs, symptom_submissions")
        .execute(pool)
        .await?;
    Ok(())
}
