//! Strict parsing of the vault's answer (untrusted input: fuzzed by
//! `fuzz/fuzz_targets/vault_response.rs`).
//!
//! # Response format, version 1
//!
//! A successful answer is HTTP 200 with `Content-Type: application/json` and a
//! body of at most the configured size cap, holding one JSON object with
//! exactly these members, each at most once, in any order:
//!
//! | member          | type            | rule |
//! |-----------------|-----------------|------|
//! | `credential_id` | string          | equal to the requested `account_id` |
//! | `api_key`       | string          | 1 to 1024 bytes of visible ASCII |
//! | `secret`        | string          | same |
//! | `passphrase`    | string or null  | same when a string; may be absent |
//! | `read_only`     | boolean         | `true` when the key cannot trade |
//!
//! Strings holding secrets (`api_key`, `secret`, `passphrase`) must be
//! written without JSON escapes (so a secret cannot hold `"` or `\`), so that
//! the parser reads them in place from the zeroizing body buffer and never
//! makes an unwiped copy. The complete specification, with vectors, is
//! `FORMATS.md` section 2. Anything else (another member, a duplicate, a wrong type, an
//! escape in a secret, trailing data) is refused. A response with
//! `read_only: true` to a `trade` request is refused as
//! [`FetchError::Refused`](crate::FetchError::Refused).

use std::borrow::Cow;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::credential::ExchangeCredential;
use crate::error::CredentialError;
use access_types::Level;

use crate::ids::CacheKey;

/// Why a vault response was refused. Names the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not a JSON object of the documented shape: syntax error, unknown,
    /// missing or duplicate member, wrong type, escaped secret or trailing
    /// data. (The parser's own message is dropped: it can quote the input.)
    #[error("response is not a well-formed credential object")]
    Malformed,
    /// A member has the right type but a refused value.
    #[error("response field is invalid: {0}")]
    Field(#[from] CredentialError),
    /// `credential_id` differs from the requested account.
    #[error("response credential_id does not match the request")]
    CredentialMismatch,
    /// The key is read-only and Trade was requested.
    #[error("response is read-only but trade was requested")]
    ReadOnly,
    /// [`encode_response`]: a secret field holds `"` or `\`, which the format carries
    /// only unescaped, so cannot carry at all (names the field, never the value).
    #[error("credential field {0} holds a quote or backslash: the format cannot carry it")]
    Unencodable(&'static str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    /// Not secret: may be escaped (then it is copied).
    #[serde(borrow)]
    credential_id: Cow<'a, str>,
    api_key: &'a str,
    secret: &'a str,
    #[serde(default)]
    passphrase: Option<&'a str>,
    read_only: bool,
}

fn owned(value: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(value.len()));
    s.push_str(value);
    s
}

/// Parses a vault response body for the request `key`.
///
/// Never panics, whatever `body` holds.
///
/// # Errors
///
/// [`ResponseError`] when the body breaks any rule of the format.
pub fn parse_response(body: &[u8], key: &CacheKey) -> Result<ExchangeCredential, ResponseError> {
    let wire: Wire<'_> = serde_json::from_slice(body).map_err(|_| ResponseError::Malformed)?;
    if wire.credential_id != key.credential().as_str() {
        return Err(ResponseError::CredentialMismatch);
    }
    let credential = ExchangeCredential::new(
        key.credential().clone(),
        owned(wire.api_key),
        owned(wire.secret),
        wire.passphrase.map(owned),
        wire.read_only,
    )?;
    if credential.is_read_only() && key.level() == Level::Trade {
        return Err(ResponseError::ReadOnly);
    }
    Ok(credential)
}

#[derive(serde::Serialize)]
struct WireOut<'a> {
    credential_id: &'a str,
    api_key: &'a str,
    secret: &'a str,
    passphrase: Option<&'a str>,
    read_only: bool,
}

/// Encodes `credential` as a vault response body (format version 1, above): what a
/// vault service answers and [`parse_response`] reads. The body is built in one
/// wiped buffer sized in advance, so no unwiped copy of a secret is left behind.
///
/// # Errors
///
/// [`ResponseError::Unencodable`] when a secret field holds `"` or `\` (valid in a
/// credential, but the format forbids escapes in secrets).
pub fn encode_response(
    credential: &ExchangeCredential,
) -> Result<Zeroizing<Vec<u8>>, ResponseError> {
    let fields = [
        ("api_key", Some(credential.expose_api_key())),
        ("secret", Some(credential.expose_secret())),
        ("passphrase", credential.expose_passphrase()),
    ];
    let mut size = 128 + credential.credential_id().as_str().len() * 6;
    for (field, value) in fields {
        if let Some(value) = value {
            if value.bytes().any(|b| b == b'"' || b == b'\\') {
                return Err(ResponseError::Unencodable(field));
            }
            size += value.len();
        }
    }
    let mut body = Zeroizing::new(Vec::with_capacity(size));
    let wire = WireOut {
        credential_id: credential.credential_id().as_str(),
        api_key: credential.expose_api_key(),
        secret: credential.expose_secret(),
        passphrase: credential.expose_passphrase(),
        read_only: credential.is_read_only(),
    };
    // Writing into a Vec cannot fail; the capacity covers the whole body (the secrets
    // need no escapes, the id at most six bytes per byte), so it never reallocates.
    serde_json::to_writer(&mut *body, &wire).map_err(|_| ResponseError::Malformed)?;
    debug_assert!(body.len() <= size);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use access_types::AccountId;

    use proptest::prelude::*;

    fn key(level: Level) -> CacheKey {
        crate::ids::tests::key("u1", "acct-1", level)
    }

    /// Every file in `tests/data/vault_response_*` is checked here: `_pass`
    /// files must parse for a Read request, `_fail` files must not.
    #[test]
    fn vectors() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let mut seen = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.starts_with("vault_response_") {
                continue;
            }
            let body = std::fs::read(&path).unwrap();
            let result = parse_response(&body, &key(Level::Read));
            if name.ends_with("_pass.json") {
                seen.0 += 1;
                let c = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(c.credential_id().as_str(), "acct-1");
            } else {
                assert!(name.ends_with("_fail.json"), "{name}: not *_pass/*_fail");
                seen.1 += 1;
                assert!(result.is_err(), "{name} parsed");
            }
        }
        assert!(seen.0 >= 2 && seen.1 >= 8, "too few vectors: {seen:?}");
    }

    #[test]
    fn trade_on_read_only_is_refused() {
        let body = br#"{"credential_id":"acct-1","api_key":"k","secret":"s","read_only":true}"#;
        assert!(parse_response(body, &key(Level::Read)).is_ok());
        assert_eq!(
            parse_response(body, &key(Level::Trade)).unwrap_err(),
            ResponseError::ReadOnly
        );
    }

    #[test]
    fn errors_name_fields_not_values() {
        let body = br#"{"credential_id":"acct-1","api_key":"k","secret":"","read_only":false}"#;
        let e = parse_response(body, &key(Level::Read)).unwrap_err();
        assert_eq!(e.to_string(), "response field is invalid: secret is empty");
        let body =
            br#"{"credential_id":"acct-1","api_key":"k","secret":"CANARY","read_only":"CANARY2"}"#;
        let e = parse_response(body, &key(Level::Read)).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("CANARY"));
    }

    #[test]
    fn a_quote_or_backslash_in_a_secret_is_not_encoded() {
        for (api, secret, named) in [
            ("key\"x", "secret", "api_key"),
            ("key", "se\\cret", "secret"),
        ] {
            let credential = ExchangeCredential::new(
                AccountId::new("acct-1").unwrap(),
                owned(api),
                owned(secret),
                None,
                false,
            )
            .unwrap();
            let err = encode_response(&credential).unwrap_err();
            assert_eq!(err, ResponseError::Unencodable(named));
            assert!(!err.to_string().contains("se\\cret"));
        }
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_response(&body, &key(Level::Trade));
        }

        #[test]
        fn encode_then_parse(api in "[!#-\\[\\]-~]{1,64}", secret in "[!#-\\[\\]-~]{1,64}",
                             pass in proptest::option::of("[!#-\\[\\]-~]{1,32}"), ro in any::<bool>()) {
            let original = ExchangeCredential::new(
                AccountId::new("acct-1").unwrap(),
                owned(&api),
                owned(&secret),
                pass.as_deref().map(owned),
                ro,
            ).unwrap();
            let body = encode_response(&original).unwrap();
            let c = parse_response(&body, &key(Level::Read)).unwrap();
            prop_assert_eq!(c.expose_api_key(), api.as_str());
            prop_assert_eq!(c.expose_secret(), secret.as_str());
            prop_assert_eq!(c.expose_passphrase(), pass.as_deref());
            prop_assert_eq!(c.is_read_only(), ro);
        }

        #[test]
        fn round_trip(api in "[!#-\\[\\]-~]{1,64}", secret in "[!#-\\[\\]-~]{1,64}",
                      pass in proptest::option::of("[!#-\\[\\]-~]{1,32}"), ro in any::<bool>()) {
            let body = serde_json::json!({
                "credential_id": "acct-1", "api_key": api, "secret": secret,
                "passphrase": pass, "read_only": ro,
            });
            let c = parse_response(body.to_string().as_bytes(), &key(Level::Read)).unwrap();
            prop_assert_eq!(c.expose_api_key(), api.as_str());
            prop_assert_eq!(c.expose_secret(), secret.as_str());
            prop_assert_eq!(c.expose_passphrase(), pass.as_deref());
            prop_assert_eq!(c.is_read_only(), ro);
        }
    }
}
