//! A submission's region: an ISO 3166-1 country code (`GB`) or ISO 3166-2
//! subdivision code (`CA-ON`), from a fixed vocabulary, never free text (a
//! free-text field is where a street address ends up).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::iso3166::CODES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region(&'static str);

impl Region {
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        CODES
            .binary_search(&upper.as_str())
            .ok()
            .map(|i| Region(CODES[i]))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Region::parse(&s).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other("text"),
                &"an ISO 3166 code such as CA-ON, GB-SCT or DE",
            )
        })
    }
}

impl utoipa::PartialSchema for Region {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$"))
            .description(Some(
                "ISO 3166-1 alpha-2 country or ISO 3166-2 subdivision code (e.g. CA-ON)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Region {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_sorted_and_codes_parse() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Region::parse("ca-on").unwrap().as_str(), "CA-ON");
        assert_eq!(Region::parse("GB").unwrap().as_str(), "GB");
        assert!(Region::parse("Ontario").is_none());
        assert!(Region::parse("12 Main Street").is_none());
        assert!(Region::parse("XX-ZZZ").is_none());
    }
}
