//! Trimtab's functional core: prices, the duration-vs-memory model and the right-sizing optimiser.
//!
//! Architecture Invariant: nothing here performs I/O, reads the clock, spawns tasks or knows an
//! AWS SDK type. Inputs are plain structs the adapters fill in; outputs are plain data (reports and
//! plans) the shell prints, records or carries out. Every function is deterministic.

pub mod actuation;
pub mod api_capacity;
pub mod apply;
pub mod business_hours;
pub mod calendar;
pub mod capacity;
pub mod concurrency;
pub mod cost;
pub mod environment;
pub mod evidence;
pub mod fit;
pub mod forecast;
pub mod judge;
pub mod model;
pub mod monitor;
pub mod own_cost;
pub mod predictive;
pub mod pricing;
pub mod quota;
pub mod records;
pub mod rightsizing;
pub mod scaling_plan;
pub mod slo;
pub mod stats;
pub mod tags;
pub mod zone;
