//! Fuzz the remote vault source's response parsing (`cred_cache::remote::parse_response`).
//!
//! Input: byte 0 picks the requested level (even: read, odd: trade); the rest is the
//! response body. Oracle: nothing panics, and an accepted response is for the requested
//! credential, never read-only for a trade request, and holds only fields within the
//! documented limits.
#![no_main]

use std::sync::LazyLock;

use cred_cache::remote::parse_response;
use cred_cache::{AccessPermit, AccountId, CacheKey, Level, MAX_FIELD_LEN, UserId};
use libfuzzer_sys::fuzz_target;

/// The fuzz target's own policy engine: a trade permit for (fuzz-user, acct-1).
#[derive(Debug)]
struct Allowed(UserId, AccountId);

impl AccessPermit for Allowed {
    fn user(&self) -> &UserId {
        &self.0
    }
    fn account(&self) -> &AccountId {
        &self.1
    }
    fn level(&self) -> Level {
        Level::Trade
    }
}

static KEYS: LazyLock<[CacheKey; 2]> = LazyLock::new(|| {
    let permit = Allowed(
        UserId::new("fuzz-user").unwrap(),
        AccountId::new("acct-1").unwrap(),
    );
    [
        CacheKey::new(&permit, Level::Read).unwrap(),
        CacheKey::new(&permit, Level::Trade).unwrap(),
    ]
});

fn valid(field: &str) -> bool {
    !field.is_empty() && field.len() <= MAX_FIELD_LEN && field.bytes().all(|b| b.is_ascii_graphic())
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let key = &KEYS[usize::from(selector & 1)];
    if let Ok(credential) = parse_response(body, key) {
        assert_eq!(credential.credential_id(), key.credential());
        assert!(!(credential.is_read_only() && key.level() == Level::Trade));
        assert!(valid(credential.expose_api_key()));
        assert!(valid(credential.expose_secret()));
        assert!(credential.expose_passphrase().is_none_or(valid));
    }
});
