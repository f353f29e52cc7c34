//! crypto-envelope's integration tests as one test binary: each file below is a module, so the
//! crate and its dependencies are linked once rather than once per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;

mod awskms;
mod backend_rewrap;
mod cache;
mod envelope;
mod migration;
mod pkcs11;
mod rotation;
mod status;
mod store;
mod transit;
mod transit_answers;
mod vectors;
