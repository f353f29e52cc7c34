//! Grants: who may use an exchange account, at which level, until when.
//!
//! An account has exactly one owner and a key capability (the level the exchange API key
//! itself was registered with). The owner may share the account with other users at
//! [`Level::Read`] or [`Level::Trade`], optionally until an expiry, and revoke the share.
//! Whatever the grant, the key's capability caps it: effective = min(grant, capability).

use access_types::Level;

/// How a user relates to an account, as read from a grant store for one
/// (user, account) pair. A user with no relation gets no `Access` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// The level the account's exchange key was registered with.
    pub capability: Level,
    /// Owner, or grantee with a share.
    pub role: Role,
}

/// The user's role on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The user owns the account: an implicit `Trade` grant (still capped by the key).
    Owner,
    /// The owner shared the account with this user.
    Grantee {
        /// The level shared.
        level: Level,
        /// Unix seconds from which the share no longer counts; `None` for no expiry.
        expires_at: Option<i64>,
    },
}

impl Access {
    /// The grant before the key cap: `Trade` for the owner, the shared level otherwise,
    /// or `None` if the share has expired at `now`.
    #[must_use]
    pub const fn granted_at(&self, now: i64) -> Option<Level> {
        match self.role {
            Role::Owner => Some(Level::Trade),
            Role::Grantee { level, expires_at } => match expires_at {
                Some(at) if now >= at => None,
                _ => Some(level),
            },
        }
    }

    /// The effective level at `now`: min(grant, key capability), or `None` once a share
    /// has expired.
    #[must_use]
    pub const fn effective_at(&self, now: i64) -> Option<Level> {
        match self.granted_at(now) {
            None => None,
            Some(Level::Trade) => Some(self.capability),
            Some(Level::Read) => Some(Level::Read),
        }
    }
}

/// A share as an owner lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Share {
    /// Who the account is shared with.
    pub grantee: crate::UserId,
    /// The level shared (before the key cap).
    pub level: Level,
    /// Unix seconds from which the share no longer counts; `None` for no expiry.
    pub expires_at: Option<i64>,
}
