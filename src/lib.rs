//! phi-gateway: an encrypted PHI storage gateway for a health CMS.
//!
//! See ARCHITECTURE.md for the map; the request path is
//! `routes` -> `service` -> (`crypto`, `store`, `audit`) inside one
//! request-scoped transaction opened by `store::begin`.

pub mod apikeys;
pub mod audit;
pub mod auth;
pub mod certs;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod gate;
pub mod identity;
pub mod import;
pub mod keyreload;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod progress;
pub mod query;
pub mod random;
pub mod rekey;
pub mod replica;
pub mod routes;
pub mod schema;
pub mod seed;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trace;
