//! The two errors of parsing untrusted text into this crate's types.
//!
//! Both name the field and never echo the input, which may be attacker controlled.

/// A [`UserId`](crate::UserId) or [`AccountId`](crate::AccountId) was refused.
///
/// Names the field (`"user_id"` or `"account_id"`), never the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// The identifier is longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The identifier holds whitespace, a control character or non-ASCII.
    #[error("{field} holds a character other than visible ASCII")]
    InvalidCharacter {
        /// The field.
        field: &'static str,
    },
}

impl IdError {
    /// The name of the offending field.
    #[must_use]
    pub const fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::InvalidCharacter { field } => field,
        }
    }
}

/// Untrusted text did not name a known value (a [`Level`](crate::Level), or a value of
/// a crate that uses this error for its own names, such as grant-policy's operations).
///
/// Names the field, never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: not a recognised value")]
pub struct ParseError {
    field: &'static str,
}

impl ParseError {
    /// The error for `field`.
    #[must_use]
    pub const fn new(field: &'static str) -> Self {
        ParseError { field }
    }

    /// The name of the offending field (`"level"`, or what the caller named).
    #[must_use]
    pub const fn field(&self) -> &'static str {
        self.field
    }
}
