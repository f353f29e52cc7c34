//! SSO: JWTs from external identity providers, verified against each issuer's JWKS
//! (crate feature `sso`, which brings in `jsonwebtoken` and `reqwest`).
//!
//! * [`SsoVerifier`] (built from one [`IssuerConfig`] per trusted issuer) turns a token
//!   into a [`VerifiedIdentity`] or an opaque [`JwtError`] whose [`Reason`] goes to
//!   tracing. Keys come only from each issuer's configured JWKS URL, the `jwks_uri` of
//!   its OpenID Connect discovery document ([`IssuerConfig::discover`]), or a pinned set;
//!   they
//!   are cached per issuer with TTL, cooldown and single-flight refresh, and keep serving
//!   through an outage.
//! * [`IdentityBinder`] is the extension point that binds `(issuer, subject)` to a local
//!   user; [`SsoBinder`] implements it over any [`UserStore`](crate::UserStore) (also
//!   re-exported at the crate root).
//! * [`SsoResolver`] plugs both into the resolver [`Chain`](crate::Chain).
//! * [`danger`] holds the weakening options (plain-http JWKS and discovery for tests,
//!   token lifetimes beyond 30 days for far-future test vectors).
//!
//! # Example
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use auth_core::sso::{IdentityBinder, IssuerConfig, SsoResolver, SsoVerifier};
//! # async fn demo(binder: Arc<dyn IdentityBinder>) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = SsoVerifier::builder()
//!     .issuer(
//!         IssuerConfig::remote(
//!             "https://login.example.com/realms/trading",
//!             "https://login.example.com/realms/trading/protocol/openid-connect/certs",
//!         )
//!         .audience("trading-backend")
//!         .build()?,
//!     )
//!     .build()?;
//! let verifier = Arc::new(verifier);
//! verifier.prefetch().await; // optional warm-up
//! let resolver = SsoResolver::new(verifier, binder);
//! let chain = auth_core::Chain::builder().resolver(resolver).build();
//! # let _ = chain;
//! # Ok(()) }
//! ```

mod binding;
mod config;
pub mod danger;
mod discovery;
mod error;
mod identity;
mod jwks;
mod keys;
mod resolver;
mod verifier;

pub use binding::{SsoBinder, binding_code};
pub use config::{CachePolicy, IssuerConfig, IssuerConfigBuilder, Limits};
pub use discovery::{DiscoveryError, ProviderMetadata};
pub use error::{JwtError, Reason, SsoConfigError};
pub use identity::{BindError, BindingKind, BoundUser, IdentityBinder, VerifiedIdentity};
pub use jsonwebtoken::Algorithm;
pub use resolver::SsoResolver;
pub use verifier::{SsoVerifier, SsoVerifierBuilder};
