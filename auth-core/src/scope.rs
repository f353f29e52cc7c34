//! API-key scopes and what a route requires.
//!
//! # Vocabulary
//!
//! | Scope | Grants |
//! |---|---|
//! | `read` | reading the user's own data and read-level exchange operations |
//! | `trade` | trade-level exchange operations (placing, amending, cancelling orders) |
//! | `manage` | changing the user's own configuration that is not interactive-only (storing and deleting secrets, revoking keys) |
//!
//! Scopes are independent: `trade` does not imply `read` (a bot that places orders and
//! reads balances holds `["read", "trade"]`).
//!
//! # Who is restricted
//!
//! * A principal **with scopes** (a scoped API key) may use a route only when the route
//!   declares a [`Requires::Scope`] that it holds. A route that declares nothing refuses
//!   it (fail closed).
//! * A principal **without scopes** (a session, an SSO JWT, the static token, the
//!   internal secret, an unscoped API key) has the user's full rights on
//!   [`Requires::Scope`] routes.
//! * [`Requires::Interactive`] routes (creating API keys, registering or deleting exchange
//!   accounts, sharing, changing the password, logging out) accept only a person's login:
//!   a session or an SSO JWT. Every API key, scoped or not, the static token and the
//!   internal secret are refused there, so no key can mint another key or widen its own
//!   rights.
//! * On a route that declares nothing, every API key is refused; other principals
//!   without scopes pass.
//!
//! Refusals are 403 with a stable body (`{"error":"insufficient_scope"}` or
//! `{"error":"interactive_session_required"}`, [`ScopeRefusal::error`]) and a log code
//! ([`ScopeRefusal::code`]).

use core::fmt;

use crate::principal::{AuthMethod, Principal};

/// One API-key scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scope {
    /// Read the user's own data and run read-level exchange operations.
    Read,
    /// Run trade-level exchange operations.
    Trade,
    /// Change the user's own configuration where that is not interactive-only.
    Manage,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Trade, Scope::Manage];

    /// The name as stored on a key and sent by clients (`"read"`, `"trade"`, `"manage"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Trade => "trade",
            Self::Manage => "manage",
        }
    }

    /// Parses an exact scope name (no trimming, no case folding).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route (or one operation behind a route) requires of its principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requires {
    /// The scope, for a principal that has scopes; any principal without scopes passes.
    Scope(Scope),
    /// A person's login (a session or an SSO JWT); every API key is refused.
    Interactive,
}

impl Requires {
    /// Whether `principal` may use a route that requires `self`.
    ///
    /// # Errors
    ///
    /// [`ScopeRefusal::Insufficient`] when the principal has scopes and not this one;
    /// [`ScopeRefusal::InteractiveOnly`] when an interactive route is called with anything
    /// but a session or an SSO JWT.
    pub fn check(self, principal: &Principal) -> Result<(), ScopeRefusal> {
        match self {
            Self::Interactive => {
                if is_interactive(principal) && principal.scopes().is_empty() {
                    Ok(())
                } else {
                    Err(ScopeRefusal::InteractiveOnly)
                }
            }
            Self::Scope(scope) => {
                if principal.scopes().is_empty() || principal.has_scope(scope.as_str()) {
                    Ok(())
                } else {
                    Err(ScopeRefusal::Insufficient)
                }
            }
        }
    }

    /// The decision for a route that declares nothing: every API key and every principal
    /// with scopes is refused.
    ///
    /// # Errors
    ///
    /// [`ScopeRefusal::Undeclared`].
    pub fn check_undeclared(principal: &Principal) -> Result<(), ScopeRefusal> {
        if principal.method() == AuthMethod::ApiKey || !principal.scopes().is_empty() {
            Err(ScopeRefusal::Undeclared)
        } else {
            Ok(())
        }
    }
}

/// A session, an SSO JWT or one of our own access tokens: a person logged in.
fn is_interactive(principal: &Principal) -> bool {
    match principal.method() {
        AuthMethod::Session | AuthMethod::Sso | AuthMethod::AccessToken => true,
        AuthMethod::StaticToken | AuthMethod::ApiKey | AuthMethod::InternalService => false,
    }
}

/// Why a principal may not use a route. Every variant is 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeRefusal {
    /// The principal's scopes do not include the route's.
    #[error("the credential's scopes do not cover this route")]
    Insufficient,
    /// The route declares no requirement, and the principal is an API key or has scopes.
    #[error("the route declares no scope; API keys are refused")]
    Undeclared,
    /// The route is for interactive sessions only.
    #[error("this route needs an interactive session")]
    InteractiveOnly,
}

impl ScopeRefusal {
    /// The stable code for logs and audit events.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Insufficient => "scope.insufficient",
            Self::Undeclared => "scope.undeclared",
            Self::InteractiveOnly => "scope.interactive_only",
        }
    }

    /// The HTTP status to answer: 403 for every refusal.
    #[must_use]
    pub const fn status(self) -> http::StatusCode {
        match self {
            Self::Insufficient | Self::Undeclared | Self::InteractiveOnly => {
                http::StatusCode::FORBIDDEN
            }
        }
    }

    /// The stable value of the response body's `error` field: `insufficient_scope` (the
    /// RFC 6750 error name; also for undeclared routes) or
    /// `interactive_session_required`.
    #[must_use]
    pub const fn error(self) -> &'static str {
        match self {
            Self::Insufficient | Self::Undeclared => "insufficient_scope",
            Self::InteractiveOnly => "interactive_session_required",
        }
    }
}

/// Checks the scopes a new API key asks for against the credential creating it: each
/// must be in the vocabulary, and a creator with scopes may only hand out scopes it
/// holds and may not create an unscoped key.
///
/// # Errors
///
/// [`DelegationError::UnknownScope`] for a name outside the vocabulary;
/// [`DelegationError::Exceeds`] when the new key would have rights its creator lacks.
pub fn check_delegation(creator: &Principal, requested: &[String]) -> Result<(), DelegationError> {
    for name in requested {
        if Scope::parse(name).is_none() {
            return Err(DelegationError::UnknownScope);
        }
    }
    if creator.scopes().is_empty() {
        return Ok(());
    }
    if requested.is_empty() || !requested.iter().all(|s| creator.has_scope(s)) {
        return Err(DelegationError::Exceeds);
    }
    Ok(())
}

/// Why a key with the requested scopes may not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DelegationError {
    /// A requested scope is not in the vocabulary (field `scopes`).
    #[error("scopes: each must be one of read, trade, manage")]
    UnknownScope,
    /// The new key would have rights its creator lacks (403).
    #[error("scopes: a key may not be given rights its creator lacks")]
    Exceeds,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str]) -> Principal {
        Principal::new("u-1", AuthMethod::ApiKey)
            .with_credential_id("k-1")
            .with_scopes(scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    const METHODS: [AuthMethod; 6] = [
        AuthMethod::StaticToken,
        AuthMethod::Session,
        AuthMethod::Sso,
        AuthMethod::ApiKey,
        AuthMethod::InternalService,
        AuthMethod::AccessToken,
    ];

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for bad in ["", "READ", " read", "read ", "admin", "trade:btc", "rea"] {
            assert_eq!(Scope::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_scoped_key_passes_only_its_own_scopes() {
        let read = key(&["read"]);
        assert_eq!(Requires::Scope(Scope::Read).check(&read), Ok(()));
        for s in [Scope::Trade, Scope::Manage] {
            assert_eq!(
                Requires::Scope(s).check(&read),
                Err(ScopeRefusal::Insufficient),
                "{s}"
            );
        }
        let trade = key(&["trade"]);
        assert_eq!(
            Requires::Scope(Scope::Read).check(&trade),
            Err(ScopeRefusal::Insufficient),
            "trade does not imply read"
        );
        // A scope outside the vocabulary (an old key) covers nothing.
        let odd = key(&["admin"]);
        for s in Scope::ALL {
            assert!(Requires::Scope(s).check(&odd).is_err());
        }
    }

    #[test]
    fn interactive_routes_take_sessions_and_sso_only() {
        for method in METHODS {
            let p = Principal::new("u-1", method);
            let want = matches!(
                method,
                AuthMethod::Session | AuthMethod::Sso | AuthMethod::AccessToken
            );
            assert_eq!(Requires::Interactive.check(&p).is_ok(), want, "{method}");
            // Without scopes, every scope route is open.
            for s in Scope::ALL {
                assert_eq!(Requires::Scope(s).check(&p), Ok(()), "{method} {s}");
            }
        }
        for scopes in [&[][..], &["read", "trade", "manage"][..]] {
            assert_eq!(
                Requires::Interactive.check(&key(scopes)),
                Err(ScopeRefusal::InteractiveOnly)
            );
        }
        // A session that somehow carries scopes is held to them.
        let scoped_session =
            Principal::new("u-1", AuthMethod::Session).with_scopes(vec!["read".to_owned()]);
        assert!(Requires::Interactive.check(&scoped_session).is_err());
    }

    #[test]
    fn undeclared_routes_refuse_every_key() {
        for method in METHODS {
            let p = Principal::new("u-1", method);
            assert_eq!(
                Requires::check_undeclared(&p).is_ok(),
                method != AuthMethod::ApiKey,
                "{method}"
            );
        }
        assert_eq!(
            Requires::check_undeclared(&key(&["read", "trade", "manage"])),
            Err(ScopeRefusal::Undeclared)
        );
        let scoped = Principal::new("u-1", AuthMethod::Sso).with_scopes(vec!["read".to_owned()]);
        assert!(Requires::check_undeclared(&scoped).is_err());
    }

    #[test]
    fn delegation_never_widens() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let session = Principal::new("u-1", AuthMethod::Session);
        assert_eq!(check_delegation(&session, &s(&[])), Ok(()));
        assert_eq!(check_delegation(&session, &s(&["read", "trade"])), Ok(()));
        assert_eq!(
            check_delegation(&session, &s(&["admin"])),
            Err(DelegationError::UnknownScope)
        );
        let read = key(&["read"]);
        assert_eq!(check_delegation(&read, &s(&["read"])), Ok(()));
        assert_eq!(
            check_delegation(&read, &s(&[])),
            Err(DelegationError::Exceeds),
            "a scoped key may not mint an unscoped one"
        );
        assert_eq!(
            check_delegation(&read, &s(&["read", "trade"])),
            Err(DelegationError::Exceeds)
        );
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(ScopeRefusal::Insufficient.error(), "insufficient_scope");
        assert_eq!(ScopeRefusal::Undeclared.error(), "insufficient_scope");
        assert_eq!(
            ScopeRefusal::InteractiveOnly.error(),
            "interactive_session_required"
        );
        assert_eq!(ScopeRefusal::Undeclared.code(), "scope.undeclared");
    }
}
