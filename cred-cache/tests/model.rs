//! Property test against a model: over random sequences of lookups and
//! invalidations (by user, by credential, all), a lookup never returns a value
//! fetched before the last invalidation that covers its key, and returns the
//! cached value (no fetch) when no invalidation covered it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestSource, key};
use cred_cache::{AccountId, CredCache, Invalidation, Level, UserId};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Get(u8, u8, bool),
    InvalidateUser(u8),
    InvalidateCredential(u8),
    InvalidateAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0u8..3, any::<bool>()).prop_map(|(u, c, t)| Op::Get(u, c, t)),
        1 => (0u8..3).prop_map(Op::InvalidateUser),
        1 => (0u8..3).prop_map(Op::InvalidateCredential),
        1 => Just(Op::InvalidateAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn lookups_follow_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let source = TestSource::new(Duration::ZERO);
            let cache = CredCache::builder(Arc::clone(&source) as _).build().unwrap();
            // Model: key -> the fetch number of the value that must be served.
            let mut model: HashMap<(u8, u8, bool), u64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Get(u, c, trade) => {
                        let level = if trade { Level::Trade } else { Level::Read };
                        let k = key(&format!("u{u}"), &format!("c{c}"), level);
                        let before = source.fetches();
                        let got = cache.get_or_fetch(&k, k.level).await.unwrap();
                        let n: u64 = got.expose_api_key().trim_start_matches("key-").parse().unwrap();
                        match model.get(&(u, c, trade)) {
                            Some(&expected) => {
                                assert_eq!(n, expected, "cached value not served");
                                assert_eq!(source.fetches(), before);
                            }
                            None => {
                                assert_eq!(n, before + 1, "stale or foreign value served");
                                model.insert((u, c, trade), n);
                            }
                        }
                    }
                    Op::InvalidateUser(u) => {
                        cache.invalidate_user(&UserId::new(&format!("u{u}")).unwrap()).await.unwrap();
                        model.retain(|&(mu, _, _), _| mu != u);
                    }
                    Op::InvalidateCredential(c) => {
                        cache
                            .invalidate_credential(&AccountId::new(&format!("c{c}")).unwrap())
                            .await
                            .unwrap();
                        model.retain(|&(_, mc, _), _| mc != c);
                    }
                    Op::InvalidateAll => {
                        cache.invalidate(Invalidation::All).await.unwrap();
                        model.clear();
                    }
                }
            }
        });
    }
}
