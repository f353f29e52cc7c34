//! Configuration errors shared by the resolvers built from configured secrets.

/// A configuration value was refused. Names the field, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configured secret is shorter than the minimum (guessable).
    #[error("{field} must be at least {min} characters")]
    SecretTooShort {
        /// The configuration field.
        field: &'static str,
        /// Minimum length.
        min: usize,
    },
    /// A configured secret is too long or not visible ASCII, so no request could ever
    /// present it.
    #[error("{field} must be visible ASCII of at most {max} characters")]
    SecretMalformed {
        /// The configuration field.
        field: &'static str,
        /// Maximum length.
        max: usize,
    },
    /// A user id is empty.
    #[error("{field} must not be empty")]
    EmptyUserId {
        /// The configuration field.
        field: &'static str,
    },
    /// A configured value does not have the expected form.
    #[error("{field} must be {expected}")]
    Invalid {
        /// The configuration field.
        field: &'static str,
        /// The expected form (never the value).
        expected: &'static str,
    },
}

/// Minimum length of a configured static token or internal secret.
pub const MIN_CONFIGURED_SECRET_LEN: usize = 32;

/// Checks a configured secret against what extraction would accept.
pub(crate) fn check_configured_secret(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), ConfigError> {
    if value.len() < MIN_CONFIGURED_SECRET_LEN {
        return Err(ConfigError::SecretTooShort {
            field,
            min: MIN_CONFIGURED_SECRET_LEN,
        });
    }
    if value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::SecretMalformed { field, max });
    }
    Ok(())
}
