//! The default audit sink writes stable codes to `tracing`; untrusted input never
//! reaches an error message, a `Debug` string or a log line (canary test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{acct, user};
use grant_policy::store::MemoryStore;
use grant_policy::{
    AccountId, CredentialsOnFile, Level, ManualClock, Notional, Operation, Policy, RiskGuard,
    RiskLimits, UserId,
};

const CANARY: &str = "CANARY-e3b0c442-SECRET";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Everything logged by this test binary: one process-wide TRACE subscriber, installed
/// by the first caller. A subscriber set for this test's thread alone (`set_default`)
/// lost two of the lines below once in CI: tracing caches each callsite's interest for
/// the whole process, and with one dispatcher registered it asks the registering
/// thread's default, so a test beside this one (no subscriber) hitting the same line
/// first cached `never` for it. With a global subscriber every thread's default is
/// interested; the test reads only the lines naming its own ids.
fn capture() -> Captured {
    static GLOBAL: OnceLock<Captured> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let captured = Captured::default();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(captured.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            captured
        })
        .clone()
}

#[tokio::test]
async fn decisions_are_logged_with_stable_codes_and_no_canary() {
    let captured = capture();

    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(1_795_305_600));
    let policy = Policy::builder(store.clone()).clock(clock.clone()).build();
    let risk = RiskGuard::builder(store.clone(), store)
        .clock(clock)
        .build();
    // Ids of this test only: the capture also holds the other tests' lines.
    let (alice, bob) = (user("audit-alice"), user("audit-bob"));
    let a = acct("audit-acct-1");
    policy
        .register_account(&alice, &a, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &a, &bob, Level::Read, None)
        .await
        .unwrap();

    // Untrusted request fields carrying a canary: every parser refuses without echoing.
    let mut shown = Vec::new();
    let e = CANARY.parse::<Operation>().unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = Level::parse_field(CANARY, "want").unwrap_err();
    assert_eq!(e.field(), "want");
    shown.push(format!("{e} {e:?}"));
    let e = UserId::new(&format!("{CANARY}\n")).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = AccountId::new(&format!("{CANARY} x")).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = Notional::from_minor_units(u64::MAX).unwrap_err();
    shown.push(format!("{e} {e:?}"));
    for s in &shown {
        assert!(!s.contains(CANARY), "echoed: {s}");
    }

    let allow = policy.decide(&bob, &a, Operation::Balance, None).await;
    let deny = policy.decide(&bob, &a, Operation::CreateOrder, None).await;
    let never = policy.decide(&alice, &a, Operation::Withdraw, None).await;
    let hidden = policy
        .decide(&user("audit-eve"), &a, Operation::Balance, None)
        .await;
    assert!(
        allow.is_allowed() && !deny.is_allowed() && !never.is_allowed() && !hidden.is_allowed()
    );

    risk.set_limits(
        &alice,
        RiskLimits {
            max_order_notional: Notional::from_minor_units(10).unwrap(),
            daily_cap: Notional::from_minor_units(10).unwrap(),
        },
    )
    .await
    .unwrap();
    risk.enable_live_trading(&alice, &a, CredentialsOnFile::Present)
        .await
        .unwrap();
    let r = risk
        .admit(&alice, &a, Notional::from_minor_units(10).unwrap())
        .await;
    let refused = risk
        .admit(&alice, &a, Notional::from_minor_units(1).unwrap())
        .await;
    shown.push(format!("{policy:?} {risk:?} {r:?} {refused:?}"));

    let all = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let logs: String = all
        .lines()
        .filter(|line| line.contains("\"audit-"))
        .map(|line| format!("{line}\n"))
        .collect();
    for needle in [
        "code=\"grant.allow\"",
        "code=\"grant.deny.insufficient_level\"",
        "code=\"grant.deny.never_allowed\"",
        "code=\"grant.deny.not_visible\"",
        "code=\"grant.share\"",
        "code=\"risk.admit.live\"",
        "code=\"risk.refuse.daily_cap_exceeded\"",
        "user=\"audit-bob\"",
        "account=\"audit-acct-1\"",
        "operation=\"create_order\"",
        "grant_policy::audit",
    ] {
        assert!(logs.contains(needle), "missing {needle} in:\n{logs}");
    }
    assert_eq!(
        logs.matches("grant decision").count(),
        4,
        "one line per decision"
    );
    assert!(!all.contains(CANARY));
    for s in &shown {
        assert!(!s.contains(CANARY));
    }
}
