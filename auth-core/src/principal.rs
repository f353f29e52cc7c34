//! Principals: who a request is, and how it proved it.

use core::fmt;

/// How a principal authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// The static server-to-server token from configuration.
    StaticToken,
    /// A login session token.
    Session,
    /// An SSO JWT verified against its issuer's JWKS.
    Sso,
    /// An API key.
    ApiKey,
    /// The internal service secret.
    InternalService,
}

impl AuthMethod {
    /// A stable lower-case name, for logs and audit events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StaticToken => "static_token",
            Self::Session => "session",
            Self::Sso => "sso",
            Self::ApiKey => "api_key",
            Self::InternalService => "internal_service",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated identity: the user, how it authenticated, which session or key it
/// used (the id, never the secret) and the scopes it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The local user id.
    pub user_id: String,
    /// How the request authenticated.
    pub method: AuthMethod,
    /// The session id or API key id used, if any. Never a secret.
    pub credential_id: Option<String>,
    /// Scopes granted to this credential. Empty means "no restriction beyond the user's
    /// own rights" for sessions and unscoped keys; see [`Principal::has_scope`].
    pub scopes: Vec<String>,
}

impl Principal {
    /// A principal for `user_id` authenticated by `method`, with no credential id and no
    /// scopes.
    #[must_use]
    pub fn new(user_id: impl Into<String>, method: AuthMethod) -> Self {
        Self {
            user_id: user_id.into(),
            method,
            credential_id: None,
            scopes: Vec::new(),
        }
    }

    /// Sets the session or key id.
    #[must_use]
    pub fn with_credential_id(mut self, id: impl Into<String>) -> Self {
        self.credential_id = Some(id.into());
        self
    }

    /// Sets the scopes.
    #[must_use]
    pub fn with_scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    /// Whether the credential carries `scope`. A credential without scopes carries none:
    /// callers that require a scope must call this and refuse on `false`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
