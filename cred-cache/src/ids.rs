//! The cache key, and where it comes from: an [`AccessPermit`].
//!
//! The ids ([`UserId`], [`AccountId`]) and the [`Level`] are `access-types`' own,
//! shared with the policy engine (grant-policy), and re-exported at this crate's root:
//! a value that crosses from the policy to the cache is one type, never converted. An
//! account has one exchange API key, so its [`AccountId`] also names its stored
//! credential.
//!
//! A [`CacheKey`] is made from a permit only: the caller proves that the policy allowed
//! (user, account, level) before anything is looked up, and cannot widen the level on
//! the way.

use access_types::{AccessPermit, AccountId, Level, UserId};

use crate::error::FetchError;

/// The cache key: (user, credential, level), made from an [`AccessPermit`] by
/// [`CacheKey::new`]. What a [`CredentialSource`](crate::CredentialSource) is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    user: UserId,
    credential: AccountId,
    level: Level,
}

impl CacheKey {
    /// The key for using `permit`'s account, on behalf of `permit`'s user, at `level`.
    ///
    /// `level` is what the caller will do with the credential; the permit must cover it
    /// ([`Level::covers`]): a read permit never makes a trade key. A lower level than
    /// the permit's is allowed (a trade permit may fetch for reading) and is what the
    /// entry is keyed by.
    ///
    /// # Errors
    ///
    /// [`FetchError::Refused`] (403) when `level` is above the permit's level.
    pub fn new<P: AccessPermit + ?Sized>(permit: &P, level: Level) -> Result<Self, FetchError> {
        if !permit.level().covers(level) {
            tracing::warn!(
                code = FetchError::Refused.code(),
                user = %permit.user(),
                credential = %permit.account(),
                permitted = %permit.level(),
                level = %level,
                "credential lookup above the permit's level refused"
            );
            return Err(FetchError::Refused);
        }
        Ok(Self {
            user: permit.user().clone(),
            credential: permit.account().clone(),
            level,
        })
    }

    /// The user.
    #[must_use]
    pub const fn user(&self) -> &UserId {
        &self.user
    }

    /// The credential (the account whose key it is).
    #[must_use]
    pub const fn credential(&self) -> &AccountId {
        &self.credential
    }

    /// The access level.
    #[must_use]
    pub const fn level(&self) -> Level {
        self.level
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A test policy engine's permit: whatever the test says was allowed.
    #[derive(Debug)]
    pub(crate) struct Allowed(pub(crate) UserId, pub(crate) AccountId, pub(crate) Level);

    impl AccessPermit for Allowed {
        fn user(&self) -> &UserId {
            &self.0
        }
        fn account(&self) -> &AccountId {
            &self.1
        }
        fn level(&self) -> Level {
            self.2
        }
    }

    /// A test policy engine's proof of ownership.
    #[derive(Debug)]
    pub(crate) struct Owns(pub(crate) UserId, pub(crate) AccountId);

    impl access_types::OwnerPermit for Owns {
        fn owner(&self) -> &UserId {
            &self.0
        }
        fn account(&self) -> &AccountId {
            &self.1
        }
    }

    /// Proof that `owner` owns `account`.
    pub(crate) fn owns(owner: &str, account: &str) -> Owns {
        Owns(
            UserId::new(owner).unwrap(),
            AccountId::new(account).unwrap(),
        )
    }

    /// The key of a permit for (`user`, `credential`, `level`), at `level`.
    pub(crate) fn key(user: &str, credential: &str, level: Level) -> CacheKey {
        let permit = Allowed(
            UserId::new(user).unwrap(),
            AccountId::new(credential).unwrap(),
            level,
        );
        CacheKey::new(&permit, level).unwrap()
    }

    #[test]
    fn a_key_never_exceeds_its_permit() {
        let permit = |level| {
            Allowed(
                UserId::new("u").unwrap(),
                AccountId::new("acct-1").unwrap(),
                level,
            )
        };
        assert_eq!(
            CacheKey::new(&permit(Level::Read), Level::Trade).unwrap_err(),
            FetchError::Refused
        );
        let key = CacheKey::new(&permit(Level::Trade), Level::Read).unwrap();
        assert_eq!(
            (key.user().as_str(), key.credential().as_str(), key.level()),
            ("u", "acct-1", Level::Read)
        );
        assert_eq!(
            CacheKey::new(&permit(Level::Trade), Level::Trade)
                .unwrap()
                .level(),
            Level::Trade
        );
    }
}
