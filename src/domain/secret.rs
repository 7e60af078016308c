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
    /// validator's HTML5 rule, with the common case (an ASCII address of
    /// letters, digits and the allowed marks) decided without its regexes,
    /// which cost about 3% of a create's CPU (BENCHMARKS.md, issue 26).
    /// Whatever the fast check does not accept goes to validator itself
    /// (IP literals, international domains, refusals), so the answer is
    /// always validator's: `tests::the_fast_email_check_is_validators`.
    fn validate_email(&self) -> bool {
        plain_ascii_email(&self.0) || validator::ValidateEmail::validate_email(&self.0.as_str())
    }

    fn as_email_string(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(std::borrow::Cow::Borrowed(&self.0))
    }
}

/// An address validator accepts, by its own rules written out for ASCII:
/// a local part of 1-64 of `[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]`, an `@`, and a
/// domain of dot-separated labels of 1-63 letters, digits and inner
/// hyphens, 255 characters at most. `false` means "ask validator", not
/// "invalid".
fn plain_ascii_email(s: &str) -> bool {
    let Some((user, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let user_ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    user_ok && domain.len() <= 255 && domain.split('.').all(label_ok)
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
    use proptest::prelude::*;
    use validator::ValidateEmail;

    fn validators(s: &str) -> bool {
        s.validate_email()
    }

    #[test]
    fn the_fast_email_check_agrees_on_known_cases() {
        let long_user = format!("{}@example.org", "a".repeat(65));
        let long_label = format!("ann@{}.org", "a".repeat(64));
        for (s, ok) in [
            ("ann@example.org", true),
            ("a.b+tag@sub-domain.example.co.uk", true),
            ("x@localhost", true),
            ("@example.org", false),
            ("ann@", false),
            ("ann@-example.org", false),
            ("ann@example-.org", false),
            ("ann@example..org", false),
            ("ann@.example.org", false),
            ("a b@example.org", false),
            ("ann@[127.0.0.1]", true),
            ("ann@b\u{fc}cher.example", true),
            ("ann@@example.org", false),
            (long_user.as_str(), false),
            (long_label.as_str(), false),
        ] {
            let checked = SecretText(s.to_string()).validate_email();
            assert_eq!(checked, ok, "{s:?}");
            assert_eq!(checked, validators(s), "{s:?}");
        }
    }

    proptest! {
        /// The fast path accepts nothing validator refuses, and the whole
        /// check answers as validator does.
        #[test]
        fn the_fast_email_check_is_validators(
            s in "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~@ \\[\\]:\u{e9}-]{0,80}",
        ) {
            if plain_ascii_email(&s) {
                prop_assert!(validators(&s), "{:?}", s);
            }
            prop_assert_eq!(SecretText(s.clone()).validate_email(), validators(&s), "{:?}", s);
        }

        #[test]
        fn the_fast_email_check_is_validators_on_address_shapes(
            user in "[a-z0-9.+_-]{0,70}",
            labels in proptest::collection::vec("[a-zA-Z0-9-]{0,70}", 0..5),
        ) {
            let s = format!("{user}@{}", labels.join("."));
            if plain_ascii_email(&s) {
                prop_assert!(validators(&s), "{:?}", s);
            }
            prop_assert_eq!(SecretText(s.clone()).validate_email(), validators(&s), "{:?}", s);
        }
    }

    #[test]
    fn never_printed_and_round_trips_as_a_string() {
        let s = SecretText::from("ann@example.org");
        assert!(!format!("{s:?}").contains("ann"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"ann@example.org\"");
        let back: SecretText = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.as_str(), "x");
    }
}
