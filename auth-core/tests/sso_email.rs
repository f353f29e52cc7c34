//! Email normalisation never merges two mailboxes (hardening item A7).
//!
//! `normalize_email` used Unicode lower-casing, which maps several non-ASCII characters
//! onto ASCII ones (U+212A KELVIN SIGN to `k`, U+0130 to `i` + U+0307, ...). A verified SSO
//! email `\u{212A}ate@example.com` was then adopted into the account of
//! `kate@example.com`, and registering `\u{212A}en@example.com` stored `ken@example.com`.
//! The rule now: ASCII letters are lower-cased, every other character is kept as given.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::password::{PasswordConfig, PasswordHasher};
use auth_core::session::{SessionConfig, Sessions};
use auth_core::sso::{BindingKind, IdentityBinder, VerifiedIdentity};
use auth_core::user::{User, UserStore};
use auth_core::{Accounts, MemoryStore, Password, SsoBinder, normalize_email};
use proptest::prelude::*;

/// Pairs that Unicode case mapping (or compatibility normalisation) merges into one
/// string, although they are different mailboxes.
const LOOKALIKES: &[(&str, &str)] = &[
    // KELVIN SIGN lower-cases to ASCII k.
    ("\u{212A}ate@example.com", "kate@example.com"),
    ("\u{212A}en@example.com", "ken@example.com"),
    // ANGSTROM SIGN lower-cases to U+00E5.
    ("\u{212B}sa@example.com", "\u{e5}sa@example.com"),
    // Dotted capital I lower-cases to i + COMBINING DOT ABOVE.
    ("\u{130}van@example.com", "i\u{307}van@example.com"),
    // Dotless i and the Turkish capital I: different letters from ASCII i.
    ("\u{131}van@example.com", "ivan@example.com"),
    // Fullwidth letters (NFKC maps them to ASCII; their lower case is fullwidth).
    ("\u{FF2B}ATE@example.com", "\u{FF4B}ate@example.com"),
    ("kate@\u{FF25}XAMPLE.com", "kate@\u{FF45}xample.com"),
    // Combining marks: precomposed e-acute vs e + COMBINING ACUTE ACCENT (NFC equal).
    ("jos\u{E9}@example.com", "jose\u{301}@example.com"),
    ("JOS\u{C9}@example.com", "jos\u{E9}@example.com"),
    // Ligatures: U+FB01 LATIN SMALL LIGATURE FI (NFKC "fi"), U+0132 IJ (lower U+0133).
    ("\u{FB01}nn@example.com", "finn@example.com"),
    ("\u{132}sbrand@example.com", "\u{133}sbrand@example.com"),
    // Greek final sigma and capital sigma.
    ("\u{3A3}ofia@example.com", "\u{3C3}ofia@example.com"),
    ("\u{3C2}ofia@example.com", "\u{3C3}ofia@example.com"),
    // German sharp s: capital U+1E9E lower-cases to U+00DF.
    ("gro\u{1E9E}@example.com", "gro\u{DF}@example.com"),
];

#[test]
fn unicode_lookalikes_stay_distinct() {
    for (a, b) in LOOKALIKES {
        let na = normalize_email(a).unwrap();
        let nb = normalize_email(b).unwrap();
        assert_ne!(na, nb, "{a:?} and {b:?} must stay two mailboxes");
        // Non-ASCII characters are kept as given.
        assert_eq!(na, a.to_ascii_lowercase(), "{a:?}");
        assert_eq!(nb, b.to_ascii_lowercase(), "{b:?}");
    }
    assert_eq!(
        normalize_email("\u{212A}en@example.com").unwrap(),
        "\u{212A}en@example.com"
    );
}

#[test]
fn ascii_case_and_surrounding_whitespace_still_fold() {
    assert_eq!(
        normalize_email("  Alice@Example.COM ").unwrap(),
        "alice@example.com"
    );
    assert_eq!(
        normalize_email("J\u{C9}R\u{D4}ME@Example.com").unwrap(),
        "j\u{C9}r\u{D4}me@example.com"
    );
    assert!(normalize_email("a b@example.com").is_err());
    assert!(normalize_email("ab\u{0}@example.com").is_err());
    assert!(normalize_email("no-at-sign").is_err());
}

/// Only ASCII whitespace is trimmed: an address padded with Unicode whitespace (no-break
/// space, ideographic space, line separator, next line, ...) is another string, never the
/// bare mailbox, so a verified SSO email padded that way cannot adopt its account.
#[test]
fn unicode_whitespace_is_not_trimmed_into_another_mailbox() {
    for ws in [
        '\u{A0}', '\u{85}', '\u{1680}', '\u{2003}', '\u{2028}', '\u{3000}',
    ] {
        for padded in [
            format!("{ws}alice@example.com"),
            format!("alice@example.com{ws}"),
        ] {
            assert!(
                normalize_email(&padded).is_err(),
                "{padded:?} must not normalise to alice@example.com"
            );
        }
    }
    assert_eq!(
        normalize_email("\t\n\r alice@example.com \x0c").unwrap(),
        "alice@example.com"
    );
}

/// Groups of characters that Unicode case mapping (or NFKC) relates to each other.
const TWINS: &[&[char]] = &[
    &['a', 'A'],
    &['k', 'K', '\u{212A}'],
    &['i', 'I', '\u{130}', '\u{131}'],
    &['s', 'S', '\u{17F}'],
    &['\u{3A3}', '\u{3C3}', '\u{3C2}'],
    &['\u{E5}', '\u{C5}', '\u{212B}'],
    &['e', 'E', '\u{301}', '\u{307}'],
    &['\u{E9}', '\u{C9}'],
    &['\u{FF2B}', '\u{FF4B}'],
    &['f', '\u{FB01}'],
    &['\u{DF}', '\u{1E9E}'],
    &['1', '.'],
];

/// Two addresses built position by position from the same group of related characters,
/// so that they are often Unicode case variants or lookalikes of each other.
fn twin_pair() -> impl Strategy<Value = (String, String)> {
    let position = (0..TWINS.len(), 0usize..4, 0usize..4).prop_map(|(g, x, y)| {
        let group = TWINS[g];
        (group[x % group.len()], group[y % group.len()])
    });
    (
        prop::collection::vec(position.clone(), 1..8),
        prop::collection::vec(position, 1..6),
    )
        .prop_map(|(local, domain)| {
            let build = |pick: fn(&(char, char)) -> char| {
                let l: String = local.iter().map(pick).collect();
                let d: String = domain.iter().map(pick).collect();
                format!("{l}@{d}")
            };
            (build(|p| p.0), build(|p| p.1))
        })
}

proptest! {
    /// Injective on distinct mailboxes: two inputs that normalise to the same string
    /// differ at most by ASCII case (and surrounding whitespace).
    #[test]
    fn normalisation_is_injective_on_distinct_mailboxes(
        (a, b) in twin_pair(),
        pad in "[ \t]{0,2}",
    ) {
        let padded = format!("{pad}{a}{pad}");
        let (na, nb) = (normalize_email(&padded).unwrap(), normalize_email(&b).unwrap());
        prop_assert_eq!(na == nb, a.eq_ignore_ascii_case(&b), "{:?} {:?}", a, b);
    }

    /// Unicode case mapping applied to an address gives the same mailbox only when it
    /// changed nothing but ASCII letters.
    #[test]
    fn unicode_case_variants_are_other_mailboxes((a, _) in twin_pair()) {
        let na = normalize_email(&a).unwrap();
        for variant in [a.to_lowercase(), a.to_uppercase()] {
            if let Ok(nv) = normalize_email(&variant) {
                prop_assert_eq!(na == nv, variant.eq_ignore_ascii_case(&a));
            }
        }
    }
}

fn fast_hasher() -> PasswordHasher {
    let config = auth_core::danger::weak_password_params(PasswordConfig::default(), 256, 1, 1);
    PasswordHasher::new(config).unwrap()
}

#[tokio::test]
async fn registration_keeps_the_kelvin_sign() {
    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions, fast_hasher());
    let pw = Password::new("correct horse battery");
    let ken = accounts.register("ken@example.com", &pw).await.unwrap();
    let kelvin = accounts
        .register("\u{212A}en@example.com", &pw)
        .await
        .unwrap();
    assert_eq!(kelvin.email, "\u{212A}en@example.com");
    assert_ne!(kelvin.id, ken.id);
    assert_eq!(
        store
            .user_by_email("ken@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        ken.id
    );
}

#[tokio::test]
async fn verified_sso_lookalike_email_never_adopts_an_account() {
    for (i, (lookalike, victim)) in LOOKALIKES.iter().enumerate() {
        let store = Arc::new(MemoryStore::new());
        let victim_id = format!("victim-{i}");
        let victim_email = normalize_email(victim).unwrap();
        store
            .create_user(&User::new(&victim_id, victim_email, None, 1_700_000_000))
            .await
            .unwrap();
        let binder = SsoBinder::new(store.clone());
        let identity = VerifiedIdentity::new(
            "https://idp.test",
            format!("attacker-{i}"),
            Some((*lookalike).to_owned()),
            true,
            4_102_444_800,
        );
        let bound = binder.bind(&identity).await.unwrap();
        assert_ne!(bound.user_id, victim_id, "{lookalike:?} adopted {victim:?}");
        assert_eq!(bound.kind, BindingKind::Provisioned, "{lookalike:?}");
        assert_eq!(store.identity_of(&victim_id).await.unwrap(), None);
    }
}
