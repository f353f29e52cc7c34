//! Criterion benchmarks for Strongroom. The benchmarks live in `benches/`; each group
//! puts a Strongroom hot path beside the raw primitive it is built on (and, where one
//! exists, a peer library) so that the ratio is read off one run.
//!
//! Run them with `cargo bench -p strongroom-benches`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
