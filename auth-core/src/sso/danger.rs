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
