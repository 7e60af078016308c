//! Demo data (through the same services the API uses) and large synthetic
//! sets for benchmarks (batched `INSERT .. SELECT FROM UNNEST(..)`, values
//! sealed in process exactly as the services seal them). The data both draw
//! from is in `data`.

mod bulk;
pub mod data;
mod demo;

pub use bulk::bulk;
pub use data::{CITIES, CLASSICAL_HERBS, Rng};
pub use demo::{DemoUsers, demo};
