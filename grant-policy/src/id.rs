//! User and account identifiers.
//!
//! Plain, validated strings: the crate stays independent of how the embedding service
//! authenticates users or stores credentials. Ids are not secrets and appear in audit
//! records; the validation (1 to 128 printable ASCII bytes, no spaces or control
//! characters) keeps them from forging lines in a log.

use core::fmt;
use std::sync::Arc;

use crate::error::IdError;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an identifier from untrusted input.
            ///
            /// # Errors
            ///
            #[doc = concat!("[`IdError`] naming `", $field, "` when the input is empty, longer than [`MAX_ID_LEN`] bytes, or holds anything but printable ASCII.")]
            pub fn new(id: &str) -> Result<Self, IdError> {
                if valid(id) {
                    Ok($name(Arc::from(id)))
                } else {
                    Err(IdError::new($field))
                }
            }

            /// The identifier as a string.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&&*self.0).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl core::str::FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }
    };
}

id_type!(
    /// Identifies a user of the embedding service (the subject of a decision).
    UserId,
    "user_id"
);
id_type!(
    /// Identifies an exchange account (one registered exchange API key).
    AccountId,
    "account_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation() {
        assert!(UserId::new("alice").is_ok());
        assert!(AccountId::new("acct-7f3a_01:binance").is_ok());
        assert_eq!(UserId::new("").unwrap_err().field(), "user_id");
        assert_eq!(AccountId::new("a b").unwrap_err().field(), "account_id");
        assert!(UserId::new("x\nINFO forged").is_err());
        assert!(UserId::new("é").is_err());
        assert!(UserId::new(&"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(UserId::new(&"a".repeat(MAX_ID_LEN + 1)).is_err());
    }

    proptest! {
        #[test]
        fn accepted_ids_round_trip(s in "\\PC{0,140}") {
            match UserId::new(&s) {
                Ok(id) => {
                    prop_assert_eq!(id.as_str(), s.as_str());
                    prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
                }
                Err(e) => {
                    prop_assert_eq!(e.field(), "user_id");
                    prop_assert!(!valid(&s));
                }
            }
        }
    }
}
