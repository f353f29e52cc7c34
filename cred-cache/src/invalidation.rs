//! Invalidation scopes, the cross-instance message format, and the
//! [`InvalidationPublisher`] extension point.
//!
//! # Message format, version 1
//!
//! (Specified with the other formats in `FORMATS.md`, section 3, with vectors.)
//!
//! One message per invalidation, a UTF-8 JSON object with exactly these
//! members (no others are accepted):
//!
//! | member   | type   | meaning |
//! |----------|--------|---------|
//! | `v`      | number | format version, `1` |
//! | `origin` | string | the publishing cache's [instance id](crate::CredCache::instance_id): 16 lowercase hex digits |
//! | `scope`  | string | `"user"`, `"credential"`, `"user_credential"` or `"all"` |
//! | `id`     | string or `null` | the user id (scopes `user` and `user_credential`) or credential id (scope `credential`); absent or `null` for `all` |
//! | `credential` | string | the credential id, for scope `user_credential` only (absent otherwise) |
//!
//! Ids follow the rules of [`UserId`] / [`AccountId`] (1 to 128 bytes of
//! visible ASCII). Example: `{"v":1,"origin":"0123456789abcdef","scope":"user","id":"u-42"}`,
//! `{"v":1,"origin":"0123456789abcdef","scope":"user_credential","id":"u-42","credential":"acct-7"}`.
//! A receiver that predates scope `user_credential` refuses such a message and
//! therefore drops everything (see below): old and new instances can share a
//! channel during an upgrade.
//!
//! A message carries ids only, never a secret. A receiver ignores messages
//! carrying its own origin (it has invalidated already) and treats a message
//! it cannot decode as `all`: an unreadable message may have been a revoke, so
//! the receiver fails closed by dropping everything (the cost is refetches).

use std::borrow::Cow;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PublishError;
use access_types::{AccountId, UserId};

/// What to drop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// Every entry of this user (every credential, every level).
    User(UserId),
    /// Every entry of this credential (every user, every level): use it when a
    /// key is revoked, rotated or deleted.
    Credential(AccountId),
    /// The entries of one user for one credential (every level): use it when a
    /// share of that credential's account with that user is changed or revoked.
    /// Unlike [`Invalidation::User`], it leaves the user's other credentials
    /// alone, so whoever may revoke shares of one account cannot disturb the
    /// user's lookups of other accounts.
    UserCredential(UserId, AccountId),
    /// Everything.
    All,
}

/// One invalidation and the instance that issued it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidationMessage {
    /// The publishing cache's instance id.
    pub origin: String,
    /// What to drop.
    pub invalidation: Invalidation,
}

/// A message could not be decoded. Opaque on purpose: the receiver's answer is
/// the same whatever was wrong (drop everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid invalidation message")]
pub struct MessageError;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    v: u8,
    origin: &'a str,
    scope: &'a str,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    credential: Option<Cow<'a, str>>,
}

/// Length of an instance id in hex digits.
const ORIGIN_LEN: usize = 16;

impl InvalidationMessage {
    /// Encodes the message (format version 1).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let (scope, id, credential) = match &self.invalidation {
            Invalidation::User(u) => ("user", Some(Cow::Borrowed(u.as_str())), None),
            Invalidation::Credential(c) => ("credential", Some(Cow::Borrowed(c.as_str())), None),
            Invalidation::UserCredential(u, c) => (
                "user_credential",
                Some(Cow::Borrowed(u.as_str())),
                Some(Cow::Borrowed(c.as_str())),
            ),
            Invalidation::All => ("all", None, None),
        };
        let wire = Wire {
            v: 1,
            origin: &self.origin,
            scope,
            id,
            credential,
        };
        // Serialising a struct of strings and a number cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes a message, strictly.
    ///
    /// # Errors
    ///
    /// [`MessageError`] for anything but a well-formed version 1 message.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let wire: Wire<'_> = serde_json::from_slice(bytes).map_err(|_| MessageError)?;
        if wire.v != 1
            || wire.origin.len() != ORIGIN_LEN
            || !wire
                .origin
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(MessageError);
        }
        let invalidation = match (wire.scope, wire.id.as_deref(), wire.credential.as_deref()) {
            ("user", Some(id), None) => {
                Invalidation::User(UserId::new(id).map_err(|_| MessageError)?)
            }
            ("credential", Some(id), None) => {
                Invalidation::Credential(AccountId::new(id).map_err(|_| MessageError)?)
            }
            ("user_credential", Some(id), Some(credential)) => Invalidation::UserCredential(
                UserId::new(id).map_err(|_| MessageError)?,
                AccountId::new(credential).map_err(|_| MessageError)?,
            ),
            ("all", None, None) => Invalidation::All,
            _ => return Err(MessageError),
        };
        Ok(Self {
            origin: wire.origin.to_owned(),
            invalidation,
        })
    }
}

/// Carries invalidations to the other instances of the service (the
/// `redis` module (feature `redis`) implements it over Redis pub/sub).
///
/// # Security contract
///
/// * Publish ids only (the [`InvalidationMessage`] holds nothing else).
/// * Return an error when the message may not have left this process; never
///   report success on a doubt. The cache has invalidated locally before
///   calling, and the TTL (at most 60 s) bounds how long another instance can
///   keep a copy if publishing fails.
/// * Be bounded in time: [`CredCache::invalidate`](crate::CredCache::invalidate)
///   awaits it.
#[async_trait]
pub trait InvalidationPublisher: Send + Sync + Debug {
    /// Sends one message to every subscribed instance.
    ///
    /// # Errors
    ///
    /// [`PublishError`] when the message could not be handed to the bus.
    async fn publish(&self, message: &InvalidationMessage) -> Result<(), PublishError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORIGIN: &str = "0123456789abcdef";

    #[test]
    fn known_messages() {
        let m = InvalidationMessage {
            origin: ORIGIN.into(),
            invalidation: Invalidation::User(UserId::new("u-42").unwrap()),
        };
        assert_eq!(
            m.encode(),
            br#"{"v":1,"origin":"0123456789abcdef","scope":"user","id":"u-42"}"#
        );
        let all = br#"{"v":1,"origin":"0123456789abcdef","scope":"all"}"#;
        assert_eq!(
            InvalidationMessage::decode(all).unwrap().invalidation,
            Invalidation::All
        );
    }

    /// `tests/data/invalidation_*_pass.json` decode and re-encode to a message
    /// that decodes to the same value; `_fail` files are refused.
    #[test]
    fn vectors() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let mut seen = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.starts_with("invalidation_") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let result = InvalidationMessage::decode(&bytes);
            if name.ends_with("_pass.json") {
                seen.0 += 1;
                let m = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(InvalidationMessage::decode(&m.encode()).unwrap(), m);
            } else {
                assert!(name.ends_with("_fail.json"), "{name}: not *_pass/*_fail");
                seen.1 += 1;
                assert_eq!(result, Err(MessageError), "{name}");
            }
        }
        assert!(seen.0 >= 4 && seen.1 >= 8, "too few vectors: {seen:?}");
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        "[!-~]{1,128}"
    }

    proptest! {
        #[test]
        fn round_trip(
            scope in 0u8..4,
            id in id_strategy(),
            credential in id_strategy(),
            origin in "[0-9a-f]{16}",
        ) {
            let invalidation = match scope {
                0 => Invalidation::User(UserId::new(&id).unwrap()),
                1 => Invalidation::Credential(AccountId::new(&id).unwrap()),
                2 => Invalidation::UserCredential(
                    UserId::new(&id).unwrap(),
                    AccountId::new(&credential).unwrap(),
                ),
                _ => Invalidation::All,
            };
            let m = InvalidationMessage { origin, invalidation };
            prop_assert_eq!(InvalidationMessage::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = InvalidationMessage::decode(&bytes);
        }
    }
}
