//! `SecretText`: a PHI string (a note, an email, a symptom's name) that is
//! wiped from memory when dropped and never printed.
//!
//! It is what a sealed text field becomes when opened, and what a request's
//! PHI field is parsed into, so the domain types hold plaintext only in this
//! form. It serializes as a plain JSON string (the response needs the
//! value) and deserializes from one. What it cannot cover is listed in
//! README.md ("Plaintext in memory").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn chars_count(&self) -> usize {
        self.0.chars().count()
    }

    /// A trimmed copy; the original is wiped when dropped as usual.
    pub fn trimmed(&self) -> Self {
        Self(self.0.trim().to_string())
    }
}

impl From<&str> for SecretText {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for SecretText {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText({} bytes)", self.0.len())
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl validator::ValidateLength<u64> for SecretText {
    fn length(&self) -> Option<u64> {
        Some(self.0.chars().count() as u64)
    }
}

impl validator::ValidateEmail for SecretText {
    fn as_email_string(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Borrowed(&self.0))
    }
}

impl utoipa::PartialSchema for SecretText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

impl utoipa::ToSchema for SecretText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_and_round_trips_as_a_string() {
        let s = SecretText::from("ann@example.org");
        assert!(!format!("{s:?}").contains("ann"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ann@example.org\"");
        let back: SecretText = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.as_str(), "x");
    }
}
