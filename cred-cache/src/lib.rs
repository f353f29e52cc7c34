#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod cache;
mod credential;
mod error;
mod ids;
pub mod invalidation;
mod source;
mod stats;

#[cfg(feature = "remote")]
pub mod danger;
#[cfg(feature = "envelope")]
pub mod local;
#[cfg(feature = "envelope")]
pub mod record;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "remote")]
pub mod remote;

pub use cache::{
    CredCache, CredCacheBuilder, DEFAULT_MAINTENANCE_INTERVAL, DEFAULT_MAX_CAPACITY, DEFAULT_TTL,
    MAX_MAINTENANCE_INTERVAL, MAX_TTL, MIN_MAINTENANCE_INTERVAL,
};
pub use credential::{ExchangeCredential, MAX_FIELD_LEN};
// The vocabulary shared with the policy engine (`access-types`): one type each,
// whichever crate names it.
pub use access_types::{
    AccessPermit, AccountId, IdError, Level, MAX_ID_LEN, OwnerPermit, ParseError, UserId,
};
pub use error::{ConfigError, CredentialError, FetchError, PublishError};
pub use ids::CacheKey;
pub use invalidation::{Invalidation, InvalidationMessage, InvalidationPublisher};
pub use source::CredentialSource;
pub use stats::CacheStats;
