//! Permits: an allowed decision, and an established ownership, as values that only this
//! crate can make.
//!
//! A [`Permit`] comes from [`Policy::authorize`](crate::Policy::authorize) and from
//! nowhere else: it carries the user, the account and the level the decision allowed,
//! and implements [`AccessPermit`], which cred-cache takes as the key of a credential
//! fetch. An [`Ownership`] comes from [`Policy::register_account`](crate::Policy::register_account)
//! and [`Policy::ownership`](crate::Policy::ownership), and implements [`OwnerPermit`],
//! which cred-cache's `LocalSource` requires to store or delete an account's credential.
//!
//! Both have private fields and no public constructor, so no code outside this crate
//! can write one down:
//!
//! ```compile_fail
//! use grant_policy::{AccountId, Level, Permit, UserId};
//!
//! let forged = Permit {
//!     user: UserId::new("mallory").unwrap(),
//!     account: AccountId::new("acct-of-alice").unwrap(),
//!     level: Level::Trade,
//! };
//! ```
//!
//! ```compile_fail
//! use grant_policy::{AccountId, Ownership, UserId};
//!
//! let forged = Ownership {
//!     owner: UserId::new("mallory").unwrap(),
//!     account: AccountId::new("acct-of-alice").unwrap(),
//! };
//! ```
//!
//! Both are short-lived on purpose: one decision, one request. They are neither `Clone`
//! nor `Copy` nor serialisable, so a permit cannot be kept for a later request or
//! handed to two fetches (cred-cache consumes it), and a revoke is seen by the next
//! request, which must ask the policy again:
//!
//! ```compile_fail
//! fn twice(permit: grant_policy::Permit) -> (grant_policy::Permit, grant_policy::Permit) {
//!     (permit.clone(), permit)
//! }
//! ```
//!
//! They carry no expiry: a permit lives as long as the request that holds it, and
//! cred-cache bounds what a fetch keeps (60 s, invalidated on revoke) on its own side.

use access_types::{AccessPermit, AccountId, Level, OwnerPermit, UserId};

/// Proof that [`Policy::authorize`](crate::Policy::authorize) allowed `user` to use
/// `account` at `level`, for one request. Only that method makes one, and only for an
/// allowed decision; a denied decision yields the [`DenyReason`](crate::DenyReason)
/// instead.
///
/// [`level`](Permit::level) is the level the operation required (raised by the caller's
/// `want`), not the user's effective level: a trade-capable owner reading a balance gets
/// a `Read` permit (least privilege).
#[derive(Debug)]
pub struct Permit {
    user: UserId,
    account: AccountId,
    level: Level,
}

impl Permit {
    pub(crate) const fn new(user: UserId, account: AccountId, level: Level) -> Self {
        Permit {
            user,
            account,
            level,
        }
    }

    /// The user allowed.
    #[must_use]
    pub const fn user(&self) -> &UserId {
        &self.user
    }

    /// The account allowed.
    #[must_use]
    pub const fn account(&self) -> &AccountId {
        &self.account
    }

    /// The level allowed: what the operation required, raised by `want`.
    #[must_use]
    pub const fn level(&self) -> Level {
        self.level
    }
}

impl AccessPermit for Permit {
    fn user(&self) -> &UserId {
        &self.user
    }

    fn account(&self) -> &AccountId {
        &self.account
    }

    fn level(&self) -> Level {
        self.level
    }
}

/// Proof that the grant store holds `owner` as the owner of `account`, for one request:
/// returned by [`Policy::register_account`](crate::Policy::register_account) and
/// [`Policy::ownership`](crate::Policy::ownership), and by nothing else. What storing or
/// deleting the account's credential requires (cred-cache's `LocalSource::put`).
#[derive(Debug)]
pub struct Ownership {
    owner: UserId,
    account: AccountId,
}

impl Ownership {
    pub(crate) const fn new(owner: UserId, account: AccountId) -> Self {
        Ownership { owner, account }
    }

    /// The owner.
    #[must_use]
    pub const fn owner(&self) -> &UserId {
        &self.owner
    }

    /// The account owned.
    #[must_use]
    pub const fn account(&self) -> &AccountId {
        &self.account
    }
}

impl OwnerPermit for Ownership {
    fn owner(&self) -> &UserId {
        &self.owner
    }

    fn account(&self) -> &AccountId {
        &self.account
    }
}
