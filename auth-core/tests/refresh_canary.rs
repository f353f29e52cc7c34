//! Refresh tokens under a capturing subscriber: reuse detection logs
//! `code = "refresh.reuse_detected"` with the family and user ids, and no refresh token
//! (issued, rotated, spent, or a crafted canary) ever appears in the captured output, in
//! `Debug` or in an error's `Display`/`Debug`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::{MemoryStore, RefreshConfig, RefreshToken, RefreshTokens, User, UserStore};

/// A valid token text (43 canonical base64url characters after the prefix).
const CANARY: &str = "rft_CANARYrefreshTOKENc4n4ry0123456789abcdefghA";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_is_logged_and_no_refresh_token_leaks() {
    let capture = Capture::install();

    let store = Arc::new(MemoryStore::new());
    let user = User::new("canary-user", "canary@example.com", None, 1);
    store.create_user(&user).await.unwrap();
    let refresh = RefreshTokens::new(store.clone(), RefreshConfig::default());
    let mut secrets: Vec<String> = vec![CANARY.to_owned()];
    let mut out = String::new();

    let canary = RefreshToken::parse(CANARY).unwrap();
    out += &format!("{canary:?}");
    let e = refresh.rotate(&canary).await.unwrap_err();
    out += &format!("{e:?} {e}");
    assert!(!refresh.revoke(CANARY).await.unwrap());
    for bad in [
        &CANARY[1..],
        &format!("{CANARY}x"),
        &CANARY.replace("rft_", "xxx_"),
    ] {
        let e = RefreshToken::parse(bad).unwrap_err();
        out += &format!("{e:?} {e}");
        assert!(!refresh.revoke(bad).await.unwrap());
    }

    let (t0, f0) = refresh
        .issue(&user, vec!["pwd".into()], 1_700_000_000)
        .await
        .unwrap();
    out += &format!("{t0:?} {f0:?}");
    let (t1, f1) = refresh.rotate(&t0).await.unwrap();
    out += &format!("{t1:?} {f1:?}");
    secrets.push(t0.expose_secret().to_owned());
    secrets.push(t1.expose_secret().to_owned());

    // Reuse: t0 again.
    let e = refresh.rotate(&t0).await.unwrap_err();
    out += &format!("{e:?} {e}");
    let e = refresh.rotate(&t1).await.unwrap_err();
    out += &format!("{e:?} {e}");
    assert!(refresh.revoke(t1.expose_secret()).await.unwrap());
    out += &format!(
        "{refresh:?} {:?}",
        refresh.list("canary-user").await.unwrap()
    );

    let logs = capture.text();
    let reuse_line = logs
        .lines()
        // This test's family: the binary's other tests log reuse of their own.
        .find(|l| l.contains("refresh.reuse_detected") && l.contains(f0.id()))
        .expect("reuse is logged");
    assert!(reuse_line.contains("WARN"), "{reuse_line}");
    assert!(reuse_line.contains("canary-user"), "{reuse_line}");
    assert!(logs.contains("refresh.rotated"));
    for secret in &secrets {
        // The whole token and its secret part.
        for needle in [secret.as_str(), &secret[4..]] {
            assert!(!logs.contains(needle), "token in the logs");
            assert!(!out.contains(needle), "token in Debug or an error");
        }
    }
    assert!(!logs.contains("CANARY") && !out.contains("CANARY"));
}
