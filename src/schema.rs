//! Each collection, described once: its table, its sealed columns and blind
//! indexes, the unique and foreign-key constraints a client can trip (and
//! the API path each belongs to), and the fields a list may filter and sort
//! by, with who may use them.
//!
//! The query parser reads the fields, the store reads tables and columns,
//! `rekey` (key usage, re-encryption, retirement checks) reads the sealed
//! and blind-index columns, and a test compares all of it with the live
//! schema, so a sealed column cannot be added without being covered here.
//! Data only: no SQL is built here.

/// How a declared field may be queried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Enum(&'static [&'static str]),
    Uuid,
    Timestamp,
    TextArray,
    /// Sealed, with a blind index in `column`: `equals` and `in` only, on
    /// the normalised value.
    BlindIndexed {
        table: &'static str,
        column: &'static str,
    },
    /// `near` only; the collection handles it (practitioners).
    Location,
}

/// Who may filter or sort by a field. A field the caller may not see is
/// refused as if it did not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Everyone,
    Staff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The name in the API (camelCase, as Payload).
    pub name: &'static str,
    /// The SQL column it maps to ("" for `Location`).
    pub column: &'static str,
    pub kind: FieldKind,
    pub sortable: bool,
    pub visibility: Visibility,
}

const fn field(name: &'static str, column: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        column,
        kind,
        sortable: false,
        visibility: Visibility::Everyone,
    }
}

const fn sortable(name: &'static str, column: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        sortable: true,
        ..field(name, column, kind)
    }
}

const fn staff_only(f: FieldSpec) -> FieldSpec {
    FieldSpec {
        visibility: Visibility::Staff,
        ..f
    }
}

/// Who may change a field: the relation between the caller and the
/// document, as the policies and guard triggers decide it (the service
/// only answers early with the same decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The patient who owns the submission.
    Owner,
    /// A practitioner the owner shared the submission with (a consent).
    SharedPractitioner,
    /// The practitioner a listing is linked to (its `userId`).
    LinkedPractitioner,
    Editor,
    Admin,
}

pub const STAFF: &[Writer] = &[Writer::Editor, Writer::Admin];

/// A field a PATCH may change, and who may change it. The generated
/// field-lifecycle test (`tests/api/fields.rs`) writes every field listed
/// here as each writer (by id and in bulk) and reads it back, and as every
/// other kind of caller, expecting a refusal on the record; a unit test
/// (`domain::tests`) requires this list to name exactly the fields of the
/// collection's PATCH body, so a new field is covered once it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSpec {
    /// The API name.
    pub name: &'static str,
    pub writers: &'static [Writer],
    /// A value to write and read back (JSON text, different from what the
    /// test's base document holds); `"{practitionerId}"` stands for an
    /// existing practitioner's id, `{status}` fields take one per writer
    /// (`example_for`).
    pub example: &'static str,
    /// May be set to `null` (an optional field).
    pub clearable: bool,
    /// May be set by a bulk PATCH (`?where=..`); a field naming one
    /// document (slug, userId) is set one document at a time.
    pub bulk: bool,
}

impl WriteSpec {
    /// The example a writer writes: the status a practitioner may set is
    /// `reviewed`, the one an owner sets `archived`.
    pub fn example_for(&self, w: Writer) -> &'static str {
        match (self.name, w) {
            ("status", Writer::SharedPractitioner) => "\"reviewed\"",
            _ => self.example,
        }
    }
}

const fn write(name: &'static str, writers: &'static [Writer], example: &'static str) -> WriteSpec {
    WriteSpec {
        name,
        writers,
        example,
        clearable: false,
        bulk: true,
    }
}

const fn clearable(w: WriteSpec) -> WriteSpec {
    WriteSpec {
        clearable: true,
        ..w
    }
}

const fn one_at_a_time(w: WriteSpec) -> WriteSpec {
    WriteSpec { bulk: false, ..w }
}

/// A column the audit trigger names in its entries (`audit.fields`,
/// migration 0015, holds the same list: a test compares them, and requires
/// every sealed column to be here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audited {
    pub column: &'static str,
    /// Its API name, as entries name it.
    pub name: &'static str,
    /// A CREATE or DELETE entry names it when it holds a value (an UPDATE
    /// names every audited column it changed).
    pub on_create: bool,
    /// Its old and new values go into the entry's `detail`: cleartext that
    /// says nothing of a patient (a status, a link), never a sealed column.
    pub with_values: bool,
}

const fn audited(column: &'static str, name: &'static str) -> Audited {
    Audited {
        column,
        name,
        on_create: true,
        with_values: false,
    }
}

const fn with_values(a: Audited) -> Audited {
    Audited {
        with_values: true,
        ..a
    }
}

const fn changes_only(a: Audited) -> Audited {
    Audited {
        on_create: false,
        ..a
    }
}

/// A blind index: `column` holds the keyed hash of sealed `source`'s
/// normalised value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlindColumn {
    pub column: &'static str,
    pub source: &'static str,
}

#[derive(Debug)]
pub struct Collection {
    /// The API's name (`/api/<slug>`).
    pub slug: &'static str,
    /// Payload's `labels`: what a document is called, one and several
    /// (in the answers' messages: "Herb successfully created.").
    pub singular: &'static str,
    pub plural: &'static str,
    pub table: &'static str,
    /// Columns holding sealed envelopes (bytea).
    pub sealed: &'static [&'static str],
    pub blind: &'static [BlindColumn],
    /// Constraint name -> the API path a violation is reported on.
    pub constraints: &'static [(&'static str, &'static str)],
    pub fields: &'static [FieldSpec],
    /// Every top-level field of the collection's documents, as the API
    /// names them (`select` takes these; a test compares them with the
    /// documents' OpenAPI schemas).
    pub document: &'static [&'static str],
    /// The default order, as (column, descending), before the id tiebreak.
    pub default_order: &'static [(&'static str, bool)],
    /// What a PATCH may change, and who may change it.
    pub writes: &'static [WriteSpec],
    /// The columns its audit entries name, in order (empty: not audited
    /// by trigger).
    pub audited: &'static [Audited],
}

impl Collection {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The API path a constraint violation belongs to.
    pub fn path_of(&self, constraint: &str) -> Option<&'static str> {
        self.constraints
            .iter()
            .find(|(c, _)| *c == constraint)
            .map(|(_, p)| *p)
    }
}

pub const PUBLICATION: &[&str] = &["draft", "published"];
pub const SUBMISSION_STATUS: &[&str] = &["submitted", "reviewed", "archived"];

pub const PRACTITIONERS: Collection = Collection {
    slug: "practitioners",
    singular: "Practitioner",
    plural: "Practitioners",
    table: "practitioners",
    sealed: &["email", "phone", "licence_number"],
    blind: &[BlindColumn {
        column: "email_bidx",
        source: "email",
    }],
    constraints: &[
        ("practitioners_slug_key", "slug"),
        ("practitioners_email_bidx_key", "email"),
    ],
    fields: &[
        field("id", "id", FieldKind::Uuid),
        sortable("name", "name", FieldKind::Text),
        sortable("slug", "slug", FieldKind::Text),
        field("modalities", "modalities", FieldKind::TextArray),
        sortable("city", "city", FieldKind::Text),
        sortable("region", "region", FieldKind::Text),
        sortable("country", "country", FieldKind::Text),
        sortable("postalCode", "postal_code", FieldKind::Text),
        sortable("status", "status", FieldKind::Enum(PUBLICATION)),
        staff_only(field("userId", "user_id", FieldKind::Text)),
        sortable("createdAt", "created_at", FieldKind::Timestamp),
        sortable("updatedAt", "updated_at", FieldKind::Timestamp),
        staff_only(field(
            "email",
            "email_bidx",
            FieldKind::BlindIndexed {
                table: "practitioners",
                column: "email",
            },
        )),
        field("location", "", FieldKind::Location),
    ],
    document: &[
        "id",
        "name",
        "slug",
        "modalities",
        "bio",
        "city",
        "region",
        "country",
        "postalCode",
        "website",
        "status",
        "location",
        "email",
        "phone",
        "licenceNumber",
        "userId",
        "distanceM",
        "createdAt",
        "updatedAt",
    ],
    default_order: &[("created_at", true)],
    writes: &[
        write("name", LISTING, "\"Dr Ann Lee\""),
        one_at_a_time(write("slug", STAFF, "\"ann-lee-paris\"")),
        write("modalities", LISTING, r#"["acupuncture","tuina"]"#),
        clearable(write("bio", LISTING, "\"Twenty years of practice.\"")),
        clearable(write("city", LISTING, "\"Paris\"")),
        clearable(write("region", LISTING, "\"Ile-de-France\"")),
        clearable(write("country", LISTING, "\"FR\"")),
        clearable(write("postalCode", LISTING, "\"75001\"")),
        clearable(write("website", LISTING, "\"https://example.org/ann\"")),
        write("status", STAFF, "\"published\""),
        write("location", LISTING, r#"{"lat":48.8566,"lon":2.3522}"#),
        // A listing's email is unique: only staff (who see every listing) change
        // it, or a collision would tell a practitioner another one's address.
        clearable(write("email", STAFF, "\"ann.lee@example.org\"")),
        clearable(write("phone", LISTING, "\"+33 1 23 45 67 89\"")),
        clearable(write("licenceNumber", LISTING, "\"LIC-2041\"")),
        clearable(one_at_a_time(write(
            "userId",
            &[Writer::Admin],
            "\"users:newly-linked\"",
        ))),
    ],
    audited: &[
        audited("email", "email"),
        audited("phone", "phone"),
        audited("licence_number", "licenceNumber"),
        with_values(audited("user_id", "userId")),
        changes_only(with_values(audited("status", "status"))),
    ],
};

/// Who may edit a practitioner's listing: staff, and the practitioner it is
/// linked to (not its slug, status or link).
const LISTING: &[Writer] = &[Writer::Editor, Writer::Admin, Writer::LinkedPractitioner];

pub const HERBS: Collection = Collection {
    slug: "herbs",
    singular: "Herb",
    plural: "Herbs",
    table: "herbs",
    sealed: &[],
    blind: &[],
    constraints: &[("herbs_slug_key", "slug")],
    fields: &[
        field("id", "id", FieldKind::Uuid),
        sortable("name", "name", FieldKind::Text),
        sortable("slug", "slug", FieldKind::Text),
        sortable("scientificName", "scientific_name", FieldKind::Text),
        sortable("status", "status", FieldKind::Enum(PUBLICATION)),
        sortable("createdAt", "created_at", FieldKind::Timestamp),
        sortable("updatedAt", "updated_at", FieldKind::Timestamp),
    ],
    document: &[
        "id",
        "name",
        "slug",
        "scientificName",
        "description",
        "status",
        "tcmProperties",
        "createdAt",
        "updatedAt",
    ],
    default_order: &[("name", false)],
    writes: &[
        write("name", STAFF, "\"Bai Zhu\""),
        one_at_a_time(write("slug", STAFF, "\"bai-zhu\"")),
        clearable(write(
            "scientificName",
            STAFF,
            "\"Atractylodes macrocephala\"",
        )),
        clearable(write("description", STAFF, "\"Tonifies the spleen.\"")),
        write("status", STAFF, "\"published\""),
        write(
            "tcmProperties",
            STAFF,
            r#"{"taste":["bitter","sweet"],"temperature":"warm","meridians":["stomach","spleen"],"actions":["tonifies qi"]}"#,
        ),
    ],
    audited: &[],
};

/// Everything identifying or clinical is sealed; what stays in cleartext
/// (owner, status, practitioner, times) is listed in README.md with why.
pub const SUBMISSIONS: Collection = Collection {
    slug: "symptom-submissions",
    singular: "Symptom submission",
    plural: "Symptom submissions",
    table: "symptom_submissions",
    sealed: &[
        "symptoms",
        "notes",
        "contact_email",
        "date_of_birth",
        "region",
    ],
    blind: &[BlindColumn {
        column: "contact_email_bidx",
        source: "contact_email",
    }],
    constraints: &[("symptom_submissions_practitioner_id_fkey", "practitionerId")],
    writes: &[
        write(
            "symptoms",
            OWNER,
            r#"[{"name":"Headache","severity":4,"onset":"2026-01-10"},{"name":"Nausea","severity":2,"onset":"2026-01-11","notes":"after meals"}]"#,
        ),
        clearable(write("notes", OWNER, "\"Worse in the morning.\"")),
        clearable(write("contactEmail", OWNER, "\"pat@example.org\"")),
        clearable(write("dateOfBirth", OWNER, "\"1980-04-02\"")),
        clearable(write("region", OWNER, "\"CA-ON\"")),
        write(
            "status",
            &[Writer::Owner, Writer::SharedPractitioner],
            "\"archived\"",
        ),
        clearable(write("practitionerId", OWNER, "\"{practitionerId}\"")),
    ],
    fields: &[
        field("id", "id", FieldKind::Uuid),
        field("owner", "owner_id", FieldKind::Text),
        sortable("status", "status", FieldKind::Enum(SUBMISSION_STATUS)),
        field("practitionerId", "practitioner_id", FieldKind::Uuid),
        sortable("createdAt", "created_at", FieldKind::Timestamp),
        sortable("updatedAt", "updated_at", FieldKind::Timestamp),
        field(
            "contactEmail",
            "contact_email_bidx",
            FieldKind::BlindIndexed {
                table: "symptom_submissions",
                column: "contact_email",
            },
        ),
    ],
    document: &[
        "id",
        "owner",
        "status",
        "practitionerId",
        "symptoms",
        "notes",
        "contactEmail",
        "dateOfBirth",
        "ageBand",
        "region",
        "symptomCategories",
        "createdAt",
        "updatedAt",
    ],
    default_order: &[("created_at", true)],
    audited: &[
        audited("symptoms", "symptoms"),
        audited("notes", "notes"),
        audited("contact_email", "contactEmail"),
        audited("date_of_birth", "dateOfBirth"),
        audited("region", "region"),
        changes_only(with_values(audited("status", "status"))),
        audited("practitioner_id", "practitionerId"),
    ],
};

pub const CONSENTS: Collection = Collection {
    slug: "consents",
    singular: "Consent",
    plural: "Consents",
    table: "consents",
    sealed: &[],
    blind: &[],
    constraints: &[
        ("consents_practitioner_id_fkey", "practitionerId"),
        ("consents_submission_id_fkey", "submissionId"),
    ],
    fields: &[],
    document: &[
        "id",
        "owner",
        "practitionerId",
        "submissionId",
        "expiresAt",
        "scope",
        "createdAt",
    ],
    default_order: &[("created_at", true)],
    writes: &[],
    audited: &[
        audited("practitioner_id", "practitionerId"),
        audited("submission_id", "submissionId"),
        audited("expires_at", "expiresAt"),
        // Which parts are shared: no value of the patient's.
        with_values(audited("scope", "scope")),
    ],
};

/// Service API keys: only a keyed hash of each key is stored, under the
/// blind-index construction (so index key rotation must account for them).
pub const API_KEYS: Collection = Collection {
    slug: "api-keys",
    singular: "API key",
    plural: "API keys",
    table: "api_keys",
    sealed: &[],
    blind: &[BlindColumn {
        column: "key_hash",
        source: "key",
    }],
    constraints: &[],
    fields: &[],
    document: &[],
    default_order: &[("created_at", false)],
    writes: &[],
    audited: &[],
};

/// De-identified facts for analytics: `ref` is a blind index of the
/// submission's id (no owner, no submission id in the clear).
pub const SUBMISSION_FACTS: Collection = Collection {
    slug: "submission-facts",
    singular: "Submission fact",
    plural: "Submission facts",
    table: "submission_facts",
    sealed: &[],
    blind: &[BlindColumn {
        column: "ref",
        source: "submission",
    }],
    constraints: &[],
    fields: &[],
    document: &[],
    default_order: &[],
    writes: &[],
    audited: &[],
};

const OWNER: &[Writer] = &[Writer::Owner];

/// Every collection, for the key-usage and schema-coverage code.
pub const ALL: &[&Collection] = &[
    &PRACTITIONERS,
    &HERBS,
    &SUBMISSIONS,
    &CONSENTS,
    &API_KEYS,
    &SUBMISSION_FACTS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blind_indexes_name_a_sealed_source_or_a_derived_one() {
        for c in ALL {
            for b in c.blind {
                assert!(
                    c.sealed.contains(&b.source) || matches!(b.source, "key" | "submission"),
                    "{}.{} indexes {}",
                    c.table,
                    b.column,
                    b.source
                );
            }
            for f in c.fields {
                if let FieldKind::BlindIndexed { table, column } = f.kind {
                    assert_eq!(table, c.table);
                    assert!(
                        c.blind
                            .iter()
                            .any(|b| b.source == column && b.column == f.column)
                    );
                }
            }
        }
    }
}
