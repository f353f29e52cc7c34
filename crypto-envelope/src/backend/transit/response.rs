//! Parsers of what a Transit server answers. Pure functions over bytes, public so that
//! the fuzz target `transit_response` can drive them; the server is untrusted input.
//!
//! Shapes (OpenBao and HashiCorp Vault, API v1):
//! - encrypt and rewrap: `{"data":{"ciphertext":"vault:v<N>:<base64>","key_version":N}}`;
//! - decrypt: `{"data":{"plaintext":"<base64 of the 32-byte data key>"}}`;
//! - read key: `{"data":{"type":"aes256-gcm96","derived":true,"latest_version":N,
//!   "min_decryption_version":M,...}}`;
//! - AppRole login: `{"auth":{"client_token":"...","lease_duration":S}}`;
//! - an error: `{"errors":["..."]}` with a 4xx or 5xx status.
//!
//! Base64 is the standard alphabet with padding (RFC 4648, section 4).

use std::collections::BTreeMap;

use base64ct::{Base64, Encoding};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::secret::{DATA_KEY_LEN, DataKey};

/// Largest wrapped data key accepted from the server, in bytes (the format's bound).
pub const MAX_WRAPPED_LEN: usize = 4096;
/// The prefix of every Transit ciphertext.
pub const CIPHERTEXT_PREFIX: &str = "vault:v";

/// Why an answer of the server was not accepted. Names the field, never its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The body is not the JSON object expected; `field` names what is missing or wrong.
    #[error("malformed Transit answer: {field}")]
    Malformed {
        /// The field at fault.
        field: &'static str,
    },
}

fn malformed(field: &'static str) -> ResponseError {
    ResponseError::Malformed { field }
}

/// A Transit ciphertext taken apart: the key version and the raw bytes (nonce,
/// ciphertext and tag for `aes256-gcm96`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    /// The Transit key version that encrypted it, 1 or more.
    pub version: u32,
    /// The decoded bytes, 1 to [`MAX_WRAPPED_LEN`].
    pub bytes: Vec<u8>,
}

impl Ciphertext {
    /// The text form Transit takes back: `vault:v<version>:<base64>`.
    pub fn encode(version: u32, bytes: &[u8]) -> String {
        format!(
            "{CIPHERTEXT_PREFIX}{version}:{}",
            Base64::encode_string(bytes)
        )
    }
}

/// Parses `vault:v<N>:<base64>`: `N` a decimal without sign or leading zero, 1 to
/// `u32::MAX`; the base64 decodes to 1 to [`MAX_WRAPPED_LEN`] bytes.
///
/// # Errors
/// [`ResponseError::Malformed`] naming `ciphertext`.
pub fn parse_ciphertext(text: &str) -> Result<Ciphertext, ResponseError> {
    let rest = text
        .strip_prefix(CIPHERTEXT_PREFIX)
        .ok_or(malformed("ciphertext"))?;
    let (version, encoded) = rest.split_once(':').ok_or(malformed("ciphertext"))?;
    let version = parse_version(version).ok_or(malformed("ciphertext"))?;
    if encoded.is_empty() || encoded.len() > MAX_WRAPPED_LEN.div_ceil(3) * 4 {
        return Err(malformed("ciphertext"));
    }
    let bytes = Base64::decode_vec(encoded).map_err(|_| malformed("ciphertext"))?;
    // One text per ciphertext: refuse non-zero padding bits.
    if bytes.is_empty() || bytes.len() > MAX_WRAPPED_LEN || Base64::encode_string(&bytes) != encoded
    {
        return Err(malformed("ciphertext"));
    }
    Ok(Ciphertext { version, bytes })
}

fn parse_version(text: &str) -> Option<u32> {
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct CiphertextData {
    ciphertext: String,
    key_version: Option<u32>,
}

/// Parses the answer to `encrypt` or `rewrap`. When the server also reports
/// `key_version`, it must agree with the ciphertext's prefix.
///
/// # Errors
/// [`ResponseError::Malformed`] naming `data`, `ciphertext` or `key_version`.
pub fn parse_encrypt(body: &[u8]) -> Result<Ciphertext, ResponseError> {
    let answer: Envelope<CiphertextData> =
        serde_json::from_slice(body).map_err(|_| malformed("data"))?;
    let parsed = parse_ciphertext(&answer.data.ciphertext)?;
    if answer
        .data
        .key_version
        .is_some_and(|reported| reported != parsed.version)
    {
        return Err(malformed("key_version"));
    }
    Ok(parsed)
}

#[derive(Deserialize)]
struct PlaintextData {
    plaintext: Zeroizing<String>,
}

/// Parses the answer to `decrypt`: the plaintext must decode to exactly
/// [`DATA_KEY_LEN`] bytes. Every copy made here is wiped.
///
/// # Errors
/// [`ResponseError::Malformed`] naming `data` or `plaintext`.
pub fn parse_decrypt(body: &[u8]) -> Result<DataKey, ResponseError> {
    let answer: Envelope<PlaintextData> =
        serde_json::from_slice(body).map_err(|_| malformed("data"))?;
    let encoded = answer.data.plaintext.as_bytes();
    // 32 bytes are 44 base64 characters with padding.
    if encoded.len() != DATA_KEY_LEN.div_ceil(3) * 4 {
        return Err(malformed("plaintext"));
    }
    let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
    let decoded = Base64::decode(encoded, bytes.as_mut_slice())
        .map_err(|_| malformed("plaintext"))?
        .len();
    if decoded != DATA_KEY_LEN {
        return Err(malformed("plaintext"));
    }
    DataKey::from_slice(bytes.as_slice()).map_err(|_| malformed("plaintext"))
}

/// What the backend needs to know of a Transit key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key type, such as `aes256-gcm96`.
    pub key_type: String,
    /// Whether the key derives a key per context (required by this backend).
    pub derived: bool,
    /// The version new encryptions use.
    pub latest_version: u32,
    /// The lowest version that still decrypts.
    pub min_decryption_version: u32,
    /// Whether the key may be exported (then it can leave the server).
    pub exportable: bool,
    /// Whether a plaintext backup of the key may be taken.
    pub allow_plaintext_backup: bool,
    /// Each version held and its creation time (Unix seconds), which tells a key deleted
    /// and re-created under the same name from the one first read.
    pub versions: BTreeMap<u32, i64>,
}

#[derive(Deserialize)]
struct KeyData {
    #[serde(rename = "type")]
    key_type: String,
    #[serde(default)]
    derived: bool,
    latest_version: u32,
    #[serde(default)]
    min_decryption_version: u32,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    allow_plaintext_backup: bool,
    #[serde(default)]
    keys: BTreeMap<String, serde_json::Value>,
}

/// Parses the answer to reading a key (`GET <mount>/keys/<name>`).
///
/// # Errors
/// [`ResponseError::Malformed`] naming `data`, `latest_version` (zero) or `keys` (a
/// version that is not a number of 1 or more, or a creation time that is not a number).
pub fn parse_key_info(body: &[u8]) -> Result<KeyInfo, ResponseError> {
    let answer: Envelope<KeyData> = serde_json::from_slice(body).map_err(|_| malformed("data"))?;
    let data = answer.data;
    if data.latest_version == 0 {
        return Err(malformed("latest_version"));
    }
    let mut versions = BTreeMap::new();
    for (version, created) in &data.keys {
        // Symmetric keys list each version's creation time as a number.
        let (Some(version), Some(created)) = (parse_version(version), created.as_i64()) else {
            return Err(malformed("keys"));
        };
        versions.insert(version, created);
    }
    Ok(KeyInfo {
        key_type: data.key_type,
        derived: data.derived,
        latest_version: data.latest_version,
        min_decryption_version: data.min_decryption_version,
        exportable: data.exportable,
        allow_plaintext_backup: data.allow_plaintext_backup,
        versions,
    })
}

/// A token from an AppRole login.
#[derive(Debug)]
pub struct Login {
    /// The client token; wiped on drop.
    pub token: Zeroizing<String>,
    /// Its lease, in seconds (0: no expiry).
    pub lease_seconds: u64,
}

#[derive(Deserialize)]
struct LoginBody {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Zeroizing<String>,
    #[serde(default)]
    lease_duration: u64,
}

/// Parses the answer to an AppRole login. The token must be 1 to 1024 visible ASCII
/// characters (it becomes a header value).
///
/// # Errors
/// [`ResponseError::Malformed`] naming `auth` or `client_token`.
pub fn parse_login(body: &[u8]) -> Result<Login, ResponseError> {
    let answer: LoginBody = serde_json::from_slice(body).map_err(|_| malformed("auth"))?;
    let token = answer.auth.client_token;
    if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("client_token"));
    }
    Ok(Login {
        token,
        lease_seconds: answer.auth.lease_duration,
    })
}

/// What an error answer of Transit says, as far as the backend acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The named key does not exist.
    KeyNotFound,
    /// The ciphertext's version is below the key's minimum decryption version.
    VersionRetired,
    /// The ciphertext's version is above the key's latest version.
    VersionUnknown,
    /// The ciphertext does not authenticate under the key and context, or is too short
    /// to be one: the only answer that refuses a value.
    NotAuthentic,
    /// Anything else (a route or namespace not found, a key type that cannot decrypt, a
    /// body that is not a Transit error, a proxy's answer): never taken as a refusal.
    Other,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

/// Classifies a 4xx answer by its `errors` messages (Transit has no error codes). Only
/// the messages listed are recognised; everything else is [`ErrorKind::Other`], so that
/// an unexpected answer is never taken for a refusal of the value. The messages are
/// never passed on: they may echo input.
pub fn classify_error(body: &[u8]) -> ErrorKind {
    let Ok(answer) = serde_json::from_slice::<ErrorBody>(body) else {
        return ErrorKind::Other;
    };
    for message in &answer.errors {
        if message.contains("disallowed by policy (too old)") {
            return ErrorKind::VersionRetired;
        }
        if message.contains("version is too new") {
            return ErrorKind::VersionUnknown;
        }
        if message.contains("encryption key not found") {
            return ErrorKind::KeyNotFound;
        }
        // OpenBao and Vault: the AEAD tag check failed, or the bytes are shorter than a
        // nonce and a tag; Vault also words it "unable to decrypt".
        if message.contains("message authentication failed")
            || message.contains("invalid ciphertext length")
            || message.contains("unable to decrypt")
        {
            return ErrorKind::NotAuthentic;
        }
    }
    ErrorKind::Other
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ciphertext_round_trip() {
        let text = Ciphertext::encode(7, &[1, 2, 3, 4]);
        assert_eq!(text, "vault:v7:AQIDBA==");
        assert_eq!(
            parse_ciphertext(&text).unwrap(),
            Ciphertext {
                version: 7,
                bytes: vec![1, 2, 3, 4]
            }
        );
    }

    #[test]
    fn ciphertext_refusals() {
        for bad in [
            "",
            "vault:v",
            "vault:v1",
            "vault:v1:",
            "vault:v0:AQID",
            "vault:v01:AQID",
            "vault:v-1:AQID",
            "vault:v+1:AQID",
            "vault:v4294967296:AQID",
            "vault:v1:AQI",
            "vault:v1:AQ$D",
            "vault:v1:AQIDBA",
            "vault:v1:AQIDBB==",
            "vaulx:v1:AQID",
        ] {
            assert_eq!(
                parse_ciphertext(bad),
                Err(malformed("ciphertext")),
                "{bad:?}"
            );
        }
        let long = Ciphertext::encode(1, &[0; MAX_WRAPPED_LEN + 1]);
        assert!(parse_ciphertext(&long).is_err());
        let longest = Ciphertext::encode(1, &[0; MAX_WRAPPED_LEN]);
        assert!(parse_ciphertext(&longest).is_ok());
    }

    #[test]
    fn encrypt_answer_version_must_agree() {
        let ok = br#"{"data":{"ciphertext":"vault:v2:AQID","key_version":2}}"#;
        assert_eq!(parse_encrypt(ok).unwrap().version, 2);
        let bad = br#"{"data":{"ciphertext":"vault:v2:AQID","key_version":3}}"#;
        assert_eq!(parse_encrypt(bad), Err(malformed("key_version")));
        let absent = br#"{"data":{"ciphertext":"vault:v2:AQID"}}"#;
        assert_eq!(parse_encrypt(absent).unwrap().version, 2);
        assert_eq!(parse_encrypt(b"{}"), Err(malformed("data")));
    }

    #[test]
    fn decrypt_answer_is_exactly_one_data_key() {
        let key = [9u8; DATA_KEY_LEN];
        let body = format!(
            r#"{{"data":{{"plaintext":"{}"}}}}"#,
            Base64::encode_string(&key)
        );
        assert_eq!(
            parse_decrypt(body.as_bytes()).unwrap().expose_secret(),
            &key
        );
        for len in [0, 16, 31, 33, 48] {
            let body = format!(
                r#"{{"data":{{"plaintext":"{}"}}}}"#,
                Base64::encode_string(&vec![9u8; len])
            );
            assert!(parse_decrypt(body.as_bytes()).is_err(), "{len}");
        }
        assert!(parse_decrypt(br#"{"data":{"plaintext":7}}"#).is_err());
    }

    #[test]
    fn key_info_and_login() {
        let info = parse_key_info(
            br#"{"data":{"type":"aes256-gcm96","derived":true,"latest_version":3,"min_decryption_version":2,"keys":{"1":1}}}"#,
        )
        .unwrap();
        assert_eq!((info.latest_version, info.min_decryption_version), (3, 2));
        assert!(info.derived && !info.exportable && !info.allow_plaintext_backup);
        assert_eq!(info.versions, BTreeMap::from([(1, 1)]));
        assert!(
            parse_key_info(br#"{"data":{"type":"x","latest_version":1,"keys":{"0":1}}}"#).is_err()
        );
        assert!(
            parse_key_info(br#"{"data":{"type":"x","latest_version":1,"keys":{"1":"t"}}}"#)
                .is_err()
        );
        assert!(parse_key_info(br#"{"data":{"type":"x","latest_version":0}}"#).is_err());
        let login =
            parse_login(br#"{"auth":{"client_token":"s.abc","lease_duration":60}}"#).unwrap();
        assert_eq!((login.token.as_str(), login.lease_seconds), ("s.abc", 60));
        assert!(parse_login(br#"{"auth":{"client_token":"a b"}}"#).is_err());
        assert!(parse_login(br#"{"auth":null}"#).is_err());
    }

    #[test]
    fn error_classes() {
        assert_eq!(
            classify_error(br#"{"errors":["encryption key not found"]}"#),
            ErrorKind::KeyNotFound
        );
        assert_eq!(
            classify_error(
                br#"{"errors":["ciphertext or signature version is disallowed by policy (too old)"]}"#
            ),
            ErrorKind::VersionRetired
        );
        assert_eq!(
            classify_error(br#"{"errors":["invalid ciphertext: version is too new"]}"#),
            ErrorKind::VersionUnknown
        );
        assert_eq!(
            classify_error(br#"{"errors":["cipher: message authentication failed"]}"#),
            ErrorKind::NotAuthentic
        );
        assert_eq!(
            classify_error(br#"{"errors":["invalid ciphertext length"]}"#),
            ErrorKind::NotAuthentic
        );
        // Answers seen from OpenBao 2.7.2 that must not refuse a value.
        for other in [
            &br#"{"errors":["message decryption not supported for key type ed25519"]}"#[..],
            br#"{"errors":["no handler for route \"nomount/decrypt/k\". route entry not found."]}"#,
            br#"{"errors":["namespace not found"]}"#,
            b"Client sent an HTTP request to an HTTPS server.",
            b"not json",
        ] {
            assert_eq!(classify_error(other), ErrorKind::Other);
        }
    }
}
