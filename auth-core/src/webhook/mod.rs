//! Signed webhooks: a verifier for inbound deliveries and a signer for outbound ones.
//!
//! A webhook sender signs each delivery with a shared secret and sends the signature in
//! one header beside the raw body:
//!
//! ```text
//! X-Strongroom-Signature: t=1700000000,v1=<64 lowercase hex digits>
//! ```
//!
//! where `v1` is HMAC-SHA256 (RFC 2104, FIPS 180-4) keyed with the 32-byte secret over
//! the bytes `"<t>." || body`. The full scheme, precise enough for a sender written in
//! another language, and its test vectors are in `auth-core/WEBHOOKS.md`.
//!
//! * [`WebhookSecret`]: 32 random bytes, wiped on drop, text form `whsec_` + unpadded
//!   base64url (shown once, [`WebhookSecret::to_text`]).
//! * [`ActiveSecrets`]: a sender's current secret and, during a rotation, the previous
//!   one until its grace period ends (default [`DEFAULT_ROTATION_GRACE`], 24 h).
//! * [`SignatureHeader`]: the strict, bounded parser of the header value.
//! * [`Signer`]: produces the header value for an outbound delivery.
//! * [`Verifier`]: checks the time window and the HMAC in constant time over the raw
//!   bytes ([`Verifier::verify_signature`], synchronous and pure), then claims the
//!   delivery in a [`ReplayGuard`] shared by every instance ([`Verifier::verify`]), so a
//!   delivery is executed at most once.
//! * [`ReplayGuard`]: [`MemoryReplayGuard`] (one instance), and the SQL stores
//!   `SqliteStore` / `PgStore` (table `auth_webhook_replay`, migration 20040).
//!
//! A refusal is a [`WebhookError`]: 401 for every signature problem, 503 when the replay
//! guard cannot answer. Its [`code`](WebhookError::code) is for logs; the HTTP body says
//! nothing about which check failed.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! # rt.block_on(async {
//! use std::sync::Arc;
//!
//! use auth_core::webhook::{
//!     ActiveSecrets, Delivery, MemoryReplayGuard, Signer, Verifier, WebhookSecret,
//! };
//!
//! // The receiver creates the secret, shows its text once, and keeps it (sealed).
//! let secret = WebhookSecret::generate()?;
//! let text = secret.to_text(); // give this to the sender, once
//!
//! // The sender signs the raw body it is about to send.
//! let signer = Signer::new(WebhookSecret::parse(&text)?);
//! let body = br#"{"event":"signal","symbol":"BTC-USD"}"#;
//! let header = signer.sign(1_700_000_000, body);
//!
//! // The receiver checks the raw body, before any JSON parsing.
//! let verifier = Verifier::builder(Arc::new(MemoryReplayGuard::default())).build()?;
//! let secrets = ActiveSecrets::new(secret);
//! let now = 1_700_000_004;
//! let first = verifier
//!     .verify("partner-1", Some(&header), body, &secrets, now, "signal-1")
//!     .await?;
//! assert!(matches!(first, Delivery::Accepted { .. }));
//! // The same delivery again is not executed twice.
//! let again = verifier
//!     .verify("partner-1", Some(&header), body, &secrets, now, "signal-2")
//!     .await?;
//! assert!(matches!(again, Delivery::Duplicate { ref reference, .. } if reference == "signal-1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok(())
//! # }
//! ```

mod error;
mod header;
mod replay;
mod secret;
mod sign;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod verify;

pub use error::{WebhookConfigError, WebhookError};
pub use header::{
    MAX_HEADER_LEN, MAX_SIGNATURES, SIGNATURE_HEADER, SignatureHeader, signature_header_value,
};
pub use replay::{Claim, DEFAULT_REPLAY_CAPACITY, MemoryReplayGuard, ReplayGuard};
pub use secret::{ActiveSecrets, DEFAULT_ROTATION_GRACE, SECRET_LEN, SECRET_PREFIX, WebhookSecret};
pub use sign::Signer;
pub use verify::{
    DEFAULT_TOLERANCE, Delivery, MAX_TOLERANCE, MatchedSecret, VerifiedSignature, Verifier,
    VerifierBuilder,
};

use aws_lc_rs::hmac;

/// The HMAC-SHA256 tag of one delivery: `HMAC(key, prefix || body)` where `prefix` is
/// `"<t>."`, fed in two updates so that the body is never copied.
pub(crate) fn delivery_tag(key: &hmac::Key, prefix: &[u8], body: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(prefix);
    ctx.update(body);
    ctx.sign()
}
