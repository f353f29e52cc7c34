//! User and account identifiers.
//!
//! Plain, validated strings: who acts ([`UserId`]) and on which exchange account
//! ([`AccountId`]; an account has one exchange API key, so the account id also names
//! its stored credential). Ids are not secrets: they appear in `Debug`, audit records,
//! tracing events and invalidation messages. The validation (1 to [`MAX_ID_LEN`] bytes
//! of visible ASCII, no whitespace or control characters) keeps anything an attacker
//! controls from forging a log line or a message.

use core::fmt;
use core::str::FromStr;
use std::sync::Arc;

use crate::error::IdError;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

fn validate(field: &'static str, value: &str) -> Result<Arc<str>, IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { field });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            field,
            max: MAX_ID_LEN,
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdError::InvalidCharacter { field });
    }
    Ok(Arc::from(value))
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
            #[doc = concat!("[`IdError`] naming `", $field, "` when the input is empty, longer than [`MAX_ID_LEN`] bytes, or holds anything but visible ASCII.")]
            pub fn new(value: &str) -> Result<Self, IdError> {
                validate($field, value).map(Self)
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

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }
    };
}

id_type!(
    /// A user of the embedding service: the subject of a decision, the user on whose
    /// behalf a credential is used. The service's own identifier, after authentication.
    UserId,
    "user_id"
);
id_type!(
    /// An exchange account: one registered exchange API key, and so also the id of the
    /// stored credential of that key.
    AccountId,
    "account_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_validated_and_errors_name_the_field() {
        assert!(UserId::new("user-1@example").is_ok());
        assert!(AccountId::new("acct-7f3a_01:binance").is_ok());
        assert_eq!(
            UserId::new("").unwrap_err(),
            IdError::Empty { field: "user_id" }
        );
        assert_eq!(AccountId::new("a b").unwrap_err().field(), "account_id");
        assert!(UserId::new("x\nINFO forged").is_err());
        assert!(UserId::new("é").is_err());
        assert!(AccountId::new(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            AccountId::new(&"x".repeat(MAX_ID_LEN + 1)).unwrap_err(),
            IdError::TooLong {
                field: "account_id",
                max: MAX_ID_LEN
            }
        );
        assert_eq!("alice".parse::<UserId>().unwrap().as_str(), "alice");
        assert_eq!(AccountId::try_from("a").unwrap().to_string(), "a");
        assert_eq!(
            format!("{:?}", UserId::new("bob").unwrap()),
            "UserId(\"bob\")"
        );
    }

    proptest! {
        #[test]
        fn accepted_ids_round_trip_and_errors_never_echo(s in "\\PC{0,140}") {
            match UserId::new(&s) {
                Ok(id) => {
                    prop_assert_eq!(id.as_str(), s.as_str());
                    prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
                }
                Err(e) => {
                    prop_assert_eq!(e.field(), "user_id");
                    if !s.is_empty() {
                        prop_assert!(!e.to_string().contains(s.as_str()));
                    }
                }
            }
        }
    }
}
