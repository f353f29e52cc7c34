//! Options that weaken SSO security, gathered here so a reviewer can grep for them.

use super::config::IssuerConfigBuilder;

/// Allows the issuer's JWKS to be fetched over plain `http://`.
///
/// Anyone on the network path could then substitute their own keys and mint tokens for
/// any user. Only for tests (a JWKS server on 127.0.0.1) and local development; never in
/// production. `https://` URLs keep working.
pub fn allow_plain_http(builder: IssuerConfigBuilder) -> IssuerConfigBuilder {
    builder.set_allow_http()
}

/// Accepts tokens whose lifetime (`exp - iat`, and `exp - now`) is up to `max`, beyond
/// the 30-day ceiling of
/// [`IssuerConfigBuilder::max_token_lifetime`](super::IssuerConfigBuilder::max_token_lifetime).
///
/// A stolen long-lived token stays usable for all that time, and a large `max` no longer
/// catches an `exp` written in milliseconds. For known-answer test vectors with a far
/// expiry; never for a production issuer.
pub fn allow_long_lived_tokens(
    builder: IssuerConfigBuilder,
    max: std::time::Duration,
) -> IssuerConfigBuilder {
    builder.set_long_lived(max)
}
