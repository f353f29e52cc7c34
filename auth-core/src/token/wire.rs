//! Cheap, strict parsing of the untrusted parts of a bearer that may be one of our access
//! tokens: shape, header, and (only when the `kid` is unknown) the unverified `iss`.
//!
//! Nothing here may panic or allocate without bound: the token is length-capped, the
//! header is decoded into a fixed stack buffer, a repeated header member is an error.

use std::borrow::Cow;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::secret;

/// Longest bearer considered at all (our tokens are well under 1 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest decoded header accepted.
const HEADER_BUF_LEN: usize = 512;
/// Largest payload decoded for the `iss` peek.
const MAX_PAYLOAD_B64: usize = 6 * 1024;

/// The header and payload segments (base64url) of a compact JWS.
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
}

/// Three non-empty base64url segments separated by dots, within [`MAX_TOKEN_LEN`].
pub(crate) fn split(token: &str) -> Option<Segments<'_>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let alphabet_ok = token
        .bytes()
        .fold(true, |ok, b| ok & (secret::is_base64url(b) | (b == b'.')));
    let (header, rest) = token.split_once('.')?;
    let (payload, signature) = rest.split_once('.')?;
    (alphabet_ok
        && !header.is_empty()
        && !payload.is_empty()
        && !signature.is_empty()
        && !signature.contains('.'))
    .then_some(Segments { header, payload })
}

/// A header member whose presence alone matters.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

#[derive(Deserialize)]
struct WireHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    b64: Present,
}

/// What the resolver reads of the header.
pub(crate) struct Header<'a> {
    pub(crate) alg: Cow<'a, str>,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    /// `jku`, `jwk`, `x5u`, `x5c`, `crit` or `b64` is present: a token of ours never
    /// carries them, and keys never come from the token.
    pub(crate) forbidden: bool,
}

/// Decodes the header into `buf` and parses it; `None` if it is not a base64url JSON
/// object with a string `alg` and unique members.
pub(crate) fn parse_header<'b>(
    header_b64: &str,
    buf: &'b mut [u8; HEADER_BUF_LEN],
) -> Option<Header<'b>> {
    if header_b64.len() > HEADER_BUF_LEN / 3 * 4 {
        return None;
    }
    let json = Base64UrlUnpadded::decode(header_b64, &mut buf[..]).ok()?;
    if json.first() != Some(&b'{') {
        return None;
    }
    let h: WireHeader<'b> = serde_json::from_slice(json).ok()?;
    Some(Header {
        forbidden: h.jku.0 || h.jwk.0 || h.x5u.0 || h.x5c.0 || h.crit.0 || h.b64.0,
        alg: h.alg,
        kid: h.kid,
        typ: h.typ,
    })
}

/// A fresh header buffer.
pub(crate) const fn header_buf() -> [u8; HEADER_BUF_LEN] {
    [0u8; HEADER_BUF_LEN]
}

#[derive(Deserialize)]
struct IssOnly {
    #[serde(default)]
    iss: Option<String>,
}

/// The unverified `iss` of the payload, if it is a JSON object with a string `iss`. Only
/// used to decide whether a token with an unknown `kid` claims to be ours.
pub(crate) fn peek_issuer(payload_b64: &str) -> Option<String> {
    if payload_b64.len() > MAX_PAYLOAD_B64 {
        return None;
    }
    let json = Base64UrlUnpadded::decode_vec(payload_b64).ok()?;
    if json.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<IssOnly>(&json).ok()?.iss
}

/// Whether a header `typ` names `at+jwt` (RFC 9068 section 2.1), case-insensitively, with
/// or without the `application/` prefix (RFC 7515 section 4.1.9).
pub(crate) fn is_at_jwt(typ: &str) -> bool {
    const PREFIX: &str = "application/";
    let bare = match typ.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        Base64UrlUnpadded::encode_string(s.as_bytes())
    }

    #[test]
    fn header_parsing_is_strict() {
        let mut buf = header_buf();
        let h = parse_header(
            &b64(r#"{"alg":"EdDSA","kid":"k","typ":"at+jwt"}"#),
            &mut buf,
        );
        assert!(h.is_some_and(|h| h.alg == "EdDSA" && h.kid.as_deref() == Some("k")));
        for bad in [
            r#"{"alg":"EdDSA","alg":"none"}"#,
            r#"["EdDSA"]"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":1}"#,
        ] {
            let mut buf = header_buf();
            assert!(parse_header(&b64(bad), &mut buf).is_none(), "{bad}");
        }
        let mut buf = header_buf();
        let h = parse_header(&b64(r#"{"alg":"EdDSA","jwk":{"kty":"OKP"}}"#), &mut buf);
        assert!(h.is_some_and(|h| h.forbidden));
    }

    #[test]
    fn typ_matching() {
        assert!(is_at_jwt("at+jwt"));
        assert!(is_at_jwt("application/AT+JWT"));
        assert!(!is_at_jwt("JWT"));
        assert!(!is_at_jwt("application/"));
        assert!(!is_at_jwt("xat+jwt"));
    }

    #[test]
    fn split_and_peek() {
        assert!(split("a.b.c").is_some());
        assert!(split("a.b").is_none());
        assert!(split("a..c").is_none());
        assert!(split("a.b.c.d").is_none());
        assert!(split("a.b=.c").is_none());
        assert_eq!(peek_issuer(&b64(r#"{"iss":"x"}"#)).as_deref(), Some("x"));
        assert_eq!(peek_issuer(&b64(r#"{"iss":1}"#)), None);
        assert_eq!(peek_issuer(&b64("[]")), None);
    }
}
