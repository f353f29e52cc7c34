#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod chain;
pub mod credential;
pub mod principal;
pub mod sso;

pub use chain::{Chain, ChainBuilder, Outcome, Refusal, Resolution, Resolver};
pub use credential::{Credential, CredentialKind, ExtractError};
pub use principal::{AuthMethod, Principal};
