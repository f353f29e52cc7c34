//! auth-core's integration tests as one test binary: each file below is a module, so the
//! crate and its dependencies are linked once rather than once per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.
// Modules that need the `sso` or `access-token` feature are compiled with it only; CI runs
// `--all-features`, so every module runs there.

mod capture;
#[cfg(feature = "sso")]
mod sso_common;
#[macro_use]
mod support;

#[cfg(feature = "sso")]
mod canary;
mod chain;
mod cookie_canary;
mod credential;
#[cfg(feature = "sso")]
mod full_chain;
mod http_cookie;
mod http_layer;
mod lifecycle;
#[cfg(feature = "sso")]
mod lifecycle_epochs;
mod mfa;
mod mfa_canary;
mod mfa_throttle;
mod migration_upgrade;
mod password;
mod refresh;
mod refresh_canary;
#[cfg(feature = "sso")]
mod sso_adversarial;
#[cfg(feature = "sso")]
mod sso_canary;
#[cfg(feature = "sso")]
mod sso_config;
#[cfg(feature = "sso")]
mod sso_discovery;
#[cfg(feature = "sso")]
mod sso_email;
#[cfg(feature = "sso")]
mod sso_jwks;
#[cfg(feature = "sso")]
mod sso_kidless;
#[cfg(feature = "sso")]
mod sso_lifetime;
#[cfg(feature = "sso")]
mod sso_resolver;
#[cfg(feature = "sso")]
mod sso_vectors;
mod status;
mod store_memory;
mod store_postgres;
mod store_sqlite;
mod throttle;
#[cfg(feature = "access-token")]
mod token_canary;
#[cfg(feature = "access-token")]
mod token_epoch;
#[cfg(feature = "access-token")]
mod token_issuer;
#[cfg(all(feature = "sso", feature = "access-token"))]
mod token_sso;
mod totp;
mod validity;
mod webhook;
mod webhook_canary;
