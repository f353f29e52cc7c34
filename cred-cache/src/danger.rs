//! Options that weaken security, for tests and local development only. Grep
//! for `danger` in review.

use crate::remote::RemoteVaultBuilder;

/// Lets a [`RemoteVaultBuilder`] accept an `http://` endpoint: the internal
/// secret and the decrypted credential then cross the network in clear text.
/// Use it for a test server on 127.0.0.1, never in production.
#[must_use]
pub fn allow_plain_http(mut builder: RemoteVaultBuilder) -> RemoteVaultBuilder {
    builder.allow_http = true;
    builder
}
