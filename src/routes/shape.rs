//! Payload's `select` and `depth` applied where a document is written out:
//! a `Shaped` document serializes only the selected fields (always its
//! `id`), and may put a populated document in place of a relationship's id.
//!
//! The services open only what was selected; this only leaves out what they
//! did not open. It works at the serializer, so no document is copied into
//! an intermediate value (plaintext stays in the self-wiping response
//! buffer and the document's own `SecretText`s).

use serde::ser::{self, Impossible, Serialize, SerializeStruct, Serializer};

use crate::query::Selection;

/// What a service returns, split into the document and what replaces one
/// of its fields (`depth`).
pub trait Parts {
    type Doc: Serialize;
    type Rel: Serialize;
    fn parts(self) -> (Self::Doc, Option<(&'static str, Self::Rel)>);
    /// Fields the document must leave out whatever the selection says
    /// (what a consent does not grant).
    fn withheld(_doc: &Self::Doc) -> Vec<&'static str> {
        Vec::new()
    }
}

macro_rules! plain {
    ($($t:ty),*) => {
        $(impl Parts for $t {
            type Doc = $t;
            type Rel = ();
            fn parts(self) -> (Self::Doc, Option<(&'static str, ())>) {
                (self, None)
            }
        })*
    };
}

plain!(
    crate::domain::herb::HerbDoc,
    crate::domain::practitioner::PractitionerDoc,
    crate::domain::consent::ConsentDoc
);

impl Parts for crate::domain::submission::SubmissionDoc {
    type Doc = Self;
    type Rel = ();
    fn parts(self) -> (Self::Doc, Option<(&'static str, ())>) {
        (self, None)
    }
    fn withheld(doc: &Self) -> Vec<&'static str> {
        doc.withheld.clone()
    }
}

impl Parts
    for crate::service::Related<
        crate::domain::submission::SubmissionDoc,
        crate::domain::practitioner::PractitionerDoc,
    >
{
    type Doc = crate::domain::submission::SubmissionDoc;
    type Rel = crate::domain::practitioner::PractitionerDoc;
    fn parts(self) -> (Self::Doc, Option<(&'static str, Self::Rel)>) {
        (self.doc, self.related.map(|r| ("practitionerId", r)))
    }
    fn withheld(doc: &Self::Doc) -> Vec<&'static str> {
        doc.withheld.clone()
    }
}

/// One document, shaped.
pub fn one<T: Parts>(item: T, select: &Selection) -> Shaped<'_, T::Doc, T::Rel> {
    let (doc, populated) = item.parts();
    let withheld = T::withheld(&doc);
    Shaped {
        doc,
        select,
        populated,
        withheld,
    }
}

/// A page of documents, shaped.
pub fn page<T: Parts>(
    page: crate::page::Page<T>,
    select: &Selection,
) -> crate::page::Page<Shaped<'_, T::Doc, T::Rel>> {
    page.map(|d| one(d, select))
}

/// A document as the request asked to see it.
pub struct Shaped<'a, T, R = ()> {
    pub doc: T,
    pub select: &'a Selection,
    /// The relationship field to replace, and the document that replaces
    /// its id (`depth >= 1`).
    pub populated: Option<(&'static str, R)>,
    /// Left out whatever `select` says.
    pub withheld: Vec<&'static str>,
}

impl<T: Serialize, R: Serialize> Serialize for Shaped<'_, T, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.select.is_all() && self.populated.is_none() && self.withheld.is_empty() {
            return self.doc.serialize(serializer);
        }
        self.doc.serialize(ShapeSer {
            inner: serializer,
            show: Show {
                select: self.select,
                withheld: &self.withheld,
            },
            populated: self.populated.as_ref().map(|(k, r)| (*k, r)),
        })
    }
}

/// Which keys a shaped document writes: `id` always; others if selected
/// and not withheld.
#[derive(Clone, Copy)]
struct Show<'a> {
    select: &'a Selection,
    withheld: &'a [&'static str],
}

impl Show<'_> {
    fn keeps(&self, key: &str) -> bool {
        key == "id" || (self.select.keeps(key) && !self.withheld.contains(&key))
    }
}

struct ShapeSer<'a, S, R> {
    inner: S,
    show: Show<'a>,
    populated: Option<(&'static str, &'a R)>,
}

struct ShapeStruct<'a, S, R> {
    inner: S,
    show: Show<'a>,
    populated: Option<(&'static str, &'a R)>,
}

impl<S: SerializeStruct, R: Serialize> SerializeStruct for ShapeStruct<'_, S, R> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        if !self.show.keeps(key) {
            return Ok(());
        }
        match self.populated {
            Some((k, doc)) if k == key => self.inner.serialize_field(key, doc),
            _ => self.inner.serialize_field(key, value),
        }
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// A document with flattened parts is written as a map: the same rule by
/// key.
struct ShapeMap<'a, S, R> {
    inner: S,
    show: Show<'a>,
    populated: Option<(&'static str, &'a R)>,
    /// The key just written was left out; so is its value.
    skipping: bool,
}

/// A map key as text (documents' keys are their field names).
fn key_name<K: ?Sized + Serialize>(key: &K) -> Option<String> {
    match serde_json::to_value(key) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

impl<S: ser::SerializeMap, R: Serialize> ser::SerializeMap for ShapeMap<'_, S, R> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_entry<K: ?Sized + Serialize, V: ?Sized + Serialize>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        let name = key_name(key).unwrap_or_default();
        if !self.show.keeps(&name) {
            return Ok(());
        }
        match self.populated {
            Some((k, doc)) if k == name => self.inner.serialize_entry(key, doc),
            _ => self.inner.serialize_entry(key, value),
        }
    }

    fn serialize_key<K: ?Sized + Serialize>(&mut self, key: &K) -> Result<(), S::Error> {
        let name = key_name(key).unwrap_or_default();
        self.skipping = !self.show.keeps(&name);
        if self.skipping {
            return Ok(());
        }
        self.inner.serialize_key(key)
    }

    fn serialize_value<V: ?Sized + Serialize>(&mut self, value: &V) -> Result<(), S::Error> {
        if std::mem::take(&mut self.skipping) {
            return Ok(());
        }
        self.inner.serialize_value(value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

fn not_a_struct<E: ser::Error>() -> E {
    E::custom("only documents (structs) are shaped")
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<S::Ok, S::Error> { Err(not_a_struct()) })*
    };
}

impl<'a, S: Serializer, R: Serialize> Serializer for ShapeSer<'a, S, R> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = ShapeMap<'a, S::SerializeMap, R>;
    type SerializeStruct = ShapeStruct<'a, S::SerializeStruct, R>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(ShapeStruct {
            inner: self.inner.serialize_struct(name, len)?,
            show: self.show,
            populated: self.populated,
        })
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(not_a_struct())
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(ShapeMap {
            inner: self.inner.serialize_map(len)?,
            show: self.show,
            populated: self.populated,
            skipping: false,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(not_a_struct())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        id: u32,
        status: &'static str,
        notes: Option<&'static str>,
        practitioner_id: Option<u32>,
    }

    #[derive(serde::Serialize)]
    struct Pop {
        id: u32,
        name: &'static str,
    }

    fn doc() -> Doc {
        Doc {
            id: 7,
            status: "submitted",
            notes: None,
            practitioner_id: Some(3),
        }
    }

    fn json<R: Serialize>(s: &Shaped<'_, Doc, R>) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn selection_keeps_the_id_and_what_was_asked() {
        let all = Selection::all();
        let only = Selection::only(vec!["status"]);
        let except = Selection::except(vec!["notes", "status"]);
        let none: Option<(&'static str, ())> = None;
        assert_eq!(
            json(&Shaped {
                doc: doc(),
                select: &all,
                populated: none,
                withheld: vec![],
            }),
            r#"{"id":7,"status":"submitted","notes":null,"practitionerId":3}"#
        );
        assert_eq!(
            json(&Shaped {
                doc: doc(),
                select: &only,
                populated: none,
                withheld: vec![],
            }),
            r#"{"id":7,"status":"submitted"}"#
        );
        assert_eq!(
            json(&Shaped {
                doc: doc(),
                select: &except,
                populated: none,
                withheld: vec![],
            }),
            r#"{"id":7,"practitionerId":3}"#
        );
        // Withheld (a consent does not grant it): absent, whatever the
        // selection says.
        assert_eq!(
            json(&Shaped {
                doc: doc(),
                select: &all,
                populated: none,
                withheld: vec!["notes"],
            }),
            r#"{"id":7,"status":"submitted","practitionerId":3}"#
        );
    }

    #[derive(serde::Serialize)]
    struct Contact {
        email: Option<&'static str>,
        phone: Option<&'static str>,
    }

    #[derive(serde::Serialize)]
    struct Flat {
        id: u32,
        name: &'static str,
        #[serde(flatten)]
        contact: Contact,
    }

    #[test]
    fn flattened_documents_are_shaped_by_key() {
        let only = Selection::only(vec!["email"]);
        let s = Shaped {
            doc: Flat {
                id: 1,
                name: "Dr A",
                contact: Contact {
                    email: Some("a@example.org"),
                    phone: None,
                },
            },
            select: &only,
            populated: None::<(&'static str, ())>,
            withheld: vec![],
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"id":1,"email":"a@example.org"}"#
        );
    }

    #[test]
    fn a_populated_relationship_replaces_its_id() {
        let all = Selection::all();
        let s = Shaped {
            doc: doc(),
            select: &all,
            populated: Some((
                "practitionerId",
                Pop {
                    id: 3,
                    name: "Dr A",
                },
            )),
            withheld: vec![],
        };
        assert_eq!(
            json(&s),
            r#"{"id":7,"status":"submitted","notes":null,"practitionerId":{"id":3,"name":"Dr A"}}"#
        );
    }
}
