//! grant-policy's integration tests as one test binary: each file below is a module, so the
//! crate and its dependencies are linked once rather than once per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;

mod audit;
mod cache;
mod permit;
mod policy;
mod properties;
mod risk;
mod status;
mod vectors;
