//! Permits: what a policy engine guarantees to a credential store, as types.
//!
//! A credential store (cred-cache) must only open an account's credential for a user
//! the policy allowed, at a level the policy allowed, and must only let an account's
//! owner store or delete that account's credential. Rather than trusting its caller to
//! have asked first, it takes a *permit*: a value that only a policy engine produces,
//! and only for an allowed decision. These two traits are the contract between the
//! two; grant-policy's `Permit` and `Ownership` implement them, and another engine can
//! implement them for its own types.
//!
//! # The contract of an implementation
//!
//! The traits cannot stop a crate from implementing them for a type it builds at will:
//! they are a reviewed extension point, like a `danger` module (find every
//! implementation with `grep -rn "impl.*AccessPermit\|impl.*OwnerPermit"`). An
//! implementing type must:
//!
//! * **Be produced only by the policy engine, only for an allowed decision** on exactly
//!   the user, account and level it reports: private fields and no public constructor,
//!   so that no caller can write one down (a `compile_fail` test of that is a good
//!   idea). A denied, failed or undecidable request yields no value of the type.
//! * **Be short-lived**: one decision, one request. Not `Clone`, not `Copy`, not
//!   serialisable, no `Default`: a caller that wants another fetch asks the policy
//!   again (which sees a revoke made in between). cred-cache takes an [`AccessPermit`]
//!   by value, so a permit authorises exactly one lookup.
//! * **Report only what was decided**: [`AccessPermit::level`] is the level the
//!   decision allowed for the operation asked about (least privilege), never more than
//!   the user holds.
//! * Hold no secret (ids and levels only, so `Debug` may show them).

use core::fmt::Debug;

use crate::id::{AccountId, UserId};
use crate::level::Level;

/// Proof that a policy allowed `user` to use `account` at `level` (and so at any lower
/// level), for one request. Read the [module documentation](self) for the contract an
/// implementation must keep.
///
/// What a credential store takes as the key of a fetch instead of loose ids: "the fetch
/// was authorised" is then a type.
pub trait AccessPermit: Send + Sync + Debug {
    /// The user the decision allowed.
    fn user(&self) -> &UserId;

    /// The account the decision allowed.
    fn account(&self) -> &AccountId;

    /// The highest level the decision allowed for this request. A consumer refuses any
    /// use above it ([`Level::covers`]).
    fn level(&self) -> Level;
}

/// Proof that a policy established `owner` as the owner of `account`, for one request:
/// what storing, replacing or deleting the account's credential requires (a store that
/// overwrites by account id would otherwise let anyone who can name an account replace
/// its key). Same contract as [`AccessPermit`] ([module documentation](self)): only the
/// policy engine produces it, only for the account's owner; not `Clone`, not
/// serialisable.
pub trait OwnerPermit: Send + Sync + Debug {
    /// The owner the policy established.
    fn owner(&self) -> &UserId;

    /// The account owned.
    fn account(&self) -> &AccountId;
}
