//! Refresh tokens on every store: rotation, reuse detection, 1000 concurrent rotations of
//! one token, expiry, revocation, step-up, sweep, and the user lifecycle events (password
//! change, sign-out-everywhere, disable) ending every family, also while rotations race
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::refresh::{FamilyRecord, REFRESH_TOKEN_LEN, RefreshStore};
use auth_core::{
    Accounts, Password, RefreshConfig, RefreshError, RefreshToken, RefreshTokenError,
    RefreshTokens, SessionConfig, Sessions, StoreError, User,
};
use base64ct::Encoding as _;
use support::{FullStore, fast_hasher};

/// A store with every trait the refresh tests use.
trait RStore: FullStore + RefreshStore {}
impl<T: FullStore + RefreshStore> RStore for T {}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn amr(methods: &[&str]) -> Vec<String> {
    methods.iter().map(|m| (*m).to_owned()).collect()
}

/// A valid token text with distinctive bytes.
fn token_from(seed: &str) -> RefreshToken {
    let mut bytes = [0u8; 32];
    for (i, b) in seed.bytes().enumerate() {
        bytes[i % 32] ^= b.rotate_left(u32::try_from(i % 7).unwrap());
    }
    let text = format!("rft_{}", base64ct::Base64UrlUnpadded::encode_string(&bytes));
    RefreshToken::parse(&text).unwrap()
}

fn again(t: &RefreshToken) -> RefreshToken {
    RefreshToken::parse(t.expose_secret()).unwrap()
}

async fn new_user<S: RStore>(store: &S, id: &str) -> User {
    support::ensure_user(store, id).await
}

fn service<S: RStore>(store: &Arc<S>) -> RefreshTokens {
    RefreshTokens::new(store.clone(), RefreshConfig::default())
}

/// Every refresh suite, on one store.
async fn all<S: RStore>(store: Arc<S>) {
    rotation_and_reuse(store.clone()).await;
    unknown_and_malformed(store.clone()).await;
    expiry(store.clone()).await;
    revoke(store.clone()).await;
    revoke_user(store.clone()).await;
    step_up(store.clone()).await;
    revoke_family(store.clone()).await;
    epoch_events(store.clone()).await;
    sweep(store.clone()).await;
}

async fn rotation_and_reuse<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-rotate").await;
    let before = now();
    let (t0, f0) = refresh
        .issue(&user, amr(&["pwd"]), before - 5)
        .await
        .unwrap();
    assert_eq!(t0.expose_secret().len(), REFRESH_TOKEN_LEN);
    assert!(t0.expose_secret().starts_with("rft_"));
    assert_eq!(f0.user_id(), "rf-rotate");
    assert_eq!(f0.generation(), 0);
    assert_eq!(f0.amr(), ["pwd"]);
    assert_eq!(f0.auth_time(), before - 5);
    assert!(f0.expires_at() >= before + 30 * 24 * 3600);
    assert!(f0.idle_expires_at() >= before + 7 * 24 * 3600);

    let (t1, f1) = refresh.rotate(&t0).await.unwrap();
    assert_ne!(t1.expose_secret(), t0.expose_secret());
    assert_eq!(f1.id(), f0.id());
    assert_eq!(f1.generation(), 1);
    assert_eq!(f1.epoch(), user.session_epoch);
    assert_eq!(f1.amr(), ["pwd"]);
    assert_eq!(f1.auth_time(), before - 5);
    assert_eq!(f1.expires_at(), f0.expires_at(), "rotation never extends");
    let (t2, f2) = refresh.rotate(&t1).await.unwrap();
    assert_eq!(f2.generation(), 2);

    // t0 is spent: presenting it is reuse, and the whole family dies with it.
    assert!(matches!(
        refresh.rotate(&t0).await,
        Err(RefreshError::Reused)
    ));
    assert!(matches!(
        refresh.rotate(&t2).await,
        Err(RefreshError::Revoked)
    ));
    assert!(matches!(
        refresh.rotate(&t1).await,
        Err(RefreshError::Reused)
    ));
    let listed = refresh.list("rf-rotate").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at().is_some());

    // Another family of the same user is untouched.
    let (u0, _) = refresh.issue(&user, amr(&["pwd"]), before).await.unwrap();
    refresh.rotate(&u0).await.unwrap();
}

async fn unknown_and_malformed<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    assert!(matches!(
        refresh.rotate(&token_from("never issued")).await,
        Err(RefreshError::Unknown)
    ));
    let good = token_from("x");
    let text = good.expose_secret();
    assert_eq!(
        RefreshToken::parse(&text[1..]).unwrap_err(),
        RefreshTokenError::Length
    );
    assert_eq!(
        RefreshToken::parse(&format!("rfx_{}", &text[4..])).unwrap_err(),
        RefreshTokenError::Prefix
    );
    assert_eq!(
        RefreshToken::parse(&format!("rft_{}=", &text[5..])).unwrap_err(),
        RefreshTokenError::Encoding
    );
    // A last character with unused bits set is not canonical.
    let mut last = text.to_owned();
    last.pop();
    last.push('B');
    assert_eq!(
        RefreshToken::parse(&last).unwrap_err(),
        RefreshTokenError::Encoding
    );
    assert!(RefreshToken::parse(&format!("rft_{}+", &text[4..46])).is_err());
    let user = new_user(&*store, "rf-amr").await;
    assert!(matches!(
        refresh.issue(&user, amr(&["p w"]), now()).await,
        Err(RefreshError::InvalidAmr)
    ));
    assert!(matches!(
        refresh.issue(&user, amr(&[""]), now()).await,
        Err(RefreshError::InvalidAmr)
    ));
}

async fn expiry<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-expiry").await;
    let t = now();
    let epoch = user.session_epoch;
    // Absolute expiry passed, idle fine.
    let abs = token_from("absolute");
    let rec = FamilyRecord::new("fam-abs", "rf-expiry", epoch, t - 100, t - 1, t + 100);
    store.insert_family(&rec, &abs.digest()).await.unwrap();
    assert!(matches!(
        refresh.rotate(&abs).await,
        Err(RefreshError::Expired)
    ));
    // Idle expiry passed, absolute fine.
    let idle = token_from("idle");
    let rec = FamilyRecord::new("fam-idle", "rf-expiry", epoch, t - 100, t + 100, t - 1);
    store.insert_family(&rec, &idle.digest()).await.unwrap();
    assert!(matches!(
        refresh.rotate(&idle).await,
        Err(RefreshError::Expired)
    ));
    // Both in the future: rotates, and the idle expiry moves to now + idle lifetime.
    let live = token_from("live");
    let rec = FamilyRecord::new("fam-live", "rf-expiry", epoch, t - 100, t + 100, t + 10);
    store.insert_family(&rec, &live.digest()).await.unwrap();
    let (_, f) = refresh.rotate(&live).await.unwrap();
    assert!(f.idle_expires_at() >= t + 7 * 24 * 3600);
    assert_eq!(f.expires_at(), t + 100);

    // Configured lifetimes, end to end: a one-second idle lifetime.
    let short = RefreshTokens::new(
        store.clone(),
        RefreshConfig::default().idle_lifetime(Duration::from_secs(1)),
    );
    assert_eq!(short.config().idle(), Duration::from_secs(1));
    let (tok, _) = short.issue(&user, amr(&["pwd"]), t).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        short.rotate(&tok).await,
        Err(RefreshError::Expired)
    ));
}

async fn revoke<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-revoke").await;
    let (t0, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    assert!(refresh.revoke(t0.expose_secret()).await.unwrap());
    assert!(matches!(
        refresh.rotate(&t0).await,
        Err(RefreshError::Revoked)
    ));
    // Again, malformed, unknown: all Ok, none found (but the revoked one is still found).
    assert!(refresh.revoke(t0.expose_secret()).await.unwrap());
    assert!(!refresh.revoke("not a token").await.unwrap());
    assert!(!refresh.revoke("").await.unwrap());
    assert!(
        !refresh
            .revoke(token_from("unknown").expose_secret())
            .await
            .unwrap()
    );
    // A spent token revokes its family too (logout with an older copy).
    let (a0, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (a1, _) = refresh.rotate(&a0).await.unwrap();
    assert!(refresh.revoke(a0.expose_secret()).await.unwrap());
    assert!(matches!(
        refresh.rotate(&a1).await,
        Err(RefreshError::Revoked)
    ));
}

async fn revoke_user<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-revoke-user").await;
    let other = new_user(&*store, "rf-revoke-other").await;
    let (a, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (b, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (c, _) = refresh.issue(&other, amr(&["pwd"]), now()).await.unwrap();
    assert_eq!(refresh.revoke_user("rf-revoke-user").await.unwrap(), 2);
    assert_eq!(refresh.revoke_user("rf-revoke-user").await.unwrap(), 0);
    for t in [&a, &b] {
        assert!(matches!(
            refresh.rotate(t).await,
            Err(RefreshError::Revoked)
        ));
    }
    refresh.rotate(&c).await.unwrap();
}

async fn step_up<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-stepup").await;
    let (t0, f0) = refresh
        .issue(&user, amr(&["pwd"]), now() - 600)
        .await
        .unwrap();
    let at = now();
    assert!(
        refresh
            .set_auth_time("rf-stepup", f0.id(), at, amr(&["pwd", "otp"]))
            .await
            .unwrap()
    );
    // Scoped by user.
    assert!(
        !refresh
            .set_auth_time("rf-someone-else", f0.id(), at + 1, amr(&["otp"]))
            .await
            .unwrap()
    );
    let (_, f1) = refresh.rotate(&t0).await.unwrap();
    assert_eq!(f1.auth_time(), at);
    assert_eq!(f1.amr(), ["pwd", "otp"]);
    assert!(matches!(
        refresh
            .set_auth_time("rf-stepup", f0.id(), at, amr(&["two words"]))
            .await,
        Err(RefreshError::InvalidAmr)
    ));
}

/// Revoking a family by (user, family id): only that family of that user.
async fn revoke_family<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-revfam").await;
    let (t0, f0) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (t1, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    // Another user's id revokes nothing.
    assert!(
        !refresh
            .revoke_family("rf-someone-else", f0.id())
            .await
            .unwrap()
    );
    assert!(refresh.revoke_family("rf-revfam", f0.id()).await.unwrap());
    assert!(!refresh.revoke_family("rf-revfam", f0.id()).await.unwrap());
    assert!(
        refresh.rotate(&t0).await.is_err(),
        "the revoked family is refused"
    );
    assert!(refresh.rotate(&t1).await.is_ok(), "the other family lives");
}

fn superseded(r: Result<(RefreshToken, FamilyRecord), RefreshError>) -> bool {
    matches!(
        r,
        Err(RefreshError::UserRefused {
            code: "user.credential_superseded" | "user.disabled"
        })
    )
}

async fn epoch_events<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions, fast_hasher());
    let pw = Password::new("refresh-epoch-password-1");
    let pw2 = Password::new("refresh-epoch-password-2");

    // Password change.
    let user = accounts.register("rf-pw@example.com", &pw).await.unwrap();
    let (a, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (b, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let (b, _) = refresh.rotate(&b).await.unwrap();
    accounts.change_password(&user.id, &pw, &pw2).await.unwrap();
    assert!(superseded(refresh.rotate(&a).await));
    assert!(superseded(refresh.rotate(&b).await));
    // A login that read the user before the change cannot start a family after it.
    assert!(matches!(
        refresh.issue(&user, amr(&["pwd"]), now()).await,
        Err(RefreshError::Store(StoreError::UserRefused))
    ));
    // The user as read now can.
    let fresh = store.user_by_id(&user.id).await.unwrap().unwrap();
    let (c, _) = refresh.issue(&fresh, amr(&["pwd"]), now()).await.unwrap();

    // Sign-out everywhere.
    accounts.sign_out_everywhere(&user.id).await.unwrap();
    assert!(superseded(refresh.rotate(&c).await));

    // Disable (and re-enable: old families stay dead).
    let fresh = store.user_by_id(&user.id).await.unwrap().unwrap();
    let (d, _) = refresh.issue(&fresh, amr(&["pwd"]), now()).await.unwrap();
    accounts.set_disabled(&user.id, true).await.unwrap();
    assert!(superseded(refresh.rotate(&again(&d)).await));
    accounts.set_disabled(&user.id, false).await.unwrap();
    assert!(superseded(refresh.rotate(&d).await));
    let disabled_read = store.user_by_id(&user.id).await.unwrap().unwrap();
    accounts.set_disabled(&user.id, true).await.unwrap();
    let mut stale = disabled_read.clone();
    stale.session_epoch += 1; // even the current epoch is refused while disabled
    assert!(matches!(
        refresh.issue(&stale, amr(&["pwd"]), now()).await,
        Err(RefreshError::Store(StoreError::UserRefused))
    ));
    // Unknown user.
    let ghost = support::user("rf-ghost", "ghost@example.com");
    assert!(matches!(
        refresh.issue(&ghost, amr(&["pwd"]), now()).await,
        Err(RefreshError::Store(StoreError::UserRefused))
    ));
}

async fn sweep<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-sweep").await;
    let t = now();
    let (live, _) = refresh.issue(&user, amr(&["pwd"]), t).await.unwrap();
    let (revoked0, _) = refresh.issue(&user, amr(&["pwd"]), t).await.unwrap();
    let (revoked1, _) = refresh.rotate(&revoked0).await.unwrap();
    refresh.revoke(revoked1.expose_secret()).await.unwrap();
    let old = token_from("sweep-old");
    let rec = FamilyRecord::new(
        "fam-sweep-old",
        "rf-sweep",
        user.session_epoch,
        t - 9,
        t - 1,
        t + 9,
    );
    store.insert_family(&rec, &old.digest()).await.unwrap();
    let n = refresh.sweep(t).await.unwrap();
    assert!(n >= 2, "swept {n}");
    let left = refresh.list("rf-sweep").await.unwrap();
    assert_eq!(left.len(), 1);
    // A spent token of a swept family is only unknown now.
    assert!(matches!(
        refresh.rotate(&revoked0).await,
        Err(RefreshError::Unknown)
    ));
    assert!(matches!(
        refresh.rotate(&old).await,
        Err(RefreshError::Unknown)
    ));
    refresh.rotate(&live).await.unwrap();
}

/// `n` concurrent rotations of one token: exactly one wins, every other one is reuse,
/// and the winner's new token dies with the family.
async fn concurrent_rotations<S: RStore>(store: Arc<S>, n: usize) {
    let refresh = service(&store);
    let user = new_user(&*store, "rf-race").await;
    let (t0, _) = refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap();
    let text: Arc<str> = t0.expose_secret().into();
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let refresh = refresh.clone();
        let text = text.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let presented = RefreshToken::parse(&text).unwrap();
            start.wait().await;
            refresh.rotate(&presented).await
        }));
    }
    let mut won = Vec::new();
    let mut reused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok((t, _)) => won.push(t),
            Err(RefreshError::Reused) => reused += 1,
            Err(e) => panic!("unexpected rotation error: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one rotation wins");
    assert_eq!(reused, n - 1);
    assert!(matches!(
        refresh.rotate(&won[0]).await,
        Err(RefreshError::Revoked)
    ));
}

/// Rotations race a sign-out-everywhere: once it has returned, no token of any family
/// rotates, and every rotation that succeeded handed out the old epoch (so an access
/// token minted from it is refused by an epoch-checking resolver too).
async fn race_sign_out<S: RStore>(store: Arc<S>) {
    let refresh = service(&store);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions, fast_hasher());
    let user = new_user(&*store, "rf-race-signout").await;
    let old_epoch = user.session_epoch;
    let signed_out = Arc::new(AtomicBool::new(false));
    let late_successes = Arc::new(AtomicU64::new(0));
    // Every family exists before any rotation starts: an issue queued behind eight
    // rotating tasks on SQLite's write lock would only test the busy timeout.
    let mut first = Vec::new();
    for _ in 0..8 {
        first.push(refresh.issue(&user, amr(&["pwd"]), now()).await.unwrap().0);
    }
    let mut tasks = Vec::new();
    for mut tok in first {
        let refresh = refresh.clone();
        let signed_out = signed_out.clone();
        let late = late_successes.clone();
        tasks.push(tokio::spawn(async move {
            let mut rotations = 0u64;
            loop {
                let after = signed_out.load(Ordering::SeqCst);
                match refresh.rotate(&tok).await {
                    Ok((next, family)) => {
                        assert_eq!(family.epoch(), old_epoch);
                        if after {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                        tok = next;
                        rotations += 1;
                    }
                    Err(RefreshError::UserRefused { .. }) => break,
                    Err(e) => panic!("unexpected rotation error: {e}"),
                }
                if after && rotations > 10_000 {
                    break;
                }
                // The memory store never waits: let the sign-out task run.
                tokio::task::yield_now().await;
            }
            (tok, rotations)
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    accounts
        .sign_out_everywhere("rf-race-signout")
        .await
        .unwrap();
    signed_out.store(true, Ordering::SeqCst);
    let mut total = 0;
    for task in tasks {
        let (tok, rotations) = task.await.unwrap();
        total += rotations;
        assert!(superseded(refresh.rotate(&tok).await));
    }
    assert!(total > 0, "the rotations did race the sign-out");
    assert_eq!(
        late_successes.load(Ordering::SeqCst),
        0,
        "a rotation that started after the sign-out returned succeeded"
    );
}

async fn concurrency<S: RStore>(store: Arc<S>) {
    concurrent_rotations(store.clone(), 1000).await;
    race_sign_out(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_refresh() {
    all(Arc::new(auth_core::MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_refresh_concurrency() {
    concurrency(Arc::new(auth_core::MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
async fn sqlite_store(dir: &tempfile::TempDir) -> auth_core::SqliteStore {
    use std::str::FromStr as _;
    // The races queue hundreds of writers on SQLite's one write lock: on a loaded CI
    // machine the default 5 s busy timeout is a flake, not a finding.
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(60));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    let store = auth_core::SqliteStore::new(pool);
    store.migrate().await.unwrap();
    store
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refresh() {
    let dir = tempfile::tempdir().unwrap();
    all(Arc::new(sqlite_store(&dir).await)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refresh_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    concurrency(Arc::new(sqlite_store(&dir).await)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_refresh() {
    let pg = support::PgSchema::create("auth_refresh_test", 8).await;
    all(Arc::new(pg.store.clone())).await;
    pg.drop_schema().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_refresh_concurrency() {
    let pg = support::PgSchema::create("auth_refresh_race", 16).await;
    concurrency(Arc::new(pg.store.clone())).await;
    pg.drop_schema().await;
}

/// A user who must change the password (admin-created, operator reset) gets only a
/// restricted credential from a login; an access token carries no restriction (only the
/// optional epoch check would find it), so no refresh family may be issued to such a
/// user. (Before the fix: issued, and rotations minted unrestricted access tokens.)
#[tokio::test]
async fn no_family_for_a_user_who_must_change_the_password() {
    let store = Arc::new(auth_core::MemoryStore::new());
    let user = new_user(store.as_ref(), "restricted-user").await;
    let restricted = user.clone().with_must_change_password(true);
    let refresh = service(&store);
    assert!(matches!(
        refresh.issue(&restricted, amr(&["pwd"]), now()).await,
        Err(RefreshError::UserRefused { .. })
    ));
    assert!(refresh.list("restricted-user").await.unwrap().is_empty());
    assert!(refresh.issue(&user, amr(&["pwd"]), now()).await.is_ok());
}
