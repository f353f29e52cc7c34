#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod audit;
mod clock;
mod decision;
mod error;
mod grant;
mod operation;
mod permit;
mod policy;
mod risk;
pub mod store;

pub use audit::{AuditSink, DecisionEvent, GrantEvent, RiskEvent, TracingAuditSink};
pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Decision, DenyReason};
// The vocabulary shared with cred-cache (`access-types`): one type each, whichever crate
// names it.
pub use access_types::{
    AccessPermit, AccountId, IdError, Level, MAX_ID_LEN, OwnerPermit, ParseError, UserId,
};
pub use error::{ConfigError, GrantError, NotionalError, RiskError, StoreError};
pub use grant::{Access, Role, Share};
pub use operation::{Operation, Requirement};
pub use permit::{Ownership, Permit};
pub use policy::{AccountAccess, Policy, PolicyBuilder};
// The stores at the root too, as in the sibling crates (`grant_policy::SqliteStore`).
pub use risk::{
    Admission, CredentialsOnFile, Notional, Reservation, RiskGuard, RiskGuardBuilder, RiskLimits,
    RiskRefusal, SECONDS_PER_DAY, Usage, utc_day,
};
pub use store::{GrantStore, MemoryStore, RiskStore};
#[cfg(feature = "postgres")]
#[allow(deprecated)] // The old name, kept one release.
pub use store::{PgStore, PostgresStore};
#[cfg(feature = "sqlite")]
pub use store::{SqliteStore, SqliteStoreBuilder};
