//! The export as FHIR R4: each entry an `AuditEvent` (the sealed entry and
//! its chain position carried in extensions, so that what a reader sees is
//! checked against what was hashed), and the manifest as a signed
//! `Provenance` at the end.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::manifest::{Manifest, SignedManifest};
use crate::audit::chain::{self, AuditRow, hex};

const PROVENANCE_EXT: &str = "urn:phi-gateway:export-manifest";

#[derive(Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct Identifier<'a> {
    system: String,
    value: &'a str,
}

#[derive(Serialize)]
struct Who<'a> {
    identifier: Identifier<'a>,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Network<'a> {
    address: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Agent<'a> {
    who: Who<'a>,
    requestor: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    role: Vec<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network<'a>>,
}

#[derive(Serialize)]
struct Observer {
    display: &'static str,
}

#[derive(Serialize)]
struct Source<'a> {
    observer: Observer,
    #[serde(rename = "type")]
    kind: [Coding<'a>; 1],
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "valueString")]
    value: &'a str,
}

#[derive(Serialize)]
struct Entity<'a> {
    what: Who<'a>,
    #[serde(rename = "type")]
    kind: Coding<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Coding<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    detail: Vec<Detail<'a>>,
}

#[derive(Serialize)]
struct Concept<'a> {
    coding: [Coding<'a>; 1],
}

#[derive(Serialize)]
struct Extension {
    url: &'static str,
    #[serde(rename = "valueString")]
    value: String,
}

/// A FHIR R4 AuditEvent, serialized straight from the entry (no
/// intermediate JSON value: this is the export's hot loop).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent<'a> {
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: Coding<'a>,
    subtype: [Coding<'a>; 1],
    action: &'static str,
    recorded: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_desc: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    purpose_of_event: Vec<Concept<'a>>,
    agent: [Agent<'a>; 1],
    source: Source<'a>,
    entity: Vec<Entity<'a>>,
    extension: [Extension; 2],
}

fn audit_event<'a>(r: &'a AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> AuditEvent<'a> {
    // Every action there is has its FHIR name (an exhaustive match); a
    // name this build does not know (none: a test holds the database's
    // list to ours) is exported as an event of its own.
    let fhir = crate::audit::Action::parse(&r.action)
        .map(crate::audit::Action::fhir)
        .unwrap_or(crate::audit::FhirAction {
            action: "E",
            subtype: "unknown",
            restful: false,
        });
    let (action, subtype, restful) = (fhir.action, fhir.subtype, fhir.restful);
    let outcome = match (r.outcome.as_str(), r.action.as_str()) {
        ("success", _) => "0",
        ("denied", _) => "4",
        (_, "DECRYPT_FAILURE") => "12",
        _ => "8",
    };
    AuditEvent {
        resource_type: "AuditEvent",
        id: r.seq.to_string(),
        kind: Coding {
            system: "http://terminology.hl7.org/CodeSystem/audit-event-type",
            code: "rest",
            display: Some("RESTful Operation"),
        },
        subtype: [Coding {
            system: if restful {
                "http://hl7.org/fhir/restful-interaction"
            } else {
                "urn:phi-gateway:audit-action"
            },
            code: subtype,
            display: None,
        }],
        action,
        recorded: r.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        outcome,
        outcome_desc: r.reason.as_deref(),
        // The purpose the caller gave (HL7 v3 PurposeOfUse); a value this
        // build does not know is carried as it was written.
        purpose_of_event: r
            .purpose
            .as_deref()
            .map(|p| {
                let known = crate::identity::PurposeOfUse::parse(p);
                Concept {
                    coding: [Coding {
                        system: "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        code: known.map(|k| k.hl7()).unwrap_or(p),
                        display: known.map(|k| k.display()),
                    }],
                }
            })
            .into_iter()
            .collect(),
        agent: [Agent {
            who: Who {
                identifier: Identifier {
                    system: format!(
                        "urn:payload:{}",
                        r.actor_collection.as_deref().unwrap_or("anonymous")
                    ),
                    value: r.actor_user.as_deref().unwrap_or("anonymous"),
                },
            },
            requestor: true,
            role: r
                .actor_roles
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|text| Text { text })
                .collect(),
            network: r
                .client_addr
                .as_deref()
                .map(|address| Network { address, kind: "2" }),
        }],
        source: Source {
            observer: Observer {
                display: "phi-gateway",
            },
            kind: [Coding {
                system: "http://terminology.hl7.org/CodeSystem/security-source-type",
                code: "4",
                display: None,
            }],
        },
        entity: std::iter::once(Entity {
            what: Who {
                identifier: Identifier {
                    system: format!("urn:phi-gateway:{}", r.entity_type),
                    value: r.entity_id.as_deref().unwrap_or("(request)"),
                },
            },
            kind: Coding {
                system: "urn:phi-gateway:entity-type",
                code: &r.entity_type,
                display: None,
            },
            role: None,
            detail: r
                .fields
                .iter()
                .map(|f| Detail {
                    kind: "field",
                    value: f,
                })
                .collect(),
        })
        // The patient the record is about.
        .chain(r.subject.as_deref().map(|subject| Entity {
            what: Who {
                identifier: Identifier {
                    system: "urn:phi-gateway:patient".into(),
                    value: subject,
                },
            },
            kind: Coding {
                system: "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                code: "1",
                display: Some("Person"),
            },
            role: Some(Coding {
                system: "http://terminology.hl7.org/CodeSystem/object-role",
                code: "1",
                display: Some("Patient"),
            }),
            detail: vec![],
        }))
        .collect(),
        // The entry itself rides along so the export verifies offline.
        extension: [
            Extension {
                url: "urn:phi-gateway:audit-entry",
                value: serde_json::to_string(r).expect("plain data"),
            },
            Extension {
                url: "urn:phi-gateway:chain",
                value: format!("{pos}:{}:{}", hex::encode(prev), hex::encode(hash)),
            },
        ],
    }
}

/// A FHIR R4 AuditEvent for one entry, as a JSON value.
pub fn fhir_event(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> Value {
    serde_json::to_value(audit_event(r, pos, prev, hash)).expect("plain data")
}

/// One entry as an `AuditEvent` line.
pub fn line(r: &AuditRow, pos: i64, prev: &[u8], hash: &[u8]) -> String {
    let mut s = serde_json::to_string(&audit_event(r, pos, prev, hash)).expect("plain data");
    s.push('\n');
    s
}

/// An `AuditEvent` line read back, checked against the entry it carries.
pub fn parse_line(line: &str) -> anyhow::Result<(AuditRow, i64, Vec<u8>, Vec<u8>)> {
    let v: Value = serde_json::from_str(line)?;
    let ext = v["extension"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no extension"))?;
    let find = |url: &str| {
        ext.iter()
            .find(|e| e["url"] == url)
            .and_then(|e| e["valueString"].as_str())
            .ok_or_else(|| anyhow::anyhow!("missing {url}"))
    };
    let row: AuditRow = serde_json::from_str(find("urn:phi-gateway:audit-entry")?)?;
    let mut parts = find("urn:phi-gateway:chain")?.split(':');
    let pos = parts.next().unwrap_or("").parse()?;
    let prev = hex_bytes(parts.next().unwrap_or(""))?;
    let hash = hex_bytes(parts.next().unwrap_or(""))?;
    // What a reader sees must be what was hashed.
    anyhow::ensure!(
        fhir_event(&row, pos, &prev, &hash) == v,
        "AuditEvent {} does not match its sealed entry (altered)",
        row.seq
    );
    Ok((row, pos, prev, hash))
}

/// The final resource of a FHIR export: a Provenance whose signature
/// signs the manifest (carried in an extension).
pub fn provenance(signed: &SignedManifest, m: &Manifest) -> Value {
    provenance_of(
        signed,
        m.exported_at,
        format!(
            "phi-gateway audit export, chain positions {}..{}",
            m.first_pos
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            m.last_pos
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into())
        ),
    )
}

/// A Provenance signing a manifest made at `at`, about `target`.
pub fn provenance_of(signed: &SignedManifest, at: DateTime<Utc>, target: String) -> Value {
    let when = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    json!({
        "resourceType": "Provenance",
        "target": [{"display": target}],
        "recorded": when,
        "agent": [{"who": {"display": "phi-gateway"}}],
        "signature": [{
            "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.5", "display": "Verification Signature"}],
            "when": when,
            "who": {"display": format!("phi-gateway audit signing key {}", signed.key_id)},
            "sigFormat": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(&signed.signature),
        }],
        "extension": [{"url": PROVENANCE_EXT, "valueString": signed.manifest}],
    })
}

pub fn from_provenance(v: &Value) -> anyhow::Result<SignedManifest> {
    anyhow::ensure!(
        v["resourceType"] == "Provenance",
        "the last line is not a Provenance"
    );
    let manifest = v["extension"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["url"] == PROVENANCE_EXT))
        .and_then(|x| x["valueString"].as_str())
        .ok_or_else(|| anyhow::anyhow!("the Provenance carries no manifest"))?
        .to_string();
    let sig = &v["signature"][0];
    let data = sig["data"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the Provenance has no signature"))?;
    let key_id = sig["who"]["display"]
        .as_str()
        .and_then(|d| d.rsplit(' ').next())
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the Provenance does not name its signing key"))?;
    Ok(SignedManifest {
        manifest,
        alg: chain::ALG_ED25519.into(),
        key_id,
        signature: base64::engine::general_purpose::STANDARD.decode(data)?,
    })
}

fn hex_bytes(v: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(v).ok_or_else(|| anyhow::anyhow!("bad hex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AuditRow {
        serde_json::from_value(json!({
            "seq": 9, "at": "2026-03-04T05:06:07.000008Z", "actorUser": "users:doc",
            "actorCollection": "users", "actorRoles": "patient,practitioner",
            "apiKeyId": null, "action": "READ", "entityType": "symptom_submissions",
            "entityId": "01", "requestId": "r", "clientAddr": null, "outcome": "success",
            "reason": null, "fields": ["notes"],
        }))
        .unwrap()
    }

    /// The purpose is `purposeOfEvent` in HL7 v3 PurposeOfUse codes, the
    /// patient an entity of role Patient; absent, neither is written.
    #[test]
    fn purpose_and_patient_are_fhir_elements() {
        let plain = fhir_event(&row(), 1, &[0; 32], &[1; 32]);
        assert!(plain.get("purposeOfEvent").is_none());
        assert_eq!(plain["entity"].as_array().unwrap().len(), 1);
        let mut r = row();
        r.purpose = Some("treatment".into());
        r.subject = Some("users:pat".into());
        let e = fhir_event(&r, 1, &[0; 32], &[1; 32]);
        let coding = &e["purposeOfEvent"][0]["coding"][0];
        assert_eq!(
            coding["system"],
            "http://terminology.hl7.org/CodeSystem/v3-ActReason"
        );
        assert_eq!(coding["code"], "TREAT");
        let patient = &e["entity"][1];
        assert_eq!(patient["what"]["identifier"]["value"], "users:pat");
        assert_eq!(patient["role"]["code"], "1");
        // And the entry read back from the event is the one hashed.
        let (back, ..) = parse_line(&line(&r, 1, &[0; 32], &[1; 32])).unwrap();
        assert_eq!(back, r);
    }
}
