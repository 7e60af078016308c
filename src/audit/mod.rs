//! The audit log: who did what to which record, never with values.
//!
//! `record` writes entries on the caller's transaction, so an entry commits
//! with the access it records or not at all; `record_alone` writes a
//! refusal or failure whose request transaction is rolled back or never
//! begun, on the reserved audit pool (so it is written even when the main
//! pool is exhausted). `refusals` counts anonymous refusals and failed
//! logins per client and minute instead of writing a row for each. `chain`
//! seals committed entries into a hash chain and signs checkpoints;
//! `export` streams them out. No code here updates or deletes an entry.

pub mod anchor;
pub mod archive;
pub mod chain;
pub mod export;
pub mod refusals;
pub mod sealer;
pub mod signing;
pub mod verify;

use crate::identity::Principal;
use crate::store::audit::Record;
use crate::store::{Db, Tx};

/// The actions an entry records: the enum, its name in the database's
/// `audit.action` enum (a test compares the two lists) and `ALL`, written
/// once; what FHIR calls each is an exhaustive match (`fhir`), so a new
/// action does not build until it says.
macro_rules! actions {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action { $($(#[doc = $doc])* $variant),+ }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(Action::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

actions! {
    Create = "CREATE",
    Read = "READ",
    Update = "UPDATE",
    Delete = "DELETE",
    /// One list or count request over PHI, whatever it returned.
    List = "LIST",
    Export = "EXPORT",
    AccessDenied = "ACCESS_DENIED",
    BreakGlass = "BREAK_GLASS",
    DecryptFailure = "DECRYPT_FAILURE",
    KeyRotation = "KEY_ROTATION",
    Login = "LOGIN",
    /// Refused credentials, counted per client and minute.
    AuthFailure = "AUTH_FAILURE",
}

/// How FHIR R4 names an action: `AuditEvent.action` (C, R, U, D or E) and
/// the subtype: a RESTful interaction where there is one, else our own
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FhirAction {
    pub action: &'static str,
    pub subtype: &'static str,
    pub restful: bool,
}

impl Action {
    pub fn fhir(self) -> FhirAction {
        let (action, subtype, restful) = match self {
            Action::Create => ("C", "create", true),
            Action::Read => ("R", "read", true),
            Action::Update => ("U", "update", true),
            Action::Delete => ("D", "delete", true),
            Action::List => ("E", "search-type", true),
            Action::Export => ("E", "export", false),
            Action::AccessDenied => ("E", "access-denied", false),
            Action::BreakGlass => ("E", "break-glass", false),
            Action::DecryptFailure => ("E", "decrypt-failure", false),
            Action::KeyRotation => ("E", "key-rotation", false),
            Action::Login => ("E", "login", false),
            Action::AuthFailure => ("E", "auth-failure", false),
        };
        FhirAction {
            action,
            subtype,
            restful,
        }
    }
}

/// How an access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// One audit entry. Field *names* only, never values; `detail` is JSON the
/// service writes (counts, ids of our own), never a PHI value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: Action,
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub fields: Vec<&'static str>,
    pub detail: Option<serde_json::Value>,
    /// The patient it concerns (the record's owner), so their access
    /// report finds it.
    pub subject: Option<String>,
}

impl Entry {
    pub fn new(action: Action, entity_type: &'static str, entity_id: impl ToString) -> Self {
        Self {
            action,
            entity_type,
            entity_id: Some(entity_id.to_string()),
            outcome: Outcome::Success,
            reason: None,
            fields: vec![],
            detail: None,
            subject: None,
        }
    }

    /// An entry about a request, not one record (a list, a refusal).
    pub fn about(action: Action, entity_type: &'static str) -> Self {
        Self {
            entity_id: None,
            ..Self::new(action, entity_type, "")
        }
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn fields(mut self, f: Vec<&'static str>) -> Self {
        self.fields = f;
        self
    }

    pub fn reason(mut self, r: Option<String>) -> Self {
        self.reason = r;
        self
    }

    pub fn subject(mut self, owner: &str) -> Self {
        self.subject = Some(owner.to_string());
        self
    }

    pub fn detail(mut self, d: serde_json::Value) -> Self {
        self.detail = Some(d);
        self
    }
}

/// Writes entries on the caller's transaction (one statement for any number).
pub async fn record(
    tx: &mut Tx,
    who: &Principal,
    entries: &[Entry],
) -> Result<(), crate::store::StoreError> {
    let records: Vec<Record<'_>> = entries
        .iter()
        .map(|e| Record {
            action: e.action.as_str(),
            entity_type: e.entity_type,
            entity_id: e.entity_id.as_deref(),
            outcome: e.outcome.as_str(),
            reason: e.reason.as_deref(),
            fields: e.fields.join(","),
            // serde_json's maps are sorted: the text is the same each time.
            detail: e.detail.as_ref().map(|d| d.to_string()),
            subject: e.subject.as_deref(),
        })
        .collect();
    crate::store::audit::append(tx, who, &records).await
}

/// Writes an entry in its own transaction, on the reserved audit pool:
/// refusals and failures, whose request transaction is rolled back or never
/// begun. A failure to write it is logged (there is nothing else left to
/// fail).
pub async fn record_alone(db: &Db, who: &Principal, entry: Entry) {
    let result = async {
        let mut tx = db.begin_plain().await?;
        if let Some(p) = who.purpose() {
            crate::store::audit::set_purpose(&mut tx, p.as_str()).await?;
        }
        record(&mut tx, who, std::slice::from_ref(&entry)).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, action = entry.action.as_str(), entity_type = entry.entity_type, "audit write failed");
    }
}
