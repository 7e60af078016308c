//! Every field a PATCH may change, generated from the one description of
//! the data (`schema::Collection::writes`), not listed by hand: for each
//! collection, each writable field and each kind of caller allowed to write
//! it, a fresh document is changed in that field alone (by id, then in
//! bulk), answered and read back equal, cleared where it may be, and its
//! de-identified facts follow; every other kind of caller is refused (401,
//! 403 or 404, never a 2xx or a 5xx), the document stays as it was, and the
//! refusal is on the record naming the field. A field added to a PATCH body
//! is covered here once it is described (`domain` tests require that).
//!
//! This is the test whose absence let a patient's amendment of their own
//! symptoms answer 500 (issue 20): the service's role could not update the
//! facts that follow them.

use phi_gateway::schema::{self, Collection, WriteSpec, Writer};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, Who, json, spawn_app};

/// Every kind of caller there is, by their relation to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Anonymous,
    Owner,
    OtherPatient,
    SharedPractitioner,
    LinkedPractitioner,
    OtherPractitioner,
    Editor,
    Admin,
    Auditor,
}

const ACTORS: &[Actor] = &[
    Actor::Anonymous,
    Actor::Owner,
    Actor::OtherPatient,
    Actor::SharedPractitioner,
    Actor::LinkedPractitioner,
    Actor::OtherPractitioner,
    Actor::Editor,
    Actor::Admin,
    Actor::Auditor,
];

impl Actor {
    fn who(self) -> Who<'static> {
        match self {
            Actor::Anonymous => None,
            Actor::Owner => Some(("owner", &[])),
            Actor::OtherPatient => Some(("stranger", &[])),
            Actor::SharedPractitioner => Some(("doc-shared", &["practitioner"])),
            Actor::LinkedPractitioner => Some(("doc-linked", &["practitioner"])),
            Actor::OtherPractitioner => Some(("doc-other", &["practitioner"])),
            Actor::Editor => Some(("ed", &["editor"])),
            Actor::Admin => Some(("adm", &["admin"])),
            Actor::Auditor => Some(("aud", &["auditor"])),
        }
    }

    fn writer(self) -> Option<Writer> {
        match self {
            Actor::Owner => Some(Writer::Owner),
            Actor::SharedPractitioner => Some(Writer::SharedPractitioner),
            Actor::LinkedPractitioner => Some(Writer::LinkedPractitioner),
            Actor::Editor => Some(Writer::Editor),
            Actor::Admin => Some(Writer::Admin),
            _ => None,
        }
    }

    fn of(w: Writer) -> Actor {
        *ACTORS
            .iter()
            .find(|a| a.writer() == Some(w))
            .expect("every writer is played")
    }
}

/// The documents and people a collection's cases need.
struct World {
    app: TestApp,
    db: PgPool,
    /// The practitioner the owner's submissions are shared with.
    shared_listing: String,
    made: std::cell::Cell<u32>,
}

async fn created(res: reqwest::Response) -> Value {
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "{body}");
    body["doc"].clone()
}

impl World {
    async fn new() -> World {
        let app = spawn_app().await;
        let admin = Actor::Admin.who();
        let listing = |slug: &str, user: &str| {
            json!({"name": slug, "slug": slug, "status": "published",
                   "location": {"lat": 51.5, "lon": -0.12}, "userId": format!("users:{user}")})
        };
        let shared = created(
            app.caller(admin)
                .post(
                    "/api/practitioners",
                    &listing("shared-listing", "doc-shared"),
                )
                .await,
        )
        .await;
        created(
            app.caller(admin)
                .post("/api/practitioners", &listing("other-listing", "doc-other"))
                .await,
        )
        .await;
        let shared_listing = shared["id"].as_str().unwrap().to_string();
        created(
            app.caller(Actor::Owner.who())
                .post("/api/consents", &json!({"practitionerId": shared_listing}))
                .await,
        )
        .await;
        let db = app.db.admin_pool().await;
        World {
            app,
            db,
            shared_listing,
            made: std::cell::Cell::new(0),
        }
    }

    /// Who reads a collection's documents back (sees every field).
    fn reader(coll: &Collection) -> Actor {
        match coll.slug {
            "symptom-submissions" => Actor::Owner,
            _ => Actor::Admin,
        }
    }

    /// A fresh document of the collection, as its creator makes it.
    async fn base(&self, coll: &Collection) -> String {
        let n = self.made.get() + 1;
        self.made.set(n);
        let (creator, body) = match coll.slug {
            "practitioners" => (
                Actor::Admin,
                json!({"name": "Base Name", "slug": format!("base-{n}"), "status": "draft",
                       "location": {"lat": 51.5, "lon": -0.12}, "userId": "users:doc-linked"}),
            ),
            "herbs" => (
                Actor::Editor,
                json!({"name": "Base herb", "slug": format!("base-herb-{n}"), "status": "draft"}),
            ),
            "symptom-submissions" => (
                Actor::Owner,
                json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}]}),
            ),
            other => panic!("no base document for {other}"),
        };
        let doc = created(
            self.app
                .caller(creator.who())
                .post(&format!("/api/{}", coll.slug), &body)
                .await,
        )
        .await;
        doc["id"].as_str().unwrap().to_string()
    }

    async fn remove(&self, coll: &Collection, id: &str) {
        let res = self
            .app
            .caller(World::reader(coll).who())
            .delete(&format!("/api/{}/{id}", coll.slug))
            .await;
        assert_eq!(res.status(), 200, "cleanup of {id}");
    }

    /// The field as its reader sees it now (`null` when absent).
    async fn read(&self, coll: &Collection, id: &str, field: &str) -> Value {
        let res = self
            .app
            .caller(World::reader(coll).who())
            .get(&format!("/api/{}/{id}", coll.slug))
            .await;
        assert_eq!(res.status(), 200);
        json(res).await.get(field).cloned().unwrap_or(Value::Null)
    }

    fn example(&self, spec: &WriteSpec, w: Option<Writer>) -> Value {
        let text = match w {
            Some(w) => spec.example_for(w),
            None => spec.example,
        }
        .replace("{practitionerId}", &self.shared_listing);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", spec.name))
    }

    async fn patch(
        &self,
        who: Actor,
        coll: &Collection,
        id: &str,
        bulk: bool,
        body: &Value,
    ) -> reqwest::Response {
        let path = if bulk {
            format!("/api/{}?where[id][equals]={id}", coll.slug)
        } else {
            format!("/api/{}/{id}", coll.slug)
        };
        self.app
            .caller(who.who())
            .req(Method::PATCH, &path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The de-identified facts of the one submission there is.
    async fn facts(&self) -> (String, String, Vec<String>) {
        sqlx::query_as("SELECT region, age_band, categories FROM submission_facts")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Facts as the service must derive them from what the field now holds.
    async fn check_facts(&self, field: &str, value: &Value) {
        let (region, age_band, categories) = self.facts().await;
        match field {
            "region" => assert_eq!(region, value.as_str().unwrap_or("unknown")),
            "dateOfBirth" => {
                let want = match value.as_str() {
                    Some(d) => phi_gateway::domain::submission::age_band(
                        d.parse().unwrap(),
                        chrono::Utc::now().date_naive(),
                    ),
                    None => "unknown".into(),
                };
                assert_eq!(age_band, want);
            }
            "symptoms" => {
                let symptoms: Vec<phi_gateway::domain::submission::Symptom> =
                    serde_json::from_value(value.clone()).unwrap();
                assert_eq!(
                    categories,
                    phi_gateway::domain::submission::categories(&symptoms)
                );
            }
            _ => {}
        }
    }

    /// The refusal of `res` is on the record: one ACCESS_DENIED entry of
    /// the request, naming the field (and the record, when by id).
    async fn refusal_recorded(
        &self,
        res: &reqwest::Response,
        who: Actor,
        id: &str,
        field: &str,
        bulk: bool,
    ) {
        if who == Actor::Anonymous {
            // Counted per client and minute, not one row each.
            return;
        }
        let request = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let rows: Vec<(Option<String>, Vec<String>, String)> = sqlx::query_as(
            "SELECT entity_id, fields, outcome FROM audit.log \
             WHERE action = 'ACCESS_DENIED' AND request_id = $1",
        )
        .bind(&request)
        .fetch_all(&self.db)
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "{who:?} writing {field}: {rows:?}");
        let (entity, fields, outcome) = &rows[0];
        assert_eq!(outcome, "denied");
        assert!(
            fields.iter().any(|f| f == field),
            "{who:?} writing {field}: {fields:?}"
        );
        if !bulk {
            assert_eq!(entity.as_deref(), Some(id), "{who:?} writing {field}");
        }
    }
}

fn the_doc(body: &Value, bulk: bool) -> &Value {
    if bulk {
        let docs = body["docs"].as_array().expect("a bulk answer has docs");
        assert_eq!(docs.len(), 1, "{body}");
        &docs[0]
    } else {
        &body["doc"]
    }
}

/// Writes every field of `coll` as each writer and as everyone else.
async fn lifecycle(coll: &'static Collection) {
    assert!(!coll.writes.is_empty(), "{} declares no writes", coll.slug);
    let w = World::new().await;
    for spec in coll.writes {
        for writer in spec.writers {
            let actor = Actor::of(*writer);
            for bulk in [false, true] {
                let what = format!(
                    "{} {} by {actor:?}{}",
                    coll.slug,
                    spec.name,
                    if bulk { " in bulk" } else { "" }
                );
                let id = w.base(coll).await;
                let value = w.example(spec, Some(*writer));
                let before = w.read(coll, &id, spec.name).await;
                assert_ne!(before, value, "{what}: the example must change something");
                let res = w
                    .patch(actor, coll, &id, bulk, &json!({ spec.name: value }))
                    .await;
                let status = res.status();
                let body = json(res).await;
                if bulk && !spec.bulk {
                    // A field naming one document is set one at a time.
                    assert_eq!(status, 400, "{what}: {body}");
                    assert_eq!(w.read(coll, &id, spec.name).await, before, "{what}");
                    w.remove(coll, &id).await;
                    continue;
                }
                assert_eq!(status, 200, "{what}: {body}");
                assert_eq!(the_doc(&body, bulk)[spec.name], value, "{what}: the answer");
                assert_eq!(
                    w.read(coll, &id, spec.name).await,
                    value,
                    "{what}: read back"
                );
                if coll.slug == "symptom-submissions" {
                    w.check_facts(spec.name, &value).await;
                }
                if spec.clearable {
                    let res = w
                        .patch(actor, coll, &id, bulk, &json!({ spec.name: null }))
                        .await;
                    let status = res.status();
                    let body = json(res).await;
                    assert_eq!(status, 200, "{what}, cleared: {body}");
                    assert_eq!(
                        w.read(coll, &id, spec.name).await,
                        Value::Null,
                        "{what}, cleared"
                    );
                    if coll.slug == "symptom-submissions" {
                        w.check_facts(spec.name, &Value::Null).await;
                    }
                }
                w.remove(coll, &id).await;
            }
        }
        // Everyone else: refused, unchanged, and on the record.
        let id = w.base(coll).await;
        let value = w.example(spec, None);
        let before = w.read(coll, &id, spec.name).await;
        for &actor in ACTORS {
            if actor.writer().is_some_and(|a| spec.writers.contains(&a)) {
                continue;
            }
            for bulk in [false, true] {
                if bulk && !spec.bulk {
                    continue;
                }
                let what = format!(
                    "{} {} by {actor:?}{}",
                    coll.slug,
                    spec.name,
                    if bulk { " in bulk" } else { "" }
                );
                let res = w
                    .patch(actor, coll, &id, bulk, &json!({ spec.name: value }))
                    .await;
                let status = res.status().as_u16();
                if bulk && status == 200 {
                    // The caller's bulk reaches no document of this kind.
                    let body = json(res).await;
                    assert_eq!(body["docs"], json!([]), "{what}: {body}");
                } else {
                    let expected: &[u16] = if actor == Actor::Anonymous {
                        &[401]
                    } else {
                        &[403, 404]
                    };
                    assert!(expected.contains(&status), "{what}: {status}");
                    w.refusal_recorded(&res, actor, &id, spec.name, bulk).await;
                }
                assert_eq!(
                    w.read(coll, &id, spec.name).await,
                    before,
                    "{what}: changed"
                );
            }
        }
        w.remove(coll, &id).await;
    }
}

#[tokio::test]
async fn every_practitioner_field_is_written_by_its_writers_only() {
    lifecycle(&schema::PRACTITIONERS).await;
}

#[tokio::test]
async fn every_herb_field_is_written_by_its_writers_only() {
    lifecycle(&schema::HERBS).await;
}

#[tokio::test]
async fn every_submission_field_is_amended_by_its_writers_only() {
    lifecycle(&schema::SUBMISSIONS).await;
}
