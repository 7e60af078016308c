//! Issue 22: purpose of use on every access to PHI, consents that grant
//! chosen parts of a submission (minimum necessary), and the patient's
//! report of who accessed their records.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{TestApp, error_message, json, spawn_app};

const PAT: &str = "pat-22";
const OTHER: &str = "other-22";
const DOC: (&str, &[&str]) = ("doc-22", &["practitioner"]);
const ADMIN: (&str, &[&str]) = ("adm-22", &["admin"]);

/// Every part a consent may grant, and the document fields each is.
const SCOPES: &[(&str, &[&str])] = &[
    ("symptoms", &["symptoms", "symptomCategories"]),
    ("notes", &["notes"]),
    ("contact", &["contactEmail"]),
    ("dateOfBirth", &["dateOfBirth", "ageBand"]),
    ("region", &["region"]),
];
/// What every reader of a submission sees, whatever the scope.
const ALWAYS: &[&str] = &[
    "id",
    "owner",
    "status",
    "practitionerId",
    "createdAt",
    "updatedAt",
];

fn full_submission() -> Value {
    json!({
        "symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}],
        "notes": "worse at night",
        "contactEmail": "pat22@example.org",
        "dateOfBirth": "1980-05-06",
        "region": "FR",
    })
}

async fn id_of(res: reqwest::Response) -> String {
    let status = res.status().as_u16();
    let body = json(res).await;
    assert!(status == 200 || status == 201, "{status}: {body}");
    body["doc"]["id"].as_str().unwrap().to_string()
}

/// A submission of every field, made by patient `who`; its id.
async fn submit(app: &TestApp, who: &str) -> String {
    id_of(
        app.as_patient(who)
            .post("/api/symptom-submissions", &full_submission())
            .await,
    )
    .await
}

/// A published practitioner linked to the practitioner user of the tests.
async fn linked_practitioner(app: &TestApp, name: &str) -> String {
    id_of(
        app.caller(Some(ADMIN))
            .post(
                "/api/practitioners",
                &json!({"name": name, "slug": name.to_lowercase().replace(' ', "-"),
                        "status": "published", "location": {"lat": 48.85, "lon": 2.35},
                        "userId": format!("users:{}", DOC.0)}),
            )
            .await,
    )
    .await
}

fn request_id(res: &reqwest::Response) -> String {
    res.headers()["x-request-id"].to_str().unwrap().to_string()
}

/// (action, fields, purpose, subject) of the entries a request wrote.
async fn entries_of(
    app: &TestApp,
    request: &str,
) -> Vec<(String, Vec<String>, Option<String>, Option<String>)> {
    let mut conn = app.admin().await;
    let rows = sqlx::query_as(
        "SELECT action::text, fields, purpose, subject FROM audit.log WHERE request_id = $1 ORDER BY seq",
    )
    .bind(request)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    rows
}

fn keys(doc: &Value) -> BTreeSet<String> {
    doc.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn practitioners_and_admins_say_why_and_every_entry_records_it() {
    let app = spawn_app().await;
    let p = linked_practitioner(&app, "Dr Purpose").await;
    let s = submit(&app, PAT).await;
    id_of(
        app.as_patient(PAT)
            .post("/api/consents", &json!({"practitionerId": p}))
            .await,
    )
    .await;
    let path = format!("/api/symptom-submissions/{s}");

    // Missing or unknown: 400 naming the header and the vocabulary.
    for caller in [
        app.caller(Some(DOC)).without_purpose(),
        app.caller(Some(ADMIN)).without_purpose().break_glass("ER"),
        app.caller(Some(DOC)).without_purpose(),
    ] {
        let res = caller.get(&path).await;
        assert_eq!(res.status(), 400);
        // A refusal of patients' data: on the record, like any other.
        let e = entries_of(&app, &request_id(&res)).await;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "ACCESS_DENIED");
        let msg = error_message(&json(res).await);
        assert!(msg.contains("X-Purpose-Of-Use"), "{msg}");
        assert!(
            msg.contains("treatment, payment, operations, research, emergency, patient-request"),
            "{msg}"
        );
    }
    for bad in ["TREAT", "marketing", ""] {
        let res = app
            .caller(Some(DOC))
            .without_purpose()
            .header("x-purpose-of-use", bad)
            .get(&path)
            .await;
        assert_eq!(res.status(), 400, "{bad:?}");
        assert!(error_message(&json(res).await).contains("X-Purpose-Of-Use"));
    }
    // A list and a consent list need it too.
    let res = app
        .caller(Some(DOC))
        .without_purpose()
        .get("/api/consents")
        .await;
    assert_eq!(res.status(), 400);
    // Non-PHI collections do not.
    let res = app
        .caller(Some(DOC))
        .without_purpose()
        .get("/api/herbs")
        .await;
    assert_eq!(res.status(), 200);

    // Given: recorded on every entry of the request (the service's READ and
    // the trigger's UPDATE alike), with the patient as subject.
    let res = app.caller(Some(DOC)).purpose("treatment").get(&path).await;
    assert_eq!(res.status(), 200);
    let e = entries_of(&app, &request_id(&res)).await;
    assert!(!e.is_empty());
    for (action, _, purpose, subject) in &e {
        assert_eq!(purpose.as_deref(), Some("treatment"), "{action}");
        assert_eq!(
            subject.as_deref(),
            Some(format!("users:{PAT}").as_str()),
            "{action}"
        );
    }
    let res = app
        .caller(Some(DOC))
        .purpose("operations")
        .patch(&path, &json!({"status": "reviewed"}))
        .await;
    assert_eq!(res.status(), 200);
    let e = entries_of(&app, &request_id(&res)).await;
    let actions: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    assert!(
        actions.contains(&"UPDATE") && actions.contains(&"READ"),
        "{actions:?}"
    );
    assert!(
        e.iter().all(|x| x.2.as_deref() == Some("operations")),
        "{e:?}"
    );

    // The owner owes none: recorded as the patient's own request.
    let res = app.as_patient(PAT).get(&path).await;
    assert_eq!(res.status(), 200);
    let e = entries_of(&app, &request_id(&res)).await;
    assert!(
        e.iter().all(|x| x.2.as_deref() == Some("patient-request")),
        "{e:?}"
    );

    // An admin's emergency read: its purpose, beside the BREAK_GLASS entry.
    let res = app
        .caller(Some(ADMIN))
        .purpose("emergency")
        .break_glass("ER admission, patient unresponsive")
        .get(&path)
        .await;
    assert_eq!(res.status(), 200);
    let e = entries_of(&app, &request_id(&res)).await;
    assert!(e.iter().any(|x| x.0 == "BREAK_GLASS"));
    assert!(
        e.iter().all(|x| x.2.as_deref() == Some("emergency")),
        "{e:?}"
    );

    // A refusal written on its own (another patient's record) keeps the
    // purpose too.
    let res = app
        .caller(Some(DOC))
        .purpose("research")
        .patch(&path, &json!({"notes": "not theirs to change"}))
        .await;
    assert_eq!(res.status(), 403);
    let e = entries_of(&app, &request_id(&res)).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "ACCESS_DENIED");
    assert_eq!(e[0].2.as_deref(), Some("research"));
}

#[tokio::test]
async fn a_consent_shares_only_its_scope_and_the_log_names_only_what_was_shown() {
    let app = spawn_app().await;
    let p = linked_practitioner(&app, "Dr Scope").await;
    let doc = app.caller(Some(DOC));

    // Bad scopes: empty, unknown, null.
    for bad in [json!([]), json!(["everything"]), Value::Null] {
        let res = app
            .as_patient(PAT)
            .post("/api/consents", &json!({"practitionerId": p, "scope": bad}))
            .await;
        assert_eq!(res.status(), 400, "{bad}");
    }

    // Every combination of parts: the practitioner's answer has exactly
    // those (absent, not null, for the rest), on a read, a list and the
    // answer to marking it reviewed; each READ entry names exactly them.
    for mask in 1u32..(1 << SCOPES.len()) {
        let granted: Vec<&str> = (0..SCOPES.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| SCOPES[i].0)
            .collect();
        let shown: BTreeSet<String> = ALWAYS
            .iter()
            .copied()
            .chain(
                SCOPES
                    .iter()
                    .filter(|(s, _)| granted.contains(s))
                    .flat_map(|(_, f)| f.iter().copied()),
            )
            .map(String::from)
            .collect();
        let s = submit(&app, PAT).await;
        let res = app
            .as_patient(PAT)
            .post(
                "/api/consents",
                &json!({"practitionerId": p, "submissionId": s, "scope": granted}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let consent = json(res).await;
        let mut said: Vec<String> =
            serde_json::from_value(consent["doc"]["scope"].clone()).unwrap();
        said.sort();
        let mut want: Vec<String> = granted.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(said, want, "the consent says what it grants");

        let path = format!("/api/symptom-submissions/{s}");
        let res = doc.get(&path).await;
        assert_eq!(res.status(), 200);
        let rid = request_id(&res);
        let body = json(res).await;
        assert_eq!(keys(&body), shown, "GET with {granted:?}");
        let e = entries_of(&app, &rid).await;
        let read = e.iter().find(|x| x.0 == "READ").expect("a READ entry");
        let named: BTreeSet<String> = read.1.iter().cloned().collect();
        assert_eq!(
            named, shown,
            "the READ entry names what was shown, {granted:?}"
        );

        let res = doc
            .get(&format!("/api/symptom-submissions?where[id][equals]={s}"))
            .await;
        let page = json(res).await;
        assert_eq!(keys(&page["docs"][0]), shown, "list with {granted:?}");

        let res = doc.patch(&path, &json!({"status": "reviewed"})).await;
        assert_eq!(res.status(), 200);
        let rid = request_id(&res);
        assert_eq!(
            keys(&json(res).await["doc"]),
            shown,
            "PATCH answer with {granted:?}"
        );
        let e = entries_of(&app, &rid).await;
        let read = e.iter().find(|x| x.0 == "READ").expect("a READ entry");
        assert_eq!(read.1.iter().cloned().collect::<BTreeSet<_>>(), shown);
    }

    // Two consents: the union of their scopes. A consent without a scope
    // grants all (as every consent given before scopes existed does).
    let s = submit(&app, OTHER).await;
    for scope in [json!(["notes"]), json!(["region"])] {
        let res = app
            .as_patient(OTHER)
            .post(
                "/api/consents",
                &json!({"practitionerId": p, "submissionId": s, "scope": scope}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let path = format!("/api/symptom-submissions/{s}");
    let body = json(doc.get(&path).await).await;
    let want: BTreeSet<String> = ALWAYS
        .iter()
        .chain(["notes", "region"].iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(keys(&body), want);
    let res = app
        .as_patient(OTHER)
        .post("/api/consents", &json!({"practitionerId": p}))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(json(res).await["doc"]["scope"].as_array().unwrap().len(), 5);
    assert_eq!(
        keys(&json(doc.get(&path).await).await).len(),
        ALWAYS.len() + 7
    );

    // Break-glass sees all, recorded as such.
    let s = submit(&app, PAT).await;
    let res = app
        .caller(Some(ADMIN))
        .purpose("emergency")
        .break_glass("ER")
        .get(&format!("/api/symptom-submissions/{s}"))
        .await;
    assert_eq!(res.status(), 200);
    let rid = request_id(&res);
    assert_eq!(keys(&json(res).await).len(), ALWAYS.len() + 7);
    let e = entries_of(&app, &rid).await;
    assert!(e.iter().any(|x| x.0 == "BREAK_GLASS"));
    assert_eq!(
        e.iter().find(|x| x.0 == "READ").unwrap().1.len(),
        ALWAYS.len() + 7
    );
}

#[tokio::test]
async fn a_patient_sees_who_accessed_their_records_and_nothing_of_anyone_elses() {
    let app = spawn_app().await;
    let p = linked_practitioner(&app, "Dr Report").await;
    let mine = submit(&app, PAT).await;
    let theirs = submit(&app, OTHER).await;
    for who in [PAT, OTHER] {
        id_of(
            app.as_patient(who)
                .post(
                    "/api/consents",
                    &json!({"practitionerId": p, "scope": ["symptoms", "notes"]}),
                )
                .await,
        )
        .await;
    }
    let doc = app.caller(Some(DOC)).purpose("treatment");
    assert_eq!(
        doc.get(&format!("/api/symptom-submissions/{mine}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        doc.get(&format!("/api/symptom-submissions/{theirs}"))
            .await
            .status(),
        200
    );
    let res = app
        .caller(Some(ADMIN))
        .purpose("emergency")
        .break_glass("ER admission")
        .get(&format!("/api/symptom-submissions/{mine}"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.as_patient(PAT)
            .get(&format!("/api/symptom-submissions/{mine}"))
            .await
            .status(),
        200
    );

    let report = |q: &'static str| {
        let app = &app;
        async move {
            let res = app
                .as_patient(PAT)
                .get(&format!("/api/audit/my-access-report{q}"))
                .await;
            assert_eq!(res.status(), 200, "{q}");
            json(res).await
        }
    };
    let r = report("").await;
    let docs = r["docs"].as_array().unwrap();
    // The practitioner's read: who (and their name), what, why.
    let by_doc: Vec<&Value> = docs
        .iter()
        .filter(|d| d["who"]["user"] == format!("users:{}", DOC.0))
        .collect();
    assert_eq!(by_doc.len(), 1, "{r}");
    let d = by_doc[0];
    assert_eq!(d["action"], "READ");
    assert_eq!(d["collection"], "symptom-submissions");
    assert_eq!(d["recordId"], mine.as_str());
    assert_eq!(d["purpose"], "treatment");
    assert_eq!(d["who"]["practitionerName"], "Dr Report");
    assert_eq!(d["breakGlass"], false);
    let fields: BTreeSet<&str> = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains("notes") && !fields.contains("contactEmail"),
        "{fields:?}"
    );
    // The admin's: marked break-glass, with the reason, both entries.
    let by_admin: Vec<&Value> = docs
        .iter()
        .filter(|d| d["who"]["user"] == format!("users:{}", ADMIN.0))
        .collect();
    assert!(by_admin.len() >= 2, "{r}");
    assert!(
        by_admin
            .iter()
            .all(|d| d["breakGlass"] == true && d["reason"] == "ER admission")
    );
    assert!(by_admin.iter().any(|d| d["action"] == "BREAK_GLASS"));
    // Not the patient's own accesses unless asked; nothing of the other
    // patient's record, ever.
    let me = format!("users:{PAT}");
    assert!(docs.iter().all(|d| d["who"]["user"] != me.as_str()), "{r}");
    assert!(docs.iter().all(|d| d["recordId"] != theirs.as_str()), "{r}");
    let own = report("?includeOwn=true").await;
    let own_docs = own["docs"].as_array().unwrap();
    assert!(own_docs.iter().any(|d| d["who"]["user"] == me.as_str()));
    assert!(own_docs.iter().all(|d| d["recordId"] != theirs.as_str()));

    // Paged by position.
    let first = report("?limit=1").await;
    assert_eq!(first["docs"].as_array().unwrap().len(), 1);
    assert_eq!(first["hasNextPage"], true);
    let after = first["nextAfter"].as_i64().unwrap();
    let res = app
        .as_patient(PAT)
        .get(&format!(
            "/api/audit/my-access-report?limit=1&after={after}"
        ))
        .await;
    let second = json(res).await;
    assert!(second["docs"][0]["position"].as_i64().unwrap() > after);
    // A window before any of it: nothing.
    let empty = report("?from=2020-01-01&to=2020-02-01").await;
    assert_eq!(empty["docs"].as_array().unwrap().len(), 0);

    // CSV.
    let res = app
        .as_patient(PAT)
        .get("/api/audit/my-access-report?format=csv")
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with("position,at,user,roles,practitionerName,action,"),
        "{text}"
    );
    assert!(
        text.contains("Dr Report") && text.contains("treatment"),
        "{text}"
    );

    // The other patient's report holds their record only.
    let res = app
        .as_patient(OTHER)
        .get("/api/audit/my-access-report")
        .await;
    let theirs_report = json(res).await;
    let ds = theirs_report["docs"].as_array().unwrap();
    assert!(ds.iter().any(|d| d["recordId"] == theirs.as_str()));
    assert!(ds.iter().all(|d| d["recordId"] != mine.as_str()));

    // Each report request is on the record, about the patient.
    let mut conn = app.admin().await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'EXPORT' AND entity_type = 'access_report' AND subject = $1",
    )
    .bind(&me)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(n >= 6, "{n}");

    // Bad parameters and no user.
    for q in [
        "?from=2026-02-01&to=2026-01-01",
        "?limit=0",
        "?limit=5000",
        "?format=xml",
        "?after=-1",
        "?who=me",
    ] {
        let res = app
            .as_patient(PAT)
            .get(&format!("/api/audit/my-access-report{q}"))
            .await;
        assert_eq!(res.status(), 400, "{q}");
    }
    assert_eq!(
        app.anonymous()
            .get("/api/audit/my-access-report")
            .await
            .status(),
        401
    );
}

/// The auditor's accounting of disclosures of one patient's records: every
/// access by anyone else, by recipient and purpose (first, last, how many,
/// which fields), through the API and the command line alike, each on the
/// record; nobody but an auditor gets it.
#[tokio::test]
async fn an_auditor_accounts_for_every_disclosure_of_a_patients_records() {
    let app = spawn_app().await;
    let p = linked_practitioner(&app, "Dr Account").await;
    let s = submit(&app, PAT).await;
    id_of(
        app.as_patient(PAT)
            .post(
                "/api/consents",
                &json!({"practitionerId": p, "scope": ["symptoms"]}),
            )
            .await,
    )
    .await;
    let path = format!("/api/symptom-submissions/{s}");
    for _ in 0..3 {
        assert_eq!(
            app.caller(Some(DOC))
                .purpose("treatment")
                .get(&path)
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        app.caller(Some(DOC))
            .purpose("payment")
            .get(&path)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.caller(Some(ADMIN))
            .purpose("emergency")
            .break_glass("ER")
            .get(&path)
            .await
            .status(),
        200
    );
    assert_eq!(app.as_patient(PAT).get(&path).await.status(), 200);
    let me = format!("users:{PAT}");

    let res = app
        .as_auditor()
        .get(&format!("/api/audit/disclosures?patient={me}"))
        .await;
    assert_eq!(res.status(), 200);
    let a = json(res).await;
    assert_eq!(a["patient"], me.as_str());
    let ds = a["disclosures"].as_array().unwrap();
    let find = |user: &str, purpose: &str| {
        ds.iter()
            .find(|d| d["recipient"]["user"] == user && d["purpose"] == purpose)
            .unwrap_or_else(|| panic!("no {user} for {purpose}: {a}"))
    };
    let doc = format!("users:{}", DOC.0);
    let t = find(&doc, "treatment");
    assert_eq!(t["count"], 3, "repeated disclosures summarised: {t}");
    assert!(t["first"].as_str().unwrap() <= t["last"].as_str().unwrap());
    assert_eq!(t["recipient"]["practitionerName"], "Dr Account");
    let fields: Vec<&str> = t["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"symptoms") && !fields.contains(&"notes"),
        "{fields:?}"
    );
    assert_eq!(t["collections"], json!(["symptom-submissions"]));
    assert_eq!(find(&doc, "payment")["count"], 1);
    let e = find(&format!("users:{}", ADMIN.0), "emergency");
    assert_eq!(e["breakGlass"], true);
    // The patient's own accesses are not disclosures.
    assert!(
        ds.iter().all(|d| d["recipient"]["user"] != me.as_str()),
        "{a}"
    );

    // Its signed manifest is fetched by the request's id, and holds it.
    let res = app
        .as_auditor()
        .get(&format!("/api/audit/disclosures?patient={me}"))
        .await;
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = res.text().await.unwrap();
    let signed = json(
        app.as_auditor()
            .get(&format!("/api/audit/exports/{request_id}/manifest"))
            .await,
    )
    .await;
    let signed: phi_gateway::audit::export::SignedManifest =
        serde_json::from_value(signed.clone()).unwrap_or_else(|e| panic!("{e}: {signed}"));
    let keys = crate::helpers::verifying_keys();
    let m = phi_gateway::audit::export::verify_accounting(&body, Some(&signed), &keys)
        .unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(m.format, "json");
    let now: Value = serde_json::from_str(&body).unwrap();
    // The auditor's first accounting is one recipient more.
    assert_eq!(
        m.rows as usize,
        now["disclosures"].as_array().unwrap().len()
    );
    assert_eq!(m.rows as usize, ds.len() + 1);
    let other = body.replacen("\"count\":3", "\"count\":2", 1);
    assert!(phi_gateway::audit::export::verify_accounting(&other, Some(&signed), &keys).is_err());

    let res = app
        .as_auditor()
        .get(&format!("/api/audit/disclosures?patient={me}&format=csv"))
        .await;
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with("recipient,roles,practitionerName,purpose,first,last,count,"),
        "{text}"
    );
    assert!(text.contains("Dr Account"), "{text}");

    // Only auditors; a patient must be named.
    for caller in [app.as_patient(PAT), app.caller(Some(DOC)), app.as_admin()] {
        let res = caller
            .get(&format!("/api/audit/disclosures?patient={me}"))
            .await;
        assert_eq!(res.status(), 403);
    }
    assert_eq!(
        app.as_auditor()
            .get("/api/audit/disclosures")
            .await
            .status(),
        400
    );
    assert_eq!(
        app.as_auditor()
            .get("/api/audit/disclosures?patient=")
            .await
            .status(),
        400
    );

    // Entry by entry, as FHIR R4 AuditEvents (sealed entries): each names
    // the patient and its purpose, and passes a real FHIR validator.
    let pool = app.db.admin_pool().await;
    phi_gateway::audit::sealer::seal_all(&pool).await.unwrap();
    let res = app
        .as_auditor()
        .get(&format!("/api/audit/disclosures?patient={me}&format=fhir"))
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let mut events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // It ends with the Provenance that signs it; the file verifies offline
    // with the public key, and not once a line is changed.
    let provenance = events.pop().unwrap();
    assert_eq!(provenance["resourceType"], "Provenance", "{text}");
    let keys = crate::helpers::verifying_keys();
    let m = phi_gateway::audit::export::verify_accounting(&text, None, &keys)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!((m.patient.as_str(), m.rows), (me.as_str(), 9));
    let altered = text.replacen("\"TREAT\"", "\"HPAYMT\"", 1);
    assert!(phi_gateway::audit::export::verify_accounting(&altered, None, &keys).is_err());
    let dropped: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(phi_gateway::audit::export::verify_accounting(&dropped, None, &keys).is_err());
    // Four reads by the practitioner, the admin's read and its break-glass
    // entry, and the three accountings before this one.
    assert_eq!(events.len(), 9, "{text}");
    for e in &events {
        assert_eq!(e["resourceType"], "AuditEvent");
        assert!(
            e["entity"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["what"]["identifier"]["value"] == me.as_str()),
            "{e}"
        );
    }
    let treat = events
        .iter()
        .filter(|e| e["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT")
        .count();
    assert_eq!(treat, 3, "{text}");
    crate::audit::fhir_validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // The command line gives the same accounting.
    let (ok, out) = crate::cli::cli(
        &app.db,
        "/nonexistent/keyring.json",
        &["audit", "disclosures", "--patient", &me, "--format", "json"],
    );
    assert!(ok, "{out}");
    let start = out.find('{').expect("JSON");
    let cli: Value = serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"));
    // The same, and the auditor's own three accountings since: an accounting
    // shows something of the patient, so it is one of their accesses too.
    let later = cli["disclosures"].as_array().unwrap();
    assert_eq!(later.len(), ds.len() + 1, "{out}");
    let audits = later
        .iter()
        .find(|d| d["recipient"]["user"] == "users:aud")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(audits["count"], 4, "{out}");

    // To a file, signed: the manifest beside it, checked by verify-export.
    let dir =
        std::env::temp_dir().join(format!("phi-accounting-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for format in ["csv", "json", "fhir"] {
        let file = dir.join(format!("accounting.{format}"));
        let file_s = file.to_str().unwrap();
        let (ok, out) = crate::cli::cli(
            &app.db,
            "/nonexistent/keyring.json",
            &[
                "audit",
                "disclosures",
                "--patient",
                &me,
                "--format",
                format,
                "--out",
                file_s,
            ],
        );
        assert!(ok, "{out}");
        let public = crate::helpers::signing().public.to_str().unwrap();
        let (ok, out) = crate::cli::cli(
            &app.db,
            "/nonexistent/keyring.json",
            &["audit", "verify-export", file_s, "--public-key", public],
        );
        assert!(
            ok && out.contains("the accounting of disclosures of"),
            "{format}: {out}"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen("users:", "users:x", 1)).unwrap();
        let (ok, out) = crate::cli::cli(
            &app.db,
            "/nonexistent/keyring.json",
            &["audit", "verify-export", file_s, "--public-key", public],
        );
        assert!(!ok, "{format}: an altered accounting verified: {out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Each accounting is on the record, about the patient.
    let mut conn = app.admin().await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit.log WHERE action = 'EXPORT' AND entity_type = 'disclosures' AND subject = $1",
    )
    .bind(&me)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 8, "four through the API, four from the command line");
}
