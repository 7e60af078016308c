//! Who is calling: `Principal` and `Role`, the one thing the layers below the
//! HTTP edge know about the caller. Pure data: this module depends on nothing
//! else in the crate, so every layer may use it.
//!
//! User ids are namespaced by the Payload collection they come from
//! (`users:5` and `customers:5` are different people), and API keys by
//! `apikey:` (`apikey:<uuid>`). The namespaced id is what row-level security
//! and the audit log see.

use std::collections::BTreeSet;

/// What a caller may be. An authenticated CMS user is always a `Patient`
/// (of their own records) and may be more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Patient,
    Practitioner,
    Editor,
    Admin,
    Auditor,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Practitioner => "practitioner",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "patient" => Role::Patient,
            "practitioner" => Role::Practitioner,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            "service" => Role::Service,
            _ => return None,
        })
    }
}

/// Why PHI is accessed (HIPAA's purposes of use; FHIR's
/// `AuditEvent.purposeOfEvent`): the `X-Purpose-Of-Use` header's
/// vocabulary, the API's spelling, and HL7 v3 PurposeOfUse codes. Written
/// once: `ALL`, the spelling and the code come from one list.
macro_rules! purposes {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $code:literal, $display:literal;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum PurposeOfUse { $($(#[doc = $doc])* $variant),+ }

        impl PurposeOfUse {
            pub const ALL: &'static [PurposeOfUse] = &[$(PurposeOfUse::$variant),+];

            /// The header's and the audit log's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(PurposeOfUse::$variant => $name),+ }
            }

            /// The HL7 v3 PurposeOfUse code (system
            /// `http://terminology.hl7.org/CodeSystem/v3-ActReason`).
            pub fn hl7(self) -> &'static str {
                match self { $(PurposeOfUse::$variant => $code),+ }
            }

            /// The code's display text.
            pub fn display(self) -> &'static str {
                match self { $(PurposeOfUse::$variant => $display),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(PurposeOfUse::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

purposes! {
    Treatment = "treatment", "TREAT", "treatment";
    Payment = "payment", "HPAYMT", "healthcare payment";
    Operations = "operations", "HOPERAT", "healthcare operations";
    Research = "research", "HRESCH", "healthcare research";
    /// Emergency treatment (what break-glass is for).
    Emergency = "emergency", "ETREAT", "Emergency Treatment";
    /// The patient's own request: the default for a record's owner.
    PatientRequest = "patient-request", "PATRQT", "patient requested";
}

impl PurposeOfUse {
    /// `treatment, payment, ...`: for error messages and documentation.
    pub fn vocabulary() -> String {
        Self::ALL
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a caller may not go on; the HTTP layer turns it into 401 or 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Nobody is logged in.
    NotLoggedIn,
    /// Logged in, but without the role this needs.
    Forbidden,
}

/// The caller. Anonymous callers have no user id and no roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// Namespaced: `<collection>:<id>`, or `apikey:<uuid>`.
    pub user_id: Option<String>,
    pub collection: Option<String>,
    pub roles: BTreeSet<Role>,
    /// A valid `X-Break-Glass-Reason` header; it grants anything only to admins.
    pub break_glass_reason: Option<String>,
    /// For the audit log: our id for the request, the id the client sent
    /// (kept apart: a client may repeat another request's id), and the
    /// client's address.
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub client_addr: Option<String>,
    /// Set when the caller presented a service API key.
    pub api_key_id: Option<uuid::Uuid>,
    /// The `X-Purpose-Of-Use` the caller gave, if any (`purpose()` says
    /// what is recorded).
    pub purpose_of_use: Option<PurposeOfUse>,
    /// The login session a Payload token belongs to (none for API keys,
    /// operators and the anonymous): refused once logged out.
    pub session: Option<Session>,
}

/// A Payload login session, as the gateway keys it: the user and Payload's
/// session id (`sid`), or, for a token of a collection without sessions,
/// the token's own signature digest; and until when the token would be
/// accepted (its expiry and the verifier's leeway, Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub key: String,
    pub expires_at: i64,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A user of a Payload collection, with the roles their token names.
    pub fn user(collection: &str, id: &str, roles: &[Role]) -> Self {
        let mut set: BTreeSet<Role> = roles.iter().copied().collect();
        set.insert(Role::Patient);
        Self {
            user_id: Some(namespaced(collection, id)),
            collection: Some(collection.to_string()),
            roles: set,
            ..Self::default()
        }
    }

    /// An operator command (seed, import, export from the CLI), named in the
    /// audit log as `operator:<what>`.
    pub fn operator(what: &str, roles: &[Role]) -> Self {
        let mut p = Self::user("operator", what, roles);
        p.roles.remove(&Role::Patient);
        p
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_staff(&self) -> bool {
        self.has(Role::Editor) || self.has(Role::Admin)
    }

    pub fn is_anonymous(&self) -> bool {
        self.user_id.is_none()
    }

    /// `patient,admin`: the form the database policies read.
    pub fn roles_csv(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// An admin who gave a reason: emergency read access to PHI.
    pub fn break_glass(&self) -> bool {
        self.has(Role::Admin) && self.break_glass_reason.is_some()
    }

    /// Asked for break-glass without being an admin.
    pub fn break_glass_attempt(&self) -> bool {
        !self.has(Role::Admin) && self.break_glass_reason.is_some()
    }

    /// Practitioners and admins must say why they access PHI.
    pub fn owes_purpose(&self) -> bool {
        self.has(Role::Practitioner) || self.has(Role::Admin)
    }

    /// The purpose recorded with this caller's accesses: the one given;
    /// else, for a caller who owes none (a patient with their own records),
    /// the patient's own request; else none (a request that touches no
    /// PHI, for which nobody asked).
    pub fn purpose(&self) -> Option<PurposeOfUse> {
        match self.purpose_of_use {
            Some(p) => Some(p),
            None if self.is_anonymous() || self.owes_purpose() => None,
            None => Some(PurposeOfUse::PatientRequest),
        }
    }

    /// The user id, or `NotLoggedIn`.
    pub fn require_user(&self) -> Result<&str, Denied> {
        self.user_id.as_deref().ok_or(Denied::NotLoggedIn)
    }

    /// Editors and admins. (Row-level security decides too; this gives the
    /// clean early answer.)
    pub fn require_staff(&self) -> Result<(), Denied> {
        self.require_user()?;
        if self.is_staff() {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    pub fn require(&self, role: Role) -> Result<(), Denied> {
        self.require_user()?;
        if self.has(role) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

/// `users` + `5` -> `users:5`.
pub fn namespaced(collection: &str, id: &str) -> String {
    format!("{collection}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_namespaced_by_collection() {
        let a = Principal::user("users", "5", &[]);
        let b = Principal::user("customers", "5", &[]);
        assert_eq!(a.user_id.as_deref(), Some("users:5"));
        assert_ne!(a.user_id, b.user_id);
        assert!(a.has(Role::Patient));
        assert_eq!(
            Principal::operator("seed", &[Role::Admin])
                .user_id
                .as_deref(),
            Some("operator:seed")
        );
    }

    #[test]
    fn purposes_are_recorded_as_given_or_owed() {
        let mut p = Principal::user("users", "1", &[]);
        assert_eq!(p.purpose(), Some(PurposeOfUse::PatientRequest));
        p.roles.insert(Role::Practitioner);
        assert!(p.owes_purpose());
        assert_eq!(p.purpose(), None);
        p.purpose_of_use = Some(PurposeOfUse::Treatment);
        assert_eq!(p.purpose(), Some(PurposeOfUse::Treatment));
        assert_eq!(Principal::anonymous().purpose(), None);
        for purpose in PurposeOfUse::ALL {
            assert_eq!(PurposeOfUse::parse(purpose.as_str()), Some(*purpose));
        }
        assert_eq!(PurposeOfUse::Emergency.hl7(), "ETREAT");
    }

    #[test]
    fn break_glass_is_an_admins_only() {
        let mut p = Principal::user("users", "1", &[Role::Editor]);
        p.break_glass_reason = Some("incident".into());
        assert!(!p.break_glass() && p.break_glass_attempt());
        p.roles.insert(Role::Admin);
        assert!(p.break_glass() && !p.break_glass_attempt());
    }
}
