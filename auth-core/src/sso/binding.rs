//! SSO identity binding on the user-store side: implements
//! [`IdentityBinder`] over a [`UserStore`].
//!
//! Given an identity the SSO verifier has already verified:
//!
//! 1. a user bound to `(issuer, subject)` is that user (`sso.bind.existing`);
//! 2. else, if the token carries an email and a user has it: when that user is bound to
//!    another identity, refused (`sso.email_bound_elsewhere`); when unbound, the token's
//!    email is verified **and the account's email is proven** ([`User::email_verified`]:
//!    created by an operator, or verified by the service), the user is adopted and bound
//!    in the same step, once (`sso.bind.adopted`), and the link ends every credential the
//!    account had before (sessions and API keys: the epoch bump is in the same
//!    transaction as the binding); a token email that is not verified is refused
//!    (`sso.email_not_verified`), an account whose email was never proven (self-service
//!    registration: anyone could have registered it first) is refused
//!    (`sso.email_unproven`);
//! 3. else a new user is created and bound (`sso.bind.provisioned`), unless
//!    auto-provisioning is off (`sso.provisioning_disabled`) or the email is missing or
//!    unverified (`sso.email_not_verified`).
//!
//! A bound user goes through [`admit`], the one decision every resolver makes on a user
//! (disabled users are refused). A user who must change the password signs in through
//! SSO with a full principal: the restriction is on the operator-set password, which an
//! SSO sign-in does not use; password logins stay restricted until it is changed.
//!
//! Each call emits one `tracing` audit event at target `auth_core::audit` with the code,
//! the issuer and the subject.

use std::sync::Arc;

use async_trait::async_trait;

use super::{BindError, BindingKind, BoundUser, IdentityBinder, VerifiedIdentity};
use crate::secret;
use crate::store::StoreError;
use crate::user::{EpochKind, SsoIdentity, User, UserStore, admit, normalize_email};

/// Binds verified SSO identities to local users.
#[derive(Clone, Debug)]
pub struct SsoBinder {
    users: Arc<dyn UserStore>,
    auto_provision: bool,
}

impl SsoBinder {
    /// A binder over `users`, with auto-provisioning on.
    #[must_use]
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Self {
            users,
            auto_provision: true,
        }
    }

    /// Turns auto-provisioning of unknown identities on or off (default on).
    #[must_use]
    pub fn auto_provision(mut self, on: bool) -> Self {
        self.auto_provision = on;
        self
    }

    async fn bind_inner(&self, identity: &VerifiedIdentity) -> Result<BoundUser, BindError> {
        let key = SsoIdentity::new(identity.issuer(), identity.subject());
        if let Some(user) = self
            .users
            .user_by_identity(&key)
            .await
            .map_err(unavailable)?
        {
            return bound(user, BindingKind::Existing);
        }
        let email = identity.email().and_then(|e| normalize_email(e).ok());
        if let Some(email) = &email
            && let Some(user) = self.users.user_by_email(email).await.map_err(unavailable)?
        {
            match self
                .users
                .identity_of(&user.id)
                .await
                .map_err(unavailable)?
            {
                // Bound to this very identity by a concurrent call since the first lookup.
                Some(bound_to) if bound_to == key => return bound(user, BindingKind::Existing),
                Some(_) => return Err(BindError::EmailBoundElsewhere),
                None => {}
            }
            if !identity.email_verified() {
                return Err(BindError::EmailNotVerified);
            }
            if !user.email_verified {
                return Err(BindError::EmailUnproven);
            }
            if user.disabled {
                return Err(BindError::UserDisabled);
            }
            return match self.users.bind_identity(&user.id, &key).await {
                Ok(()) => bound(user, BindingKind::AdoptedByEmail),
                // Another login bound it concurrently: look again, once.
                Err(StoreError::Conflict { .. }) => self.after_conflict(&key).await,
                Err(e) => Err(unavailable(e)),
            };
        }
        if !self.auto_provision {
            return Err(BindError::ProvisioningDisabled);
        }
        let Some(email) = email.filter(|_| identity.email_verified()) else {
            return Err(BindError::EmailNotVerified);
        };
        let user = User::new(
            secret::random_id().map_err(|e| BindError::Unavailable(Box::new(e)))?,
            email,
            None,
            secret::now_unix(),
        )
        .with_email_verified(true);
        match self.users.create_user_with_identity(&user, &key).await {
            Ok(()) => Ok(BoundUser::new(user.id, BindingKind::Provisioned)),
            // A concurrent first login of the same identity won the race (or someone
            // registered the email meanwhile): look again, once.
            Err(StoreError::Conflict { .. }) => self.after_conflict(&key).await,
            Err(e) => Err(unavailable(e)),
        }
    }

    /// After a uniqueness conflict, the identity was bound by a concurrent call: use it.
    async fn after_conflict(&self, key: &SsoIdentity) -> Result<BoundUser, BindError> {
        match self
            .users
            .user_by_identity(key)
            .await
            .map_err(unavailable)?
        {
            Some(user) => bound(user, BindingKind::Existing),
            None => Err(BindError::EmailBoundElsewhere),
        }
    }
}

fn bound(user: User, kind: BindingKind) -> Result<BoundUser, BindError> {
    // An SSO sign-in is checked against the user's current epoch: it presents no credential
    // issued earlier. A restricted admission is a full one here (see the module docs).
    if admit(Some(&user.state(EpochKind::Session)), user.session_epoch).is_err() {
        return Err(BindError::UserDisabled);
    }
    Ok(BoundUser::new(user.id, kind))
}

fn unavailable(e: StoreError) -> BindError {
    BindError::Unavailable(Box::new(e))
}

#[async_trait]
impl IdentityBinder for SsoBinder {
    async fn bind(&self, identity: &VerifiedIdentity) -> Result<BoundUser, BindError> {
        let result = self.bind_inner(identity).await;
        match &result {
            Ok(b) => tracing::info!(
                target: "auth_core::audit",
                code = binding_code(b.kind),
                issuer = identity.issuer(),
                subject = identity.subject(),
                user_id = %b.user_id,
                "sso identity bound"
            ),
            Err(e) => tracing::warn!(
                target: "auth_core::audit",
                code = e.code(),
                issuer = identity.issuer(),
                subject = identity.subject(),
                "sso identity refused"
            ),
        }
        result
    }
}

/// The audit code of a successful binding.
#[must_use]
pub const fn binding_code(kind: BindingKind) -> &'static str {
    match kind {
        BindingKind::Existing => "sso.bind.existing",
        BindingKind::AdoptedByEmail => "sso.bind.adopted",
        BindingKind::Provisioned => "sso.bind.provisioned",
    }
}
