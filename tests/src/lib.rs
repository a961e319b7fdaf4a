//! The emulator harness shared by the integration tests and the demo: a moto server per test,
//! realistic seed data, and the workloads the acceptance names.
//!
//! This crate talks to the AWS SDK directly, but only ever to a loopback emulator
//! ([`moto::sdk_config_for`] refuses anything else): seeding needs write calls (create functions,
//! put metrics and logs) that production code has no business making.

pub mod api;
pub mod costs;
pub mod demo;
pub mod fidelity;
pub mod fleet;
pub mod moto;
pub mod naive;
pub mod seed;
pub mod stub;
pub mod template;
