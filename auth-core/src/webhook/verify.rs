//! Verifying inbound deliveries: the signature step and the replay claim.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;

use crate::secret::{Digest, digest_eq};

use super::{
    ActiveSecrets, Claim, ReplayGuard, SignatureHeader, WebhookConfigError, WebhookError,
    WebhookSecret, delivery_tag,
};

/// The default tolerance: a delivery's `t` may be up to 300 s before or after the
/// receiver's clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// The largest tolerance a [`VerifierBuilder`] accepts (1 h).
pub const MAX_TOLERANCE: Duration = Duration::from_secs(3600);

/// Which active secret verified a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedSecret {
    /// The current secret.
    Current,
    /// The previous secret, still in its grace period: the sender has not rotated yet.
    Previous,
}

/// A signature that verified ([`Verifier::verify_signature`]); the delivery is not yet
/// claimed against replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSignature {
    timestamp: i64,
    matched: MatchedSecret,
}

impl VerifiedSignature {
    /// The delivery's timestamp `t` (Unix seconds).
    #[must_use]
    pub const fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Which secret verified it.
    #[must_use]
    pub const fn matched(&self) -> MatchedSecret {
        self.matched
    }
}

/// The outcome of [`Verifier::verify`] for a delivery whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// First time seen: execute it.
    Accepted {
        /// The delivery's id: lowercase hex SHA-256 of `"<t>." || body` (64 characters).
        delivery_id: String,
        /// Its timestamp `t` (Unix seconds).
        timestamp: i64,
    },
    /// Already accepted within the window (by this or another instance): do not execute
    /// it again; answer as the first delivery was answered.
    Duplicate {
        /// The delivery's id, as in [`Delivery::Accepted`].
        delivery_id: String,
        /// The `reference` the first delivery was claimed with.
        reference: String,
    },
}

/// Verifies inbound deliveries: time window, HMAC over the raw bytes in constant time,
/// then a first-writer-wins claim in the shared [`ReplayGuard`].
///
/// Build it with [`Verifier::builder`]; cheap to clone (the guard is shared).
#[derive(Clone)]
pub struct Verifier {
    tolerance: u64,
    guard: Arc<dyn ReplayGuard>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("tolerance_secs", &self.tolerance)
            .field("guard", &self.guard)
            .finish()
    }
}

/// Configuration of a [`Verifier`].
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    tolerance: Duration,
    guard: Arc<dyn ReplayGuard>,
}

impl VerifierBuilder {
    /// How far a delivery's `t` may be from the receiver's clock, either side, inclusive
    /// (default [`DEFAULT_TOLERANCE`], 300 s; whole seconds from 1 to 3600). Accepted
    /// deliveries are remembered for as long (until `t + tolerance`).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The verifier.
    ///
    /// # Errors
    /// [`WebhookConfigError::Tolerance`] unless the tolerance is whole seconds from 1 to
    /// 3600.
    pub fn build(self) -> Result<Verifier, WebhookConfigError> {
        if self.tolerance.subsec_nanos() != 0
            || self.tolerance < Duration::from_secs(1)
            || self.tolerance > MAX_TOLERANCE
        {
            return Err(WebhookConfigError::Tolerance);
        }
        Ok(Verifier {
            tolerance: self.tolerance.as_secs(),
            guard: self.guard,
        })
    }
}

impl Verifier {
    /// A builder with the default tolerance, claiming deliveries in `guard` (shared by
    /// every instance that receives the same senders' webhooks: `SqliteStore` or
    /// `PgStore` across processes, [`MemoryReplayGuard`](super::MemoryReplayGuard) for
    /// one).
    pub fn builder(guard: Arc<dyn ReplayGuard>) -> VerifierBuilder {
        VerifierBuilder {
            tolerance: DEFAULT_TOLERANCE,
            guard,
        }
    }

    /// The tolerance either side of the receiver's clock.
    #[must_use]
    pub const fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance)
    }

    /// The signature step alone: synchronous, pure, no I/O, no allocation.
    ///
    /// Parses `header` (the `X-Strongroom-Signature` value, `None` when absent), checks
    /// `|now - t| <= tolerance` (inclusive both sides), then computes HMAC-SHA256 of
    /// `"<t>." || body` under each secret active at `now` (current first) and compares
    /// it in constant time with every `v1` entry. `body` must be the raw bytes as
    /// received, before any parsing. The delivery is **not** claimed: use
    /// [`verify`](Self::verify) to execute a delivery at most once.
    ///
    /// Timing reveals which active secret matched (one or two HMACs), never anything of
    /// a secret or of the expected signature.
    ///
    /// # Errors
    /// [`WebhookError::Missing`], [`WebhookError::Malformed`], [`WebhookError::Stale`],
    /// [`WebhookError::BadSignature`].
    pub fn verify_signature(
        &self,
        header: Option<&str>,
        body: &[u8],
        secrets: &ActiveSecrets,
        now: i64,
    ) -> Result<VerifiedSignature, WebhookError> {
        let header = SignatureHeader::parse(header.ok_or(WebhookError::Missing)?)?;
        let timestamp = header.timestamp();
        if now.abs_diff(timestamp) > self.tolerance {
            return Err(WebhookError::Stale);
        }
        if matches(secrets.current(), &header, body) {
            return Ok(VerifiedSignature {
                timestamp,
                matched: MatchedSecret::Current,
            });
        }
        if let Some(previous) = secrets.active_previous(now)
            && matches(previous, &header, body)
        {
            return Ok(VerifiedSignature {
                timestamp,
                matched: MatchedSecret::Previous,
            });
        }
        Err(WebhookError::BadSignature)
    }

    /// Verifies a delivery and claims it, so that it is executed at most once across
    /// every instance sharing the guard.
    ///
    /// `sender` names whose secrets `secrets` are (the replay key is `(sender,
    /// delivery id)`); `reference` is the caller's id for this delivery (for example the
    /// record it is about to create), handed back on a later duplicate. Only a delivery
    /// whose signature verified is claimed. The claim is kept until `t + tolerance`,
    /// after which the signature is stale anyway. The delivery id covers `t` and the
    /// body, not the signatures: the same delivery is a duplicate whichever secret signed
    /// it.
    ///
    /// # Errors
    /// As [`verify_signature`](Self::verify_signature), and
    /// [`WebhookError::Unavailable`] if the guard fails (nothing is known about the
    /// delivery: answer 503 so that the sender retries).
    pub async fn verify(
        &self,
        sender: &str,
        header: Option<&str>,
        body: &[u8],
        secrets: &ActiveSecrets,
        now: i64,
        reference: &str,
    ) -> Result<Delivery, WebhookError> {
        let verified = match self.verify_signature(header, body, secrets, now) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::debug!(sender, code = e.code(), error = %e, "webhook refused");
                return Err(e);
            }
        };
        if verified.matched == MatchedSecret::Previous {
            tracing::debug!(sender, "webhook verified with the previous secret");
        }
        let timestamp = verified.timestamp;
        let delivery_id = delivery_id(timestamp, body);
        let expires_at = timestamp.saturating_add_unsigned(self.tolerance);
        let claim = self
            .guard
            .claim(sender, &delivery_id, reference, expires_at, now)
            .await
            .map_err(|e| {
                tracing::warn!(sender, code = "webhook.unavailable", error = %e, "webhook replay guard failed");
                WebhookError::Unavailable(e)
            })?;
        Ok(match claim {
            Claim::First => Delivery::Accepted {
                delivery_id,
                timestamp,
            },
            Claim::Duplicate { reference } => {
                tracing::debug!(sender, delivery_id, "webhook delivery replayed");
                Delivery::Duplicate {
                    delivery_id,
                    reference,
                }
            }
        })
    }

    /// Deletes the guard's expired claims (run it periodically); returns how many.
    ///
    /// # Errors
    /// [`WebhookError::Unavailable`] if the guard fails.
    pub async fn sweep(&self, now: i64) -> Result<u64, WebhookError> {
        self.guard
            .delete_expired(now)
            .await
            .map_err(WebhookError::Unavailable)
    }
}

/// Whether any `v1` entry of `header` is the tag of the delivery under `secret`. Every
/// entry is compared, in constant time, without an early exit.
fn matches(secret: &WebhookSecret, header: &SignatureHeader, body: &[u8]) -> bool {
    let tag = delivery_tag(secret.key(), header.signed_prefix(), body);
    let Ok(tag) = <&Digest>::try_from(tag.as_ref()) else {
        return false;
    };
    // Every entry is compared (no early exit); each compare is branch-free over the 32
    // bytes with one optimisation barrier (`digest_eq`).
    header
        .signatures()
        .iter()
        .fold(false, |found, sig| found | digest_eq(sig, tag))
}

/// Lowercase hex SHA-256 of `"<t>." || body`.
fn delivery_id(timestamp: i64, body: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(format!("{timestamp}.").as_bytes());
    ctx.update(body);
    base16ct::lower::encode_string(ctx.finish().as_ref())
}
