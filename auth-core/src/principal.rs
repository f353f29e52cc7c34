//! Principals: who a request is, and how it proved it.

use core::fmt;
use std::sync::Arc;

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
    /// A short-lived access token (RFC 9068 JWT) issued by this service's own
    /// token issuer.
    AccessToken,
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
            Self::AccessToken => "access_token",
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
///
/// A shared, immutable value: cloning it is one reference-count increment. Stores keep
/// the principal of each session and API key inside its record
/// ([`SessionRecord`](crate::session::SessionRecord),
/// [`ApiKeyRecord`](crate::api_key::ApiKeyRecord)), so a resolution hands it out
/// without building or copying anything.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Arc<Identity>);

#[derive(Clone, PartialEq, Eq)]
struct Identity {
    user_id: Box<str>,
    method: AuthMethod,
    credential_id: Option<Box<str>>,
    scopes: Box<[String]>,
    restricted: bool,
    session_epoch: Option<i64>,
    mfa_at: Option<i64>,
}

impl Principal {
    /// A principal for `user_id` authenticated by `method`, with no credential id and no
    /// scopes.
    #[must_use]
    pub fn new(user_id: impl Into<Box<str>>, method: AuthMethod) -> Self {
        Self(Arc::new(Identity {
            user_id: user_id.into(),
            method,
            credential_id: None,
            scopes: Box::default(),
            restricted: false,
            session_epoch: None,
            mfa_at: None,
        }))
    }

    /// Sets the session or key id.
    #[must_use]
    pub fn with_credential_id(mut self, id: impl Into<Box<str>>) -> Self {
        Arc::make_mut(&mut self.0).credential_id = Some(id.into());
        self
    }

    /// Sets the scopes.
    #[must_use]
    pub fn with_scopes(mut self, scopes: impl Into<Box<[String]>>) -> Self {
        Arc::make_mut(&mut self.0).scopes = scopes.into();
        self
    }

    /// Marks the principal restricted: its user must change the password first. The axum
    /// extractor `http::Authenticated` (feature `axum`) refuses such a principal
    /// (403 `password_change_required`) except on routes that opt in with
    /// `AllowRestricted`. Set by the session and API key lookups from the user row.
    #[must_use]
    pub fn with_restricted(mut self, restricted: bool) -> Self {
        if self.0.restricted != restricted {
            Arc::make_mut(&mut self.0).restricted = restricted;
        }
        self
    }

    /// Records the user's session epoch the credential was issued at (set by the session
    /// lookup). A credential minted on this principal's behalf
    /// ([`ApiKeys::create_for`](crate::ApiKeys::create_for)) is stored only while the
    /// user is still at this epoch, so a session ended while its request runs cannot
    /// leave a key behind.
    #[must_use]
    pub fn with_session_epoch(mut self, epoch: i64) -> Self {
        if self.0.session_epoch != Some(epoch) {
            Arc::make_mut(&mut self.0).session_epoch = Some(epoch);
        }
        self
    }

    /// The session epoch of the credential, for session principals; `None` otherwise.
    #[must_use]
    pub fn session_epoch(&self) -> Option<i64> {
        self.0.session_epoch
    }

    /// Records when this credential last passed a second-factor check (Unix seconds): the
    /// MFA login step or a later step-up. Set by the session lookup (the session row) and
    /// by the access-token resolver (`auth_time` when `amr` holds `otp`). Routes that need
    /// a recent second factor compare it with the clock; `None` means never.
    #[must_use]
    pub fn with_mfa_at(mut self, at: Option<i64>) -> Self {
        if self.0.mfa_at != at {
            Arc::make_mut(&mut self.0).mfa_at = at;
        }
        self
    }

    /// When this credential last passed a second-factor check (Unix seconds), if ever.
    #[must_use]
    pub fn mfa_at(&self) -> Option<i64> {
        self.0.mfa_at
    }

    /// Whether the principal is restricted to the password change (and logout).
    #[must_use]
    pub fn is_restricted(&self) -> bool {
        self.0.restricted
    }

    /// The local user id.
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.0.user_id
    }

    /// How the request authenticated.
    #[must_use]
    pub fn method(&self) -> AuthMethod {
        self.0.method
    }

    /// The session id or API key id used, if any. Never a secret.
    #[must_use]
    pub fn credential_id(&self) -> Option<&str> {
        self.0.credential_id.as_deref()
    }

    /// Scopes granted to this credential. Empty means "no restriction beyond the user's
    /// own rights" for sessions and unscoped keys; see [`Principal::has_scope`].
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether the credential carries `scope`. A credential without scopes carries none
    /// here, yet is unrestricted by scopes: to decide whether a principal may use a
    /// route, use [`Requires::check`](crate::scope::Requires::check), not this.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().iter().any(|s| s == scope)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("user_id", &self.user_id())
            .field("method", &self.method())
            .field("credential_id", &self.credential_id())
            .field("scopes", &self.scopes())
            .field("restricted", &self.is_restricted())
            .field("mfa_at", &self.mfa_at())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_return_what_was_set() {
        let p = Principal::new("u-1", AuthMethod::ApiKey)
            .with_credential_id(String::from("k-1"))
            .with_scopes(vec!["read".to_owned(), "trade".to_owned()]);
        assert_eq!(p.user_id(), "u-1");
        assert_eq!(p.method(), AuthMethod::ApiKey);
        assert_eq!(p.credential_id(), Some("k-1"));
        assert_eq!(p.scopes(), ["read", "trade"]);
        assert!(p.has_scope("trade"));
        assert!(!p.has_scope("withdraw"));
        assert!(!p.has_scope("rea"));
        let bare = Principal::new("u-1", AuthMethod::Session);
        assert_eq!(bare.credential_id(), None);
        assert!(bare.scopes().is_empty());
        assert!(!bare.has_scope(""));
    }

    #[test]
    fn equality_is_by_value() {
        let a = Principal::new("u-1", AuthMethod::Session).with_credential_id("s-1");
        let b = Principal::new("u-1", AuthMethod::Session).with_credential_id("s-1");
        assert_eq!(a, b);
        assert_ne!(a, b.clone().with_credential_id("s-2"));
        assert_ne!(
            a,
            Principal::new("u-1", AuthMethod::ApiKey).with_credential_id("s-1")
        );
        assert_ne!(a, a.clone().with_scopes(vec!["read".to_owned()]));
    }

    #[test]
    fn clones_share_and_builders_never_change_a_shared_value() {
        let p = Principal::new("u-1", AuthMethod::Session);
        let q = p.clone();
        assert!(
            std::ptr::eq(p.user_id(), q.user_id()),
            "a clone copied the text"
        );
        // Setting a field on one handle leaves the other as it was.
        let r = q.with_credential_id("s-1");
        assert_eq!(p.credential_id(), None);
        assert_eq!(r.credential_id(), Some("s-1"));
    }

    #[test]
    fn debug_shows_ids_and_method() {
        let p = Principal::new("u-1", AuthMethod::ApiKey)
            .with_credential_id("k-1")
            .with_scopes(vec!["read".to_owned()]);
        assert_eq!(
            format!("{p:?}"),
            r#"Principal { user_id: "u-1", method: ApiKey, credential_id: Some("k-1"), scopes: ["read"], restricted: false, mfa_at: None }"#
        );
    }
}
