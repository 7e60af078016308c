//! Points on the earth, checked with the `geo` crate, and distances: what
//! the API calls a distance (a radius asked for, a `distanceM` answered) is
//! the great-circle distance on the mean earth radius, computed by `geo`'s
//! Haversine. PostgreSQL's earthdistance measures on a larger sphere; the
//! store asks it for the same arcs (`on_earthdistance_sphere`), so that a
//! practitioner answered within 25 km is within 25 km by `distanceM` too.

use ::geo::{Distance, Haversine, Point};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::rules::err;

/// `{lat, lon}` as the API speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "finite_point"))]
pub struct Location {
    #[validate(custom(function = "latitude"))]
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[validate(custom(function = "longitude"))]
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}

fn latitude(v: f64) -> Result<(), ValidationError> {
    (v.is_finite() && (-90.0..=90.0).contains(&v))
        .then_some(())
        .ok_or_else(|| err("range", "must be a number from -90 to 90"))
}

fn longitude(v: f64) -> Result<(), ValidationError> {
    (v.is_finite() && (-180.0..=180.0).contains(&v))
        .then_some(())
        .ok_or_else(|| err("range", "must be a number from -180 to 180"))
}

fn finite_point(l: &Location) -> Result<(), ValidationError> {
    let p = l.point();
    (p.x().is_finite() && p.y().is_finite())
        .then_some(())
        .ok_or_else(|| err("finite", "must be a finite point"))
}

impl Location {
    pub fn point(&self) -> Point<f64> {
        Point::new(self.lon, self.lat)
    }
}

/// Great-circle distance in meters (mean earth radius 6,371,008.8 m).
pub fn haversine_m(a: Location, b: Location) -> f64 {
    Haversine.distance(a.point(), b.point())
}

/// earthdistance's sphere (radius 6,378,168 m) gives distances about 0.11%
/// longer than `haversine_m`; the proximity query uses it.
pub const EARTHDISTANCE_RADIUS_M: f64 = 6_378_168.0;

/// `geo`'s mean earth radius, which `haversine_m` measures on.
pub const MEAN_EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A distance on the mean earth radius as earthdistance measures the same
/// arc (what the store binds for a radius).
pub fn on_earthdistance_sphere(m: f64) -> f64 {
    m * (EARTHDISTANCE_RADIUS_M / MEAN_EARTH_RADIUS_M)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_radius_is_the_same_arc_on_either_sphere() {
        let a = Location {
            lat: 51.5,
            lon: -0.12,
        };
        let b = Location {
            lat: 51.7,
            lon: 0.1,
        };
        let arc = haversine_m(a, b) / MEAN_EARTH_RADIUS_M;
        let on_earthdistance = arc * EARTHDISTANCE_RADIUS_M;
        assert!((on_earthdistance_sphere(haversine_m(a, b)) - on_earthdistance).abs() < 1e-6);
    }

    #[test]
    fn london_to_paris_is_about_344_km() {
        let london = Location {
            lat: 51.5074,
            lon: -0.1278,
        };
        let paris = Location {
            lat: 48.8566,
            lon: 2.3522,
        };
        let d = haversine_m(london, paris);
        assert!((d - 343_560.0).abs() < 1_000.0, "{d}");
    }

    #[test]
    fn out_of_range_and_non_finite_points_fail() {
        assert!(
            Location {
                lat: 91.0,
                lon: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Location {
                lat: 0.0,
                lon: -180.5
            }
            .validate()
            .is_err()
        );
        assert!(
            Location {
                lat: f64::NAN,
                lon: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Location {
                lat: 0.0,
                lon: f64::INFINITY
            }
            .validate()
            .is_err()
        );
        assert!(
            Location {
                lat: -90.0,
                lon: 180.0
            }
            .validate()
            .is_ok()
        );
    }
}
