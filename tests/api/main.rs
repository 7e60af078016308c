//! Integration tests: the real server on port 0 against a real PostgreSQL
//! (the private cluster started by `deploy/test.sh`), a fresh database per test.

mod helpers;
mod import;
mod testdb;

mod access;
mod accounting;
mod audit;
mod backup;
mod cli;
mod cluster;
mod disclosure;
mod faults;
mod fields;
mod front_door;
mod health;
mod herbs;
mod http_errors;
mod kek;
mod limits;
mod logout;
mod managed;
mod migrations;
mod operations;
mod payload;
mod payload_app;
mod plans;
mod pooler;
mod practitioners;
mod refusals;
mod replica;
mod retention;
mod rotation;
mod scale;
mod schema;
mod schemathesis;
mod sdk;
mod statements;
mod submissions;
mod tls;
mod trace_context;
