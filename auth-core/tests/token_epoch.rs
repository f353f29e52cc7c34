//! The optional epoch check of the access-token resolver: a token issued before a
//! password change, sign-out-everywhere or disable is refused with the check and
//! accepted without it; a failing user store is 503.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use std::sync::Arc;

use async_trait::async_trait;
use auth_core::password::PasswordConfig;
use auth_core::token::{AccessTokenRequest, AccessTokenResolver, Issuer, MemorySigningKeyStore};
use auth_core::user::{RevokeScope, SsoIdentity, User, UserStore};
use auth_core::{
    Accounts, Credential, CredentialKind, MemoryStore, Password, PasswordHasher, Resolution,
    Resolver, SessionConfig, Sessions, StoreError,
};

fn bearer(token: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, token).unwrap()
}

fn code(res: &Resolution) -> &'static str {
    match res {
        Resolution::Invalid(r) | Resolution::Unavailable(r) => r.code(),
        Resolution::Pass => "pass",
        Resolution::Authenticated(_) => "authenticated",
    }
}

struct Setup {
    store: Arc<MemoryStore>,
    accounts: Accounts,
    issuer: Issuer,
    checked: AccessTokenResolver,
    unchecked: AccessTokenResolver,
}

async fn setup() -> Setup {
    let store = Arc::new(MemoryStore::new());
    let hasher = PasswordHasher::new(auth_core::danger::weak_password_params(
        PasswordConfig::default(),
        256,
        1,
        1,
    ))
    .unwrap();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions, hasher);
    let issuer = Issuer::builder("https://auth.strongroom.test", "trading-api")
        .build(Arc::new(MemorySigningKeyStore::new()))
        .await
        .unwrap();
    let checked = AccessTokenResolver::new(issuer.clone()).with_epoch_check(store.clone());
    let unchecked = AccessTokenResolver::new(issuer.clone());
    Setup {
        store,
        accounts,
        issuer,
        checked,
        unchecked,
    }
}

async fn token_for(s: &Setup, user: &User) -> String {
    s.issuer
        .issue(&AccessTokenRequest::new(
            user.id.clone(),
            user.session_epoch,
            ["pwd"],
            0,
        ))
        .await
        .unwrap()
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn sign_out_everywhere_ends_tokens_only_with_the_check() {
    let s = setup().await;
    let pw = Password::new("epoch check password 0123");
    let user = s.accounts.register("alice@example.com", &pw).await.unwrap();
    let token = token_for(&s, &user).await;
    assert_eq!(
        code(&s.checked.resolve(&bearer(&token)).await),
        "authenticated"
    );
    s.accounts.sign_out_everywhere(&user.id).await.unwrap();
    assert_eq!(
        code(&s.checked.resolve(&bearer(&token)).await),
        "user.credential_superseded"
    );
    assert_eq!(
        code(&s.unchecked.resolve(&bearer(&token)).await),
        "authenticated"
    );
    // A token minted at the new epoch works.
    let user = s.store.user_by_id(&user.id).await.unwrap().unwrap();
    let fresh = token_for(&s, &user).await;
    assert_eq!(
        code(&s.checked.resolve(&bearer(&fresh)).await),
        "authenticated"
    );
}

#[tokio::test]
async fn password_change_and_disable_end_tokens() {
    let s = setup().await;
    let pw = Password::new("epoch check password 0123");
    let user = s.accounts.register("bob@example.com", &pw).await.unwrap();
    let token = token_for(&s, &user).await;
    s.accounts
        .change_password(&user.id, &pw, &Password::new("a new password 456789"))
        .await
        .unwrap();
    assert_eq!(
        code(&s.checked.resolve(&bearer(&token)).await),
        "user.credential_superseded"
    );
    assert_eq!(
        code(&s.unchecked.resolve(&bearer(&token)).await),
        "authenticated"
    );

    let user = s.store.user_by_id(&user.id).await.unwrap().unwrap();
    let token = token_for(&s, &user).await;
    assert_eq!(
        code(&s.checked.resolve(&bearer(&token)).await),
        "authenticated"
    );
    s.accounts.set_disabled(&user.id, true).await.unwrap();
    let res = s.checked.resolve(&bearer(&token)).await;
    assert!(
        matches!(code(&res), "user.disabled" | "user.credential_superseded"),
        "{res:?}"
    );

    // An unknown user.
    let ghost = User::new("ghost", "ghost@example.com", None, 0);
    let token = token_for(&s, &ghost).await;
    assert_eq!(
        code(&s.checked.resolve(&bearer(&token)).await),
        "user.unknown"
    );
}

#[tokio::test]
async fn restricted_users_get_a_restricted_principal() {
    let s = setup().await;
    let user = User::new("u-restricted", "r@example.com", None, 0).with_must_change_password(true);
    s.store.create_user(&user).await.unwrap();
    let token = token_for(&s, &user).await;
    let Resolution::Authenticated(p) = s.checked.resolve(&bearer(&token)).await else {
        panic!("not authenticated")
    };
    assert!(p.is_restricted());
}

/// A user store whose every call fails.
#[derive(Debug)]
struct DownStore;

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("down".into()))
}

#[async_trait]
impl UserStore for DownStore {
    async fn create_user(&self, _: &User) -> Result<(), StoreError> {
        down()
    }
    async fn create_user_with_identity(&self, _: &User, _: &SsoIdentity) -> Result<(), StoreError> {
        down()
    }
    async fn user_by_id(&self, _: &str) -> Result<Option<User>, StoreError> {
        down()
    }
    async fn user_by_email(&self, _: &str) -> Result<Option<User>, StoreError> {
        down()
    }
    async fn set_password(
        &self,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: bool,
        _: RevokeScope,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn set_disabled(&self, _: &str, _: bool) -> Result<bool, StoreError> {
        down()
    }
    async fn revoke_credentials(&self, _: &str, _: RevokeScope) -> Result<bool, StoreError> {
        down()
    }
    async fn set_email_verified(&self, _: &str) -> Result<bool, StoreError> {
        down()
    }
    async fn user_by_identity(&self, _: &SsoIdentity) -> Result<Option<User>, StoreError> {
        down()
    }
    async fn identity_of(&self, _: &str) -> Result<Option<SsoIdentity>, StoreError> {
        down()
    }
    async fn bind_identity(&self, _: &str, _: &SsoIdentity) -> Result<(), StoreError> {
        down()
    }
}

#[tokio::test]
async fn a_failing_user_store_is_unavailable_never_allowed() {
    let s = setup().await;
    let user = User::new("u-1", "u1@example.com", None, 0);
    let token = token_for(&s, &user).await;
    let r = AccessTokenResolver::new(s.issuer.clone()).with_epoch_check(Arc::new(DownStore));
    let res = r.resolve(&bearer(&token)).await;
    assert!(matches!(res, Resolution::Unavailable(_)), "{res:?}");
    assert_eq!(code(&res), "access_token.user_store_unavailable");
}
