//! Plain identifiers: who asks ([`UserId`]), for which stored credential
//! ([`CredentialId`]), at which [`AccessLevel`], and the [`CacheKey`] they form.
//!
//! Identifiers are not secrets: they appear in `Debug`, in tracing events and in
//! invalidation messages. They are validated on construction (1 to
//! [`MAX_ID_LEN`] bytes of visible ASCII, no whitespace or control characters) so
//! that nothing an attacker controls can forge a log line or an invalidation
//! message.

use std::fmt;
use std::sync::Arc;

use crate::error::IdError;

/// Longest accepted identifier, in bytes.
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
            /// Validates and wraps an identifier.
            ///
            /// # Errors
            ///
            /// [`IdError`] naming the field when the value is empty, longer than
            /// [`MAX_ID_LEN`] bytes, or holds anything but visible ASCII.
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

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }
    };
}

id_type!(
    /// The user on whose behalf a credential is used (the embedding service's
    /// own identifier, after authentication and authorisation).
    UserId,
    "user_id"
);
id_type!(
    /// A stored exchange credential (one exchange account's API key).
    CredentialId,
    "credential_id"
);

/// What a credential will be used for. `Read < Trade`.
///
/// The level is part of the cache key: a credential fetched for reading is
/// never served to a trading call, so a read-only grant can never be widened
/// by the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessLevel {
    /// Balances, orders, trades, positions: nothing that moves money.
    Read,
    /// Creating, editing and cancelling orders.
    Trade,
}

impl AccessLevel {
    /// The wire name: `"read"` or `"trade"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trade => "trade",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cache key: (user, credential, level).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    user: UserId,
    credential: CredentialId,
    level: AccessLevel,
}

impl CacheKey {
    /// Builds a key.
    #[must_use]
    pub const fn new(user: UserId, credential: CredentialId, level: AccessLevel) -> Self {
        Self {
            user,
            credential,
            level,
        }
    }

    /// The user.
    #[must_use]
    pub const fn user(&self) -> &UserId {
        &self.user
    }

    /// The credential.
    #[must_use]
    pub const fn credential(&self) -> &CredentialId {
        &self.credential
    }

    /// The access level.
    #[must_use]
    pub const fn level(&self) -> AccessLevel {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated_and_errors_name_the_field() {
        assert!(UserId::new("user-1@example").is_ok());
        let e = UserId::new("").unwrap_err();
        assert!(e.to_string().contains("user_id"));
        let e = CredentialId::new("a b").unwrap_err();
        assert!(matches!(
            e,
            IdError::InvalidCharacter {
                field: "credential_id"
            }
        ));
        assert!(CredentialId::new("x\n").is_err());
        assert!(CredentialId::new(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(matches!(
            CredentialId::new(&"x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { .. })
        ));
        assert!(UserId::new("é").is_err());
    }

    #[test]
    fn levels_are_ordered() {
        assert!(AccessLevel::Read < AccessLevel::Trade);
        assert_eq!(AccessLevel::Trade.to_string(), "trade");
    }
}
