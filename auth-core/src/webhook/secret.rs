//! Webhook secrets and the set of secrets active for one sender.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64ct::{Base64UrlUnpadded, Encoding as _};
use zeroize::Zeroizing;

use super::WebhookConfigError;
use crate::secret::{RandomError, random_bytes, sha256};

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Length of a secret in bytes (256 bits, the HMAC-SHA256 output length, RFC 2104 §3).
pub const SECRET_LEN: usize = 32;
/// Unpadded base64url length of [`SECRET_LEN`] bytes.
const SECRET_B64_LEN: usize = 43;
/// How long the previous secret keeps verifying after a rotation by default (24 h).
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A webhook signing secret: 32 bytes shared by a sender and a receiver.
///
/// Wiped on drop (the bytes by `zeroize`, the HMAC key schedule by aws-lc's
/// `HMAC_CTX_cleanup`). `Debug` prints only [`id`](Self::id), a non-secret fingerprint.
/// Its text form is `whsec_` followed by the 32 bytes in unpadded base64url (RFC 4648 §5),
/// 49 characters in all; show it once, when it is created, and keep it sealed at rest
/// (for example with `crypto-envelope`, through [`expose_secret`](Self::expose_secret)).
pub struct WebhookSecret {
    bytes: Zeroizing<[u8; SECRET_LEN]>,
    /// The HMAC-SHA256 key schedule of `bytes`, computed once.
    key: hmac::Key,
}

impl WebhookSecret {
    /// A fresh secret from the system CSPRNG (aws-lc-rs).
    ///
    /// # Errors
    /// [`RandomError`] if the system random generator fails.
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = random_bytes::<SECRET_LEN>()?;
        Ok(Self::from_array(bytes))
    }

    /// A secret from its 32 raw bytes (for example as opened from sealed storage).
    ///
    /// # Errors
    /// [`WebhookConfigError::SecretLength`] unless `bytes` is 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WebhookConfigError> {
        if bytes.len() != SECRET_LEN {
            return Err(WebhookConfigError::SecretLength);
        }
        let mut array = Zeroizing::new([0u8; SECRET_LEN]);
        array.copy_from_slice(bytes);
        Ok(Self::from_array(array))
    }

    /// A secret from its text form, `whsec_` + 43 characters of unpadded base64url.
    ///
    /// # Errors
    /// [`WebhookConfigError::SecretPrefix`] without the `whsec_` prefix,
    /// [`WebhookConfigError::SecretLength`] if the rest is not 43 characters long,
    /// [`WebhookConfigError::SecretEncoding`] if it is not canonical unpadded base64url
    /// (a character outside `A-Za-z0-9-_`, or non-zero trailing bits). The error never
    /// holds the text.
    pub fn parse(text: &str) -> Result<Self, WebhookConfigError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(WebhookConfigError::SecretPrefix)?;
        if encoded.len() != SECRET_B64_LEN {
            return Err(WebhookConfigError::SecretLength);
        }
        let mut array = Zeroizing::new([0u8; SECRET_LEN]);
        // Constant-time decoding (base64ct): the timing does not depend on the secret.
        let decoded = Base64UrlUnpadded::decode(encoded, array.as_mut())
            .map_err(|_| WebhookConfigError::SecretEncoding)?;
        if decoded.len() != SECRET_LEN {
            return Err(WebhookConfigError::SecretLength);
        }
        Ok(Self::from_array(array))
    }

    fn from_array(bytes: Zeroizing<[u8; SECRET_LEN]>) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, bytes.as_ref());
        Self { bytes, key }
    }

    /// The text form, `whsec_` + unpadded base64url (49 characters), wiped on drop.
    /// Show it once, when the secret is created.
    #[must_use]
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut buf = Zeroizing::new([0u8; SECRET_B64_LEN]);
        // Capacity reserved up front: the string never reallocates (no stray copy).
        let mut text = Zeroizing::new(String::with_capacity(SECRET_PREFIX.len() + SECRET_B64_LEN));
        text.push_str(SECRET_PREFIX);
        if let Ok(encoded) = Base64UrlUnpadded::encode(self.bytes.as_ref(), buf.as_mut()) {
            text.push_str(encoded);
        }
        text
    }

    /// The raw 32 bytes, for sealing at rest.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; SECRET_LEN] {
        &self.bytes
    }

    /// A non-secret fingerprint of the secret (16 lowercase hex characters: the first 8
    /// bytes of SHA-256 of `"strongroom webhook secret id\0" || secret`), so that an
    /// operator can tell which secret a sender holds without seeing it.
    #[must_use]
    pub fn id(&self) -> String {
        const LABEL: &[u8] = b"strongroom webhook secret id\0";
        let mut input = Zeroizing::new([0u8; LABEL.len() + SECRET_LEN]);
        input[..LABEL.len()].copy_from_slice(LABEL);
        input[LABEL.len()..].copy_from_slice(self.bytes.as_ref());
        let digest = sha256(input.as_ref());
        base16ct::lower::encode_string(&digest[..8])
    }

    /// The HMAC-SHA256 key.
    pub(super) fn key(&self) -> &hmac::Key {
        &self.key
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// The secrets that verify (or sign) one sender's deliveries: the current one and,
/// during a rotation, the previous one until it expires.
///
/// The previous secret is active while `now < expires_at` (Unix seconds) and refused from
/// `expires_at` on. [`rotate`](Self::rotate) computes the set after a rotation.
// The derived Debug holds no secret: `WebhookSecret`'s own Debug prints its id only.
#[derive(Debug)]
pub struct ActiveSecrets {
    current: WebhookSecret,
    previous: Option<(WebhookSecret, i64)>,
}

impl ActiveSecrets {
    /// Only `current`.
    #[must_use]
    pub fn new(current: WebhookSecret) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Adds the previous secret, active until `expires_at` (Unix seconds, exclusive),
    /// replacing any previous one (as loaded from storage during a rotation).
    #[must_use]
    pub fn with_previous(mut self, previous: WebhookSecret, expires_at: i64) -> Self {
        self.previous = Some((previous, expires_at));
        self
    }

    /// The set after rotating to `next` at `now`: `next` becomes current and the current
    /// secret becomes the previous one, active for `grace` more
    /// ([`DEFAULT_ROTATION_GRACE`] is 24 h). An older previous secret is dropped at
    /// once: rotating twice within a grace period cuts the first grace short, so at most
    /// two secrets are ever active.
    #[must_use]
    pub fn rotate(self, next: WebhookSecret, now: i64, grace: Duration) -> Self {
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        Self {
            current: next,
            previous: Some((self.current, now.saturating_add(grace))),
        }
    }

    /// The current secret.
    #[must_use]
    pub fn current(&self) -> &WebhookSecret {
        &self.current
    }

    /// The previous secret and its expiry (Unix seconds), expired or not.
    #[must_use]
    pub fn previous(&self) -> Option<(&WebhookSecret, i64)> {
        self.previous.as_ref().map(|(s, at)| (s, *at))
    }

    /// The previous secret if it is still active at `now`.
    pub(super) fn active_previous(&self, now: i64) -> Option<&WebhookSecret> {
        self.previous
            .as_ref()
            .filter(|(_, expires_at)| now < *expires_at)
            .map(|(s, _)| s)
    }

    /// The secrets active at `now`: the current one, then the previous one while its
    /// grace period lasts.
    pub fn active(&self, now: i64) -> impl Iterator<Item = &WebhookSecret> {
        std::iter::once(&self.current).chain(self.active_previous(now))
    }
}
