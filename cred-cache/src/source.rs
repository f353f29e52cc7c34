//! The extension point: where credentials come from on a miss.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::credential::ExchangeCredential;
use crate::error::FetchError;
use crate::ids::CacheKey;

/// A backend that produces a decrypted credential for a (user, credential,
/// level) a policy engine has **already authorised**: every [`CacheKey`] is
/// made from an [`AccessPermit`](crate::AccessPermit) ([`CacheKey::new`]). The
/// cache calls it at most once per key at a time, however many callers miss
/// together.
///
/// # Security contract
///
/// An implementation must:
///
/// * **Refuse Trade on a read-only key**: when `key.level()` is
///   [`Level::Trade`](crate::Level::Trade) and the stored key is
///   read-only, return [`FetchError::Refused`] (defence in depth: the cache
///   checks [`ExchangeCredential::is_read_only`] again, but a source knows its
///   storage best).
/// * Return a credential whose [`credential_id`](ExchangeCredential::credential_id)
///   is `key.credential()`; the cache refuses any other as
///   [`FetchError::InvalidResponse`].
/// * **Fail closed**: every doubt (backend down, malformed record, timeout) is an
///   error, never a default credential. Use [`FetchError::Unavailable`] when the
///   source is not configured at all, so the embedding service answers 503.
/// * **Never log, format or return a secret** other than inside the returned
///   [`ExchangeCredential`]; errors carry kinds only. Tracing events may name
///   the ids in `key`.
/// * Be bounded in time (a timeout) and in memory (a size cap on anything it
///   reads from the network): a waiting caller holds every other caller of the
///   same key.
/// * Be cancel safe: the cache may drop the future when every waiter has gone.
#[async_trait]
pub trait CredentialSource: Send + Sync + Debug {
    /// Produces the credential for `key`.
    ///
    /// # Errors
    ///
    /// [`FetchError`] as described in the trait's contract.
    async fn fetch(&self, key: &CacheKey) -> Result<ExchangeCredential, FetchError>;
}
