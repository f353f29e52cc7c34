#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod error;
mod id;
mod level;
mod permit;

pub use error::{IdError, ParseError};
pub use id::{AccountId, MAX_ID_LEN, UserId};
pub use level::Level;
pub use permit::{AccessPermit, OwnerPermit};
