//! Demo data (through the same services the API uses) and large synthetic
//! sets for benchmarks (batched `INSERT .. SELECT FROM UNNEST(..)`, values
//! sealed in process exactly as the services seal them).

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;

use crate::crypto::blind_index::normalise_email;
use crate::crypto::{Keyring, KeyringHandle, Place};
use crate::domain::SecretText;
use crate::domain::geo::Location;
use crate::domain::herb::{NewHerb, TcmProperties};
use crate::domain::practitioner::{NewPractitioner, Status};
use crate::domain::region::Region;
use crate::domain::submission::{NewSubmission, SubmissionStatus, Symptom};
use crate::identity::{Principal, Role};
use crate::rekey::Progress;
use crate::service::{Services, herbs, practitioners, submissions};

/// pinyin, scientific name, tastes, temperature, meridians, actions.
type HerbRow = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

pub const CLASSICAL_HERBS: &[HerbRow] = &[
    (
        "Gan Cao",
        "Glycyrrhiza uralensis",
        &["sweet"],
        "neutral",
        &["heart", "lung", "spleen", "stomach"],
        &["tonifies qi", "harmonizes formulas"],
    ),
    (
        "Huang Qi",
        "Astragalus membranaceus",
        &["sweet"],
        "warm",
        &["lung", "spleen"],
        &["tonifies qi", "raises yang"],
    ),
    (
        "Ren Shen",
        "Panax ginseng",
        &["sweet", "bitter"],
        "warm",
        &["lung", "spleen", "heart"],
        &["tonifies yuan qi"],
    ),
    (
        "Dang Gui",
        "Angelica sinensis",
        &["sweet", "pungent"],
        "warm",
        &["heart", "liver", "spleen"],
        &["tonifies blood", "moves blood"],
    ),
    (
        "Bai Shao",
        "Paeonia lactiflora",
        &["bitter", "sour"],
        "cool",
        &["liver", "spleen"],
        &["nourishes blood", "softens the liver"],
    ),
    (
        "Chuan Xiong",
        "Ligusticum chuanxiong",
        &["pungent"],
        "warm",
        &["liver", "gallbladder", "pericardium"],
        &["moves blood", "relieves pain"],
    ),
    (
        "Shu Di Huang",
        "Rehmannia glutinosa (prepared)",
        &["sweet"],
        "warm",
        &["liver", "kidney"],
        &["nourishes blood", "tonifies yin"],
    ),
    (
        "Bai Zhu",
        "Atractylodes macrocephala",
        &["bitter", "sweet"],
        "warm",
        &["spleen", "stomach"],
        &["tonifies the spleen", "dries dampness"],
    ),
    (
        "Fu Ling",
        "Poria cocos",
        &["sweet", "bland"],
        "neutral",
        &["heart", "spleen", "kidney"],
        &["drains dampness", "calms the spirit"],
    ),
    (
        "Huang Qin",
        "Scutellaria baicalensis",
        &["bitter"],
        "cold",
        &["lung", "stomach", "gallbladder", "large intestine"],
        &["clears heat", "dries dampness"],
    ),
    (
        "Huang Lian",
        "Coptis chinensis",
        &["bitter"],
        "cold",
        &["heart", "liver", "stomach", "large intestine"],
        &["clears heat", "dries dampness"],
    ),
    (
        "Huang Bai",
        "Phellodendron chinense",
        &["bitter"],
        "cold",
        &["kidney", "bladder"],
        &["clears damp heat"],
    ),
    (
        "Jin Yin Hua",
        "Lonicera japonica",
        &["sweet"],
        "cold",
        &["lung", "heart", "stomach"],
        &["clears heat", "resolves toxicity"],
    ),
    (
        "Lian Qiao",
        "Forsythia suspensa",
        &["bitter"],
        "cool",
        &["lung", "heart", "small intestine"],
        &["clears heat", "resolves toxicity"],
    ),
    (
        "Ban Lan Gen",
        "Isatis indigotica",
        &["bitter"],
        "cold",
        &["heart", "stomach"],
        &["clears heat", "cools blood"],
    ),
    (
        "Chai Hu",
        "Bupleurum chinense",
        &["bitter", "pungent"],
        "cool",
        &["liver", "gallbladder"],
        &["soothes the liver", "releases the exterior"],
    ),
    (
        "Bo He",
        "Mentha haplocalyx",
        &["pungent"],
        "cool",
        &["lung", "liver"],
        &["releases the exterior", "clears the head"],
    ),
    (
        "Gui Zhi",
        "Cinnamomum cassia (twig)",
        &["pungent", "sweet"],
        "warm",
        &["heart", "lung", "bladder"],
        &["warms the channels", "releases the exterior"],
    ),
    (
        "Ma Huang",
        "Ephedra sinica",
        &["pungent", "bitter"],
        "warm",
        &["lung", "bladder"],
        &["induces sweating", "calms wheezing"],
    ),
    (
        "Sheng Jiang",
        "Zingiber officinale (fresh)",
        &["pungent"],
        "warm",
        &["lung", "spleen", "stomach"],
        &["releases the exterior", "warms the middle"],
    ),
    (
        "Gan Jiang",
        "Zingiber officinale (dried)",
        &["pungent"],
        "hot",
        &["heart", "lung", "spleen", "stomach"],
        &["warms the middle"],
    ),
    (
        "Fu Zi",
        "Aconitum carmichaelii (prepared)",
        &["pungent", "sweet"],
        "hot",
        &["heart", "kidney", "spleen"],
        &["restores yang"],
    ),
    (
        "Rou Gui",
        "Cinnamomum cassia (bark)",
        &["pungent", "sweet"],
        "hot",
        &["heart", "kidney", "liver", "spleen"],
        &["warms yang", "disperses cold"],
    ),
    (
        "Da Huang",
        "Rheum palmatum",
        &["bitter"],
        "cold",
        &["large intestine", "liver", "spleen", "stomach", "heart"],
        &["purges accumulation", "clears heat"],
    ),
    (
        "Shi Gao",
        "Gypsum fibrosum",
        &["pungent", "sweet"],
        "cold",
        &["lung", "stomach"],
        &["clears heat", "drains fire"],
    ),
    (
        "Zhi Mu",
        "Anemarrhena asphodeloides",
        &["bitter", "sweet"],
        "cold",
        &["lung", "stomach", "kidney"],
        &["clears heat", "nourishes yin"],
    ),
    (
        "Mai Men Dong",
        "Ophiopogon japonicus",
        &["sweet", "bitter"],
        "cool",
        &["heart", "lung", "stomach"],
        &["nourishes yin", "moistens the lung"],
    ),
    (
        "Wu Wei Zi",
        "Schisandra chinensis",
        &["sour", "sweet"],
        "warm",
        &["lung", "heart", "kidney"],
        &["astringes", "calms the spirit"],
    ),
    (
        "Shan Zhu Yu",
        "Cornus officinalis",
        &["sour", "astringent"],
        "warm",
        &["liver", "kidney"],
        &["tonifies the liver and kidney", "astringes"],
    ),
    (
        "Suan Zao Ren",
        "Ziziphus jujuba (seed)",
        &["sweet", "sour"],
        "neutral",
        &["heart", "liver", "gallbladder", "spleen"],
        &["calms the spirit", "nourishes the heart"],
    ),
    (
        "Da Zao",
        "Ziziphus jujuba (fruit)",
        &["sweet"],
        "warm",
        &["spleen", "stomach"],
        &["tonifies qi", "nourishes blood"],
    ),
    (
        "Gou Qi Zi",
        "Lycium barbarum",
        &["sweet"],
        "neutral",
        &["liver", "kidney", "lung"],
        &["nourishes the liver and kidney", "brightens the eyes"],
    ),
    (
        "He Shou Wu",
        "Polygonum multiflorum",
        &["bitter", "sweet", "astringent"],
        "warm",
        &["liver", "kidney"],
        &["nourishes blood", "tonifies essence"],
    ),
    (
        "Dan Shen",
        "Salvia miltiorrhiza",
        &["bitter"],
        "cool",
        &["heart", "pericardium", "liver"],
        &["moves blood", "calms the spirit"],
    ),
    (
        "Tao Ren",
        "Prunus persica (seed)",
        &["bitter", "sweet"],
        "neutral",
        &["heart", "liver", "large intestine"],
        &["breaks blood stasis", "moistens the intestines"],
    ),
    (
        "Hong Hua",
        "Carthamus tinctorius",
        &["pungent"],
        "warm",
        &["heart", "liver"],
        &["moves blood", "relieves pain"],
    ),
    (
        "San Qi",
        "Panax notoginseng",
        &["sweet", "bitter"],
        "warm",
        &["liver", "stomach"],
        &["stops bleeding", "moves blood"],
    ),
    (
        "Chen Pi",
        "Citrus reticulata (peel)",
        &["pungent", "bitter"],
        "warm",
        &["lung", "spleen"],
        &["regulates qi", "dries dampness"],
    ),
    (
        "Ban Xia",
        "Pinellia ternata",
        &["pungent"],
        "warm",
        &["lung", "spleen", "stomach"],
        &["transforms phlegm", "descends rebellious qi"],
    ),
    (
        "Xing Ren",
        "Prunus armeniaca (seed)",
        &["bitter"],
        "warm",
        &["lung", "large intestine"],
        &["stops cough", "calms wheezing"],
    ),
    (
        "Jie Geng",
        "Platycodon grandiflorus",
        &["bitter", "pungent"],
        "neutral",
        &["lung"],
        &["opens the lung", "expels phlegm"],
    ),
    (
        "Ge Gen",
        "Pueraria lobata",
        &["sweet", "pungent"],
        "cool",
        &["spleen", "stomach"],
        &["releases the muscles", "generates fluids"],
    ),
    (
        "Ze Xie",
        "Alisma orientale",
        &["sweet", "bland"],
        "cold",
        &["kidney", "bladder"],
        &["drains dampness", "clears heat"],
    ),
    (
        "Yi Yi Ren",
        "Coix lacryma-jobi",
        &["sweet", "bland"],
        "cool",
        &["spleen", "stomach", "lung"],
        &["drains dampness", "strengthens the spleen"],
    ),
    (
        "Shan Yao",
        "Dioscorea opposita",
        &["sweet"],
        "neutral",
        &["spleen", "lung", "kidney"],
        &["tonifies qi", "nourishes yin"],
    ),
    (
        "Du Zhong",
        "Eucommia ulmoides",
        &["sweet"],
        "warm",
        &["liver", "kidney"],
        &["tonifies the liver and kidney", "strengthens the sinews"],
    ),
    (
        "Niu Xi",
        "Achyranthes bidentata",
        &["bitter", "sour"],
        "neutral",
        &["liver", "kidney"],
        &["moves blood", "strengthens the sinews"],
    ),
    (
        "Mu Dan Pi",
        "Paeonia suffruticosa (root bark)",
        &["bitter", "pungent"],
        "cool",
        &["heart", "liver", "kidney"],
        &["clears heat", "cools blood"],
    ),
    (
        "Yan Hu Suo",
        "Corydalis yanhusuo",
        &["pungent", "bitter"],
        "warm",
        &["heart", "liver", "spleen"],
        &["moves blood", "relieves pain"],
    ),
    (
        "Xiang Fu",
        "Cyperus rotundus",
        &["pungent", "bitter", "sweet"],
        "neutral",
        &["liver", "spleen", "triple burner"],
        &["soothes the liver", "regulates qi"],
    ),
    (
        "Long Gu",
        "Fossilia ossis mastodi",
        &["sweet", "astringent"],
        "neutral",
        &["heart", "liver", "kidney"],
        &["calms the spirit", "anchors yang"],
    ),
];

/// Cities for demo and synthetic practitioners: name, region, country, lat, lon.
pub const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("London", "England", "UK", 51.5074, -0.1278),
    ("Toronto", "Ontario", "Canada", 43.6532, -79.3832),
    (
        "Vancouver",
        "British Columbia",
        "Canada",
        49.2827,
        -123.1207,
    ),
    ("San Francisco", "California", "USA", 37.7749, -122.4194),
    ("New York", "New York", "USA", 40.7128, -74.0060),
    ("Sydney", "New South Wales", "Australia", -33.8688, 151.2093),
    ("Melbourne", "Victoria", "Australia", -37.8136, 144.9631),
    ("Berlin", "Berlin", "Germany", 52.5200, 13.4050),
    ("Paris", "Ile-de-France", "France", 48.8566, 2.3522),
    ("Singapore", "Singapore", "Singapore", 1.3521, 103.8198),
];

/// The ISO 3166-2 code of each city's region.
fn region_code(city: &str) -> Option<Region> {
    Region::parse(match city {
        "London" => "GB-LND",
        "Toronto" => "CA-ON",
        "Vancouver" => "CA-BC",
        "San Francisco" => "US-CA",
        "New York" => "US-NY",
        "Sydney" => "AU-NSW",
        "Melbourne" => "AU-VIC",
        "Berlin" => "DE-BE",
        "Paris" => "FR-IDF",
        "Singapore" => "SG",
        _ => return None,
    })
}

const MODALITIES: &[&str] = &[
    "acupuncture",
    "herbal medicine",
    "tuina",
    "cupping",
    "moxibustion",
    "qigong",
    "dietary therapy",
];

/// A small deterministic generator (xorshift64*): reproducible data sets
/// without another dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

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

/// Demo data through the services. Does nothing when herbs already exist.
pub async fn demo(db: &crate::store::Db, keyring: Arc<KeyringHandle>) -> anyhow::Result<String> {
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
                    user_id: (count == 0).then(|| "users:demo-practitioner".to_string()),
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
            "demo-patient-1",
            "Lower back pain",
            "Worse after sitting; better with heat.",
        ),
        ("demo-patient-1", "Insomnia", "Wakes at 3am most nights."),
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
    Ok(format!(
        "{} herbs, {count} practitioners, 3 submissions",
        CLASSICAL_HERBS.len()
    ))
}

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
) -> anyhow::Result<()> {
    let mut rng = Rng::new(0x5eed);
    let run = uuid::Uuid::now_v7().simple().to_string()[..8].to_string();
    if practitioners > 0 {
        let progress = Progress::new(practitioners);
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
            progress.update("practitioners", done);
        }
        progress.finish();
    }
    if herbs > 0 {
        let progress = Progress::new(herbs);
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
            progress.update("herbs", done);
        }
        progress.finish();
    }
    if submissions > 0 {
        let progress = Progress::new(submissions);
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
            progress.update("submissions", done);
        }
        progress.finish();
    }
    sqlx::query("ANALYZE practitioners, herbs, symptom_submissions")
        .execute(pool)
        .await?;
    Ok(())
}
