//! The cached value: [`ExchangeCredential`].

use std::fmt;

use zeroize::Zeroizing;

use crate::error::CredentialError;
use access_types::AccountId;

/// Longest accepted API key, secret or passphrase, in bytes.
pub const MAX_FIELD_LEN: usize = 1024;

/// A decrypted exchange credential: API key, API secret and, for exchanges that
/// use one, a passphrase; plus whether the key was registered read-only.
///
/// * Every secret field lives in a [`Zeroizing`] buffer, wiped when the value
///   drops. The cache shares one value as `Arc<ExchangeCredential>`, so the
///   bytes are wiped when the *last* holder lets go: the cache entry has been
///   evicted, expired or invalidated, and every caller that borrowed it is done.
/// * No `Clone`: copies of the secret are never made behind your back.
/// * `Debug` prints the credential id, the read-only flag and whether a
///   passphrase is present, nothing else.
/// * The bytes come out only through the explicit `expose_*` accessors. Keep
///   what they return on the stack of the call that signs the exchange request.
pub struct ExchangeCredential {
    credential: AccountId,
    api_key: Zeroizing<String>,
    secret: Zeroizing<String>,
    passphrase: Option<Zeroizing<String>>,
    read_only: bool,
}

fn check(field: &'static str, value: &str) -> Result<(), CredentialError> {
    if value.is_empty() {
        return Err(CredentialError::Empty { field });
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(CredentialError::TooLong {
            field,
            max: MAX_FIELD_LEN,
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialError::InvalidCharacter { field });
    }
    Ok(())
}

impl ExchangeCredential {
    /// Builds a credential. Each secret field must be 1 to [`MAX_FIELD_LEN`]
    /// bytes of visible ASCII (what every major exchange issues); a refused
    /// field is named in the error, its value never.
    ///
    /// # Errors
    ///
    /// [`CredentialError`] naming `api_key`, `secret` or `passphrase`.
    pub fn new(
        credential: AccountId,
        api_key: Zeroizing<String>,
        secret: Zeroizing<String>,
        passphrase: Option<Zeroizing<String>>,
        read_only: bool,
    ) -> Result<Self, CredentialError> {
        check("api_key", &api_key)?;
        check("secret", &secret)?;
        if let Some(p) = &passphrase {
            check("passphrase", p)?;
        }
        Ok(Self {
            credential,
            api_key,
            secret,
            passphrase,
            read_only,
        })
    }

    /// The credential's id (not secret).
    #[must_use]
    pub const fn credential_id(&self) -> &AccountId {
        &self.credential
    }

    /// Whether the key was registered read-only: such a credential is never
    /// handed out for [`Level::Trade`](crate::Level::Trade).
    #[must_use]
    pub const fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The API key. Secret: never log it.
    #[must_use]
    pub fn expose_api_key(&self) -> &str {
        &self.api_key
    }

    /// The API secret. Secret: never log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }

    /// The passphrase, if the exchange uses one. Secret: never log it.
    #[must_use]
    pub fn expose_passphrase(&self) -> Option<&str> {
        self.passphrase.as_deref().map(String::as_str)
    }
}

impl fmt::Debug for ExchangeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeCredential")
            .field("credential", &self.credential)
            .field("read_only", &self.read_only)
            .field("has_passphrase", &self.passphrase.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[test]
    fn fields_are_validated_by_name() {
        let id = AccountId::new("c1").unwrap();
        let e = ExchangeCredential::new(id.clone(), z(""), z("s"), None, false).unwrap_err();
        assert_eq!(e, CredentialError::Empty { field: "api_key" });
        let e = ExchangeCredential::new(id.clone(), z("k"), z("s e"), None, false).unwrap_err();
        assert_eq!(e, CredentialError::InvalidCharacter { field: "secret" });
        let e = ExchangeCredential::new(
            id.clone(),
            z("k"),
            z("s"),
            Some(z(&"p".repeat(2000))),
            false,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            CredentialError::TooLong {
                field: "passphrase",
                ..
            }
        ));
        let c = ExchangeCredential::new(id, z("k"), z("s"), Some(z("p")), true).unwrap();
        assert_eq!(c.expose_api_key(), "k");
        assert_eq!(c.expose_secret(), "s");
        assert_eq!(c.expose_passphrase(), Some("p"));
        assert!(c.is_read_only());
    }

    #[test]
    fn debug_shows_ids_only() {
        let id = AccountId::new("c1").unwrap();
        let c = ExchangeCredential::new(
            id,
            z("KEYCANARY"),
            z("SECRETCANARY"),
            Some(z("PASSCANARY")),
            false,
        )
        .unwrap();
        let d = format!("{c:?} {c:#?}");
        assert!(d.contains("c1"));
        assert!(!d.contains("CANARY"), "{d}");
    }
}
