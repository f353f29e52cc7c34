#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod accounts;
pub mod api_key;
pub mod chain;
pub mod config;
pub mod cookie;
pub mod credential;
pub mod danger;
pub mod future;
#[cfg(feature = "axum")]
pub mod http;
pub mod internal;
#[cfg(any(feature = "sso", feature = "access-token"))]
mod jose;
pub mod mfa;
pub mod password;
pub mod principal;
pub mod refresh;
pub mod scope;
mod secret;
pub mod session;
#[cfg(feature = "sso")]
pub mod sso;
pub mod static_token;
pub mod store;
pub mod throttle;
#[cfg(feature = "access-token")]
pub mod token;
pub mod totp;
pub mod user;
pub mod webhook;

pub use crate::throttle::{LoginThrottle, LoginThrottleConfig, ThrottleError};
pub use accounts::{AccountError, Accounts, Authentication, FirstFactor, Login, LoginStep};
pub use api_key::{ApiKeyError, ApiKeyRecord, ApiKeyStore, ApiKeys, NewApiKey};
pub use chain::{Chain, ChainBuilder, Outcome, Refusal, Resolution, ResolveFuture, Resolver};
pub use config::ConfigError;
pub use cookie::{CsrfGuard, SameSite, SessionCookie};
pub use credential::{Credential, CredentialKind, ExtractError};
pub use future::MaybeReady;
pub use internal::InternalSecretResolver;
pub use mfa::{
    Enrollment, LoginKind, MemorySealer, Mfa, MfaChallenge, MfaConfig, MfaError, MfaStore,
    RecoveryCodes, SealError, SealedTotpSecret, SecondFactor, StepUpError, TotpSealer,
};
pub use password::{Password, PasswordConfig, PasswordHasher, PasswordPolicy, Verification};
pub use principal::{AuthMethod, Principal};
pub use refresh::{
    FamilyRecord, RefreshConfig, RefreshError, RefreshStore, RefreshToken, RefreshTokenError,
    RefreshTokens,
};
pub use scope::{Requires, Scope, ScopeRefusal};
pub use secret::RandomError;
pub use session::{SessionConfig, SessionRecord, SessionStore, SessionToken, Sessions};
#[cfg(feature = "sso")]
pub use sso::SsoBinder;
pub use static_token::StaticTokenResolver;
#[cfg(feature = "postgres")]
pub use store::PgStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{
    MemoryStore, StoreError, StoreFuture, ValidityCache, ValidityCacheConfig, ValidityCacheStats,
};
#[cfg(feature = "access-token")]
pub use token::{
    AccessToken, AccessTokenRequest, AccessTokenResolver, Issuer, IssuerError,
    MemorySigningKeyStore, SigningAlgorithm, SigningKey, SigningKeyStore, TokenConfigError,
};
pub use totp::{Totp, TotpAlgorithm, TotpConfig, TotpError, TotpSecret};
pub use user::{SsoIdentity, User, UserStore, normalize_email};
pub use webhook::{WebhookConfigError, WebhookError, WebhookSecret};
