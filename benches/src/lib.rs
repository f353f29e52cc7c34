//! Criterion benchmarks for Strongroom. The benchmarks live in `benches/`; each group
//! puts a Strongroom hot path beside the raw primitive it is built on (and, where one
//! exists, a peer library) so that the ratio is read off one run.
//!
//! Run them with `cargo bench --manifest-path benches/Cargo.toml`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
