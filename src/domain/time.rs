//! Dates and times as the API and the command line spell them, parsed here
//! and nowhere else: a date is `YYYY-MM-DD`; an instant is an RFC 3339 time,
//! or a date (its midnight, UTC).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

/// `YYYY-MM-DD`.
pub fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// An RFC 3339 time, or a date (its midnight, UTC).
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| date(s).map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()))
}

/// What `instant` takes, said once for error messages and the document.
pub const INSTANT_RULE: &str = "must be a date (YYYY-MM-DD) or an RFC 3339 time";

/// An instant as a parameter: parsed by `instant`, documented as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub DateTime<Utc>);

impl std::str::FromStr for Instant {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        instant(s).map(Instant).ok_or(INSTANT_RULE)
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Instant {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A date (YYYY-MM-DD, its midnight UTC) or an RFC 3339 time",
            ))
            .examples(["2026-01-01", "2026-01-01T12:00:00Z"])
            .into()
    }
}

impl utoipa::ToSchema for Instant {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_is_a_time_or_a_dates_midnight() {
        let t = instant("2026-03-04T05:06:07+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-04T04:06:07+00:00");
        let d = instant("2026-03-04").unwrap();
        assert_eq!(d.to_rfc3339(), "2026-03-04T00:00:00+00:00");
        for bad in ["", "2026-13-01", "04/03/2026", "2026-03-04 05:06", "now"] {
            assert!(instant(bad).is_none(), "{bad}");
        }
        assert_eq!(date("2026-02-29"), None);
        assert_eq!(date("2028-02-29"), NaiveDate::from_ymd_opt(2028, 2, 29));
    }
}
