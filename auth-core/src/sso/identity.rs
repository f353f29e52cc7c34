//! What a verified SSO token proves, and the extension point that binds it to a local
//! user.

use core::fmt;

use async_trait::async_trait;

/// The identity a verified SSO JWT proves: its issuer and subject (the identity's key),
/// and the informational email claims.
///
/// Produced by [`SsoVerifier`](super::SsoVerifier) only after the signature, the
/// algorithm, `iss`, `aud`, `exp`, `nbf` and `iat` all checked out. `Debug` prints the
/// issuer and subject only (the email is personal data and stays out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    issuer: String,
    subject: String,
    email: Option<String>,
    email_verified: bool,
    expires_at: i64,
}

impl VerifiedIdentity {
    /// Builds an identity from claims that the caller has already verified.
    ///
    /// This is for tests of an [`IdentityBinder`] and for custom verifiers; the caller
    /// vouches that the values come from a verified token. [`SsoVerifier`](super::SsoVerifier)
    /// is the normal way to obtain one.
    #[must_use]
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        email: Option<String>,
        email_verified: bool,
        expires_at: i64,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            email,
            email_verified,
            expires_at,
        }
    }

    /// The `iss` claim: exactly the configured issuer identifier whose key verified the
    /// token.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `sub` claim: the user's stable id at the issuer (non-empty, length-capped).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The `email` claim, if present and a string. Informational: never an identity key
    /// on its own; see [`IdentityBinder`].
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The `email_verified` claim: `true` only if present and the JSON boolean `true`
    /// (a string `"true"` counts as `false`).
    #[must_use]
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    /// The `exp` claim, in Unix seconds.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How a verified identity came to be bound to its local user (for the audit event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BindingKind {
    /// The (issuer, subject) pair was already bound to this user.
    Existing,
    /// An existing user with the same verified email and no SSO binding was adopted and is
    /// now bound to (issuer, subject).
    AdoptedByEmail,
    /// No user existed: one was created and bound (auto-provisioning).
    Provisioned,
}

impl BindingKind {
    /// A stable lower-case name for audit events.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Existing => "existing",
            Self::AdoptedByEmail => "adopted_by_email",
            Self::Provisioned => "provisioned",
        }
    }
}

/// The local user a verified identity is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BoundUser {
    /// The local user id (becomes [`Principal::user_id`](crate::Principal)).
    pub user_id: String,
    /// How the binding was found or made.
    pub kind: BindingKind,
}

impl BoundUser {
    /// A bound user.
    #[must_use]
    pub fn new(user_id: impl Into<String>, kind: BindingKind) -> Self {
        Self {
            user_id: user_id.into(),
            kind,
        }
    }
}

/// Why a verified identity could not be bound to a local user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The identity's email belongs to a user already bound to another (issuer, subject):
    /// refused (403), never silently merged.
    #[error("sso binding: email already bound to another identity")]
    EmailBoundElsewhere,
    /// An unbound user has this email but the token's `email_verified` is not `true`, so
    /// the account cannot be adopted: refused (403).
    #[error("sso binding: email not verified, account not adopted")]
    EmailNotVerified,
    /// An unbound user has this email, but the account's email was never proven (it was
    /// self-registered, so anyone could have claimed it first): not adopted, refused
    /// (403). See [`User::email_verified`](crate::User::email_verified).
    #[error("sso binding: account email not proven, account not adopted")]
    EmailUnproven,
    /// The identity is unknown and auto-provisioning is off: refused (403).
    #[error("sso binding: unknown identity and auto-provisioning is off")]
    ProvisioningDisabled,
    /// The bound user exists but may not log in (disabled, deleted): refused (403).
    #[error("sso binding: user may not log in")]
    UserDisabled,
    /// The user store failed: the resolver answers `Unavailable` (503), never a success.
    #[error("sso binding: user store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BindError {
    /// The stable refusal code logged for this error.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::EmailBoundElsewhere => "sso.email_bound_elsewhere",
            Self::EmailNotVerified => "sso.email_not_verified",
            Self::EmailUnproven => "sso.email_unproven",
            Self::ProvisioningDisabled => "sso.provisioning_disabled",
            Self::UserDisabled => "sso.user_disabled",
            Self::Unavailable(_) => "sso.binding_unavailable",
        }
    }

    /// `true` when the store failed (503) rather than the identity being refused (403).
    #[must_use]
    pub const fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Binds a verified SSO identity to a local user. Implemented by the user store; called
/// by [`SsoResolver`](super::SsoResolver) after a token verified.
///
/// # Security contract
///
/// * The identity key is the pair `(identity.issuer(), identity.subject())`, compared
///   exactly (byte for byte, no case folding, no normalisation). A user found by that
///   pair is [`BindingKind::Existing`].
/// * Never bind silently by email. Email is only used to adopt an existing user that has
///   **no** SSO binding yet, and only when [`VerifiedIdentity::email_verified`] is `true`
///   (otherwise [`BindError::EmailNotVerified`]) and the account's own email is proven
///   (otherwise [`BindError::EmailUnproven`]); the adoption records the
///   `(issuer, subject)` binding in the same transaction, so it happens once
///   ([`BindingKind::AdoptedByEmail`]), and ends every credential the account had before
///   (an epoch bump in the same transaction). An email already bound to another identity is
///   [`BindError::EmailBoundElsewhere`].
/// * Unknown identities are auto-provisioned ([`BindingKind::Provisioned`]) only if the
///   embedding service enabled it; else [`BindError::ProvisioningDisabled`].
/// * Emit one audit event per call with the [`BindingKind`] or the [`BindError::code`],
///   the issuer and the subject (no token, no email in clear unless the service's audit
///   policy allows it).
/// * Any store error is [`BindError::Unavailable`]: fail closed, never guess a user.
/// * Must be safe to call concurrently for the same new identity (two first logins at
///   once must not create two users or two bindings: use a unique constraint on
///   `(issuer, subject)` and retry the lookup on conflict).
#[async_trait]
pub trait IdentityBinder: Send + Sync + fmt::Debug {
    /// Finds, adopts or provisions the local user for `identity`.
    ///
    /// # Errors
    ///
    /// A [`BindError`]: a refusal (403) or [`BindError::Unavailable`] (503).
    async fn bind(&self, identity: &VerifiedIdentity) -> Result<BoundUser, BindError>;
}
