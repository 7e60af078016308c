//! Practitioners: CRUD, Payload queries and proximity search.
//!
//! The directory is public; the contact fields are sealed and opened only
//! for staff and for the practitioner themself, and a staff read of them is
//! audited. Linking a CMS user to a record (`userId`) is an admin's act,
//! refused to anyone else and audited either way (the database trigger
//! records every change of the link and of `status`, with old and new
//! values).

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;
use validator::Validate;

use super::{Crypt, Services, client_error, list_entry, new_id};
use crate::audit::{self, Action, Entry};
use crate::crypto::Place;
use crate::domain::geo::Location;
use crate::domain::practitioner::{
    Contact, NewPractitioner, PractitionerDoc, PractitionerFields, Status, dedup,
};
use crate::error::ApiError;
use crate::identity::{Principal, Role};
use crate::page::Page;
use crate::query::params::params;
use crate::query::{
    self, Cond, CondValue, Filter, ItemQuery, ListQuery, Near, NoParams, Op, Selection,
};
use crate::schema::PRACTITIONERS;
use crate::store::Tx;
use crate::store::practitioners::{self as table, NewRow, Patch, PractitionerRow};

const TABLE: &str = "practitioners";

fn place(column: &'static str, id: Uuid) -> Place<'static> {
    Place::new(TABLE, column, id)
}

fn is_self(who: &Principal, row: &PractitionerRow) -> bool {
    row.user_id.is_some() && row.user_id == who.user_id
}

fn may_see_contact(who: &Principal, row: &PractitionerRow) -> bool {
    who.is_staff() || is_self(who, row)
}

fn to_doc(
    c: &Crypt,
    who: &Principal,
    row: PractitionerRow,
    sel: &Selection,
) -> Result<PractitionerDoc, ApiError> {
    // Only the callers who may see contact fields cause a decryption, and
    // only of the fields the request selected.
    let open = |field: &str, column: &'static str, v: Option<&crate::crypto::SealedField>| {
        if sel.keeps(field) {
            c.open_text_opt(v, place(column, row.id))
        } else {
            Ok(None)
        }
    };
    let contact = if may_see_contact(who, &row) {
        Some(Contact {
            email: open("email", "email", row.email.as_ref())?,
            phone: open("phone", "phone", row.phone.as_ref())?,
            licence_number: open(
                "licenceNumber",
                "licence_number",
                row.licence_number.as_ref(),
            )?,
        })
    } else {
        None
    };
    let user_id = if who.is_staff() { row.user_id } else { None };
    Ok(PractitionerDoc {
        id: row.id,
        name: row.name,
        slug: row.slug,
        modalities: row.modalities,
        bio: row.bio,
        city: row.city,
        region: row.region,
        country: row.country,
        postal_code: row.postal_code,
        website: row.website,
        status: Status::from_db(&row.status),
        location: Location {
            lat: row.lat,
            lon: row.lon,
        },
        contact,
        user_id,
        distance_m: row.distance_m,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Documents for the response, with a READ entry for every one whose sealed
/// contact fields a member of staff was shown (the practitioner reading
/// their own record is not recorded).
fn open_all(
    c: &Crypt,
    who: &Principal,
    rows: Vec<PractitionerRow>,
    sel: &Selection,
) -> Result<(Vec<PractitionerDoc>, Vec<Entry>), ApiError> {
    let mut docs = Vec::with_capacity(rows.len());
    let mut entries = Vec::new();
    for row in rows {
        let staff_read = who.is_staff() && !is_self(who, &row);
        let doc = to_doc(c, who, row, sel)?;
        if staff_read && let Some(contact) = &doc.contact {
            let fields = contact.disclosed();
            if !fields.is_empty() {
                entries.push(Entry::new(Action::Read, TABLE, doc.id).fields(fields));
            }
        }
        docs.push(doc);
    }
    Ok((docs, entries))
}

/// Refuses a link by anyone but an admin (the refusal goes on the record in
/// `gate`, with the fields the body named), and a link to a collection
/// whose users cannot call this service (the id would name nobody who
/// could ever use it, or someone else's namespace).
pub(crate) fn check_link(
    svc: &Services,
    who: &Principal,
    link: Option<&str>,
) -> Result<(), ApiError> {
    if !who.has(Role::Admin) {
        return Err(ApiError::Forbidden(
            "Only an admin may link a CMS user to a practitioner record.".into(),
        ));
    }
    if let Some(user) = link {
        let collection = user.split_once(':').map_or("", |(c, _)| c);
        if !svc.user_collections.iter().any(|c| c == collection) {
            return Err(ApiError::invalid(
                "userId",
                format!(
                    "must name a user of a collection that signs in here ({})",
                    svc.user_collections.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    input: NewPractitioner,
) -> Result<PractitionerDoc, ApiError> {
    who.require_staff()?;
    if let Some(link) = &input.user_id {
        check_link(svc, who, Some(link))?;
    }
    let c = Crypt::new(svc);
    let row = new_row(&c, input)?;
    let mut tx = svc.pool.begin(who).await?;
    let row = insert_in(&mut tx, row).await?;
    let doc = to_doc(&c, who, row, &Selection::All)?;
    // The CREATE entry (sealed fields, the link) is written by the table's
    // audit trigger on this transaction.
    tx.commit().await?;
    Ok(doc)
}

/// A new practitioner's row, sealed.
pub(crate) fn new_row(c: &Crypt, input: NewPractitioner) -> Result<NewRow, ApiError> {
    let id = new_id();
    let email = input.email.as_ref();
    Ok(NewRow {
        id,
        email_bidx: email.map(|e| c.blind(TABLE, "email", e.as_str())),
        email: c.seal_text(email, place("email", id))?,
        phone: c.seal_text(input.phone.as_ref(), place("phone", id))?,
        licence_number: c.seal_text(input.licence_number.as_ref(), place("licence_number", id))?,
        slug: input.slug,
        name: input.name,
        modalities: input.modalities,
        bio: input.bio,
        city: input.city,
        region: input.region,
        country: input.country,
        postal_code: input.postal_code,
        website: input.website,
        status: input.status.as_str(),
        lat: input.location.lat,
        lon: input.location.lon,
        user_id: input.user_id,
    })
}

/// Inserts a new practitioner (`new_row`) on the caller's transaction.
pub(crate) async fn insert_in(tx: &mut Tx, row: NewRow) -> Result<PractitionerRow, ApiError> {
    table::insert(tx, row)
        .await
        .map_err(|e| client_error(&PRACTITIONERS, e))
}

pub async fn get(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    item: &ItemQuery,
) -> Result<PractitionerDoc, ApiError> {
    let c = Crypt::new(svc);
    let mut tx = svc.directory(who).begin(who).await?;
    let row = table::get(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    let (mut docs, entries) = open_all(&c, who, vec![row], &item.select)?;
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs.remove(0))
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
) -> Result<Page<PractitionerDoc>, ApiError> {
    let c = Crypt::new(svc);
    if let Some(f) = q.filter.as_mut() {
        f.resolve_blind(&|t, col, v| c.blind_candidates(t, col, v));
    }
    let mut tx = svc.directory(who).begin(who).await?;
    let found = table::list(&mut tx, &q, false).await?;
    let (total, found_capped) = (found.total, found.capped);
    let (mut docs, mut entries) = open_all(&c, who, found.rows, &q.select)?;
    if let Some(n) = q.near {
        // What the API calls a distance: the great circle on the mean earth
        // radius (`geo`), not earthdistance's larger sphere.
        let origin = Location {
            lat: n.lat,
            lon: n.lon,
        };
        for d in &mut docs {
            d.distance_m = Some(crate::domain::geo::haversine_m(origin, d.location));
        }
    }
    if who.is_staff() {
        // Staff lists disclose sealed contact fields (and may filter by
        // them): one entry per request, whatever it returned.
        entries.insert(0, list_entry(TABLE, &q, docs.len(), total));
    }
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(Page::new(docs, total, found_capped, &q))
}

/// `/near`'s own parameters: the point, the radius, and modalities.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NearParams {
    #[param(minimum = -90, maximum = 90)]
    #[validate(range(min = -90.0, max = 90.0, message = "must be from -90 to 90"))]
    pub lat: f64,
    #[param(minimum = -180, maximum = 180)]
    #[validate(range(min = -180.0, max = 180.0, message = "must be from -180 to 180"))]
    pub lon: f64,
    /// Radius in kilometres (default 25).
    #[param(minimum = 0, maximum = 200)]
    #[validate(range(min = 0.0, max = 200.0, message = "must be from 0 to 200"))]
    pub radius_km: Option<f64>,
    /// Repeatable; practitioners offering each.
    #[serde(default)]
    pub modality: Vec<String>,
}

params!(NearParams);

/// `GET /api/practitioners/near?lat=&lon=&radius_km=&limit=&modality=`.
pub async fn near(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    p: NearParams,
) -> Result<Page<PractitionerDoc>, ApiError> {
    let NearParams {
        lat,
        lon,
        radius_km,
        modality,
    } = p;
    let radius_km = radius_km.unwrap_or(25.0);
    debug_assert!(radius_km * 1000.0 <= query::MAX_RADIUS_M);
    let modalities = PRACTITIONERS
        .field("modalities")
        .expect("practitioners declare modalities");
    for m in modality {
        q.and(Filter::Cond(Cond {
            field: modalities,
            op: Op::Contains,
            value: CondValue::Text(m),
        }));
    }
    q.near = Some(Near {
        lat,
        lon,
        max_m: radius_km * 1000.0,
        min_m: 0.0,
    });
    list(svc, who, q, NoParams {}).await
}

/// The practitioners documents name, for `depth >= 1`, in the documents'
/// order: read under the caller's own rights (one they may not see is
/// `None`, and stays an id), on the request's transaction, with the READ
/// entries a staff read of sealed contact fields makes.
pub async fn related(
    tx: &mut Tx,
    c: &Crypt,
    who: &Principal,
    named: &[Option<Uuid>],
) -> Result<(Vec<Option<PractitionerDoc>>, Vec<Entry>), ApiError> {
    let mut ids: Vec<Uuid> = named.iter().flatten().copied().collect();
    ids.sort();
    ids.dedup();
    let rows = if ids.is_empty() {
        vec![]
    } else {
        table::get_many(tx, &ids).await?
    };
    let mut out = Vec::with_capacity(named.len());
    let mut entries = Vec::new();
    for id in named {
        match id.and_then(|id| rows.iter().find(|r| r.id == id)) {
            Some(row) => {
                let (mut docs, more) = open_all(c, who, vec![row.clone()], &Selection::All)?;
                entries.extend(more);
                out.push(docs.pop());
            }
            None => out.push(None),
        }
    }
    Ok((out, entries))
}

/// Visible but not theirs to change: 403; invisible: 404.
async fn refusal(tx: &mut Tx, id: Uuid) -> ApiError {
    match table::get(tx, id).await {
        Ok(Some(_)) => ApiError::forbidden(),
        Ok(None) => ApiError::NotFound,
        Err(e) => e.into(),
    }
}

/// What a caller may change of a listing they may edit: staff all of it
/// (admins alone the link); the linked practitioner their profile, not who
/// it belongs to or whether it is published, nor its email, which is
/// unique: a collision would tell them another (maybe unpublished)
/// listing's address, so staff change it, whatever the value.
fn may_change(svc: &Services, who: &Principal, f: &PractitionerFields) -> Result<(), ApiError> {
    if !who.is_staff() {
        if f.user_id.is_some() || f.status.is_some() || f.slug.is_some() {
            return Err(ApiError::forbidden());
        }
        if f.email.is_some() {
            return Err(ApiError::Forbidden(
                "A listing's email identifies it; ask an editor to change it.".into(),
            ));
        }
    }
    if let Some(link) = &f.user_id {
        check_link(svc, who, link.as_deref())?;
    }
    Ok(())
}

/// The sealed changes of a PATCH to practitioner `id`.
fn patch_for(c: &Crypt, id: Uuid, f: &PractitionerFields) -> Result<Patch, ApiError> {
    // Destructured whole: a new field does not build until it is passed on.
    let PractitionerFields {
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
    } = f;
    Ok(Patch {
        name: name.as_ref().map(|v| v.trim().to_string()),
        slug: slug.clone(),
        modalities: modalities.clone().map(dedup),
        bio: bio.clone(),
        city: city.clone(),
        region: region.clone(),
        country: country.clone(),
        postal_code: postal_code.clone(),
        website: website.clone(),
        status: status.map(Status::as_str),
        location: location.as_ref().map(|l| (l.lat, l.lon)),
        email: email
            .as_ref()
            .map(|email| -> Result<_, ApiError> {
                Ok((
                    c.seal_text(email.as_ref(), place("email", id))?,
                    email.as_ref().map(|e| c.blind(TABLE, "email", e.as_str())),
                ))
            })
            .transpose()?,
        phone: phone
            .as_ref()
            .map(|p| c.seal_text(p.as_ref(), place("phone", id)))
            .transpose()?,
        licence_number: licence_number
            .as_ref()
            .map(|l| c.seal_text(l.as_ref(), place("licence_number", id)))
            .transpose()?,
        user_id: user_id.clone(),
    })
}

/// The practitioners a bulk request matches, at most [`super::BULK_MAX`]:
/// any for staff, a practitioner's own listings for them.
async fn bulk_rows(
    c: &Crypt,
    tx: &mut Tx,
    who: &Principal,
    q: &mut ListQuery,
) -> Result<Vec<PractitionerRow>, ApiError> {
    who.require_user()?;
    if let Some(f) = q.filter.as_mut() {
        f.resolve_blind(&|t, col, v| c.blind_candidates(t, col, v));
    }
    let found = table::list(tx, q, !who.is_staff()).await?;
    super::bulk_size(found.rows.len())?;
    Ok(found.rows)
}

/// `PATCH /api/practitioners?where=..`: all matching, in one transaction, or none.
pub async fn update_many(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
    f: PractitionerFields,
) -> Result<Vec<PractitionerDoc>, ApiError> {
    who.require_user()?;
    if f.user_id.is_some() || f.slug.is_some() {
        return Err(ApiError::bad_request(
            "userId and slug name one practitioner: set them one at a time.",
        ));
    }
    may_change(svc, who, &f)?;
    let c = Crypt::new(svc);
    let mut tx = svc.pool.begin(who).await?;
    let rows = bulk_rows(&c, &mut tx, who, &mut q).await?;
    let mut written = Vec::with_capacity(rows.len());
    for row in &rows {
        let updated = table::update(&mut tx, row.id, patch_for(&c, row.id, &f)?)
            .await
            .map_err(|e| client_error(&PRACTITIONERS, e))?;
        let Some(row) = updated else {
            return Err(refusal(&mut tx, row.id).await);
        };
        written.push(row);
    }
    let (docs, mut entries) = open_all(&c, who, written, &Selection::All)?;
    entries.insert(0, list_entry(TABLE, &q, docs.len(), docs.len() as i64));
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs)
}

/// `DELETE /api/practitioners?where=..`: all matching, or none.
pub async fn delete_many(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
    _: NoParams,
) -> Result<Vec<PractitionerDoc>, ApiError> {
    who.require_staff()?;
    let c = Crypt::new(svc);
    let mut tx = svc.pool.begin(who).await?;
    let rows = bulk_rows(&c, &mut tx, who, &mut q).await?;
    let mut gone = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(row) = table::delete(&mut tx, row.id).await? else {
            return Err(refusal(&mut tx, row.id).await);
        };
        gone.push(row);
    }
    let (docs, mut entries) = open_all(&c, who, gone, &Selection::All)?;
    entries.insert(0, list_entry(TABLE, &q, docs.len(), docs.len() as i64));
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs)
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    f: PractitionerFields,
) -> Result<PractitionerDoc, ApiError> {
    who.require_user()?;
    may_change(svc, who, &f)?;
    let c = Crypt::new(svc);
    let patch = patch_for(&c, id, &f)?;
    let mut tx = svc.pool.begin(who).await?;
    let updated = table::update(&mut tx, id, patch)
        .await
        .map_err(|e| client_error(&PRACTITIONERS, e))?;
    let Some(row) = updated else {
        return Err(refusal(&mut tx, id).await);
    };
    let (mut docs, entries) = open_all(&c, who, vec![row], &Selection::All)?;
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs.remove(0))
}

pub async fn delete(
    svc: &Services,
    who: &Principal,
    id: Uuid,
) -> Result<PractitionerDoc, ApiError> {
    who.require_user()?;
    let c = Crypt::new(svc);
    let mut tx = svc.pool.begin(who).await?;
    let Some(row) = table::delete(&mut tx, id).await? else {
        return Err(refusal(&mut tx, id).await);
    };
    // The DELETE entry (and the consents it cascades to) are written by the
    // tables' audit triggers on this transaction; a member of staff shown
    // the sealed contact fields in the answer read them.
    let (mut docs, entries) = open_all(&c, who, vec![row], &Selection::All)?;
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(docs.remove(0))
}
