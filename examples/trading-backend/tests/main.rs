//! The reference backend's integration tests as one test binary: each file below is a
//! module, so the crate and its dependencies are linked once rather than once per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;

mod attack;
mod attack_copy;
mod audit;
mod browser;
mod compose;
mod copy_trading;
mod edge;
mod grant_cache;
mod housekeeping;
mod instances;
mod journey;
mod kek;
mod key_not_held;
mod lifecycle;
mod limits;
mod metrics;
mod mfa;
mod openapi;
mod operations;
mod orders;
mod postgres;
mod rewrap;
mod service;
mod sso;
mod throttle;
mod tokens;
mod venue;
