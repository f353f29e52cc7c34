//! auth-core's integration tests as one test binary: each file below is a module, so the
//! crate and its dependencies are linked once rather than once per file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod capture;
mod sso_common;
#[macro_use]
mod support;

mod canary;
mod chain;
mod cookie_canary;
mod credential;
mod full_chain;
mod http_cookie;
mod http_layer;
mod lifecycle;
mod lifecycle_epochs;
mod mfa;
mod mfa_canary;
mod mfa_throttle;
mod migration_upgrade;
mod password;
mod refresh;
mod refresh_canary;
mod sso_adversarial;
mod sso_canary;
mod sso_config;
mod sso_discovery;
mod sso_email;
mod sso_jwks;
mod sso_kidless;
mod sso_lifetime;
mod sso_resolver;
mod sso_vectors;
mod store_memory;
mod store_postgres;
mod store_sqlite;
mod throttle;
mod token_canary;
mod token_epoch;
mod token_issuer;
mod token_sso;
mod totp;
mod validity;
mod webhook;
mod webhook_canary;
