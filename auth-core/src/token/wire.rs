//! Reading our own access tokens before verification. The JOSE parsing is the crate's
//! (`crate::jose`, shared with the SSO verifier): one strict parser for every JWT this crate reads (alphabet
//! and shape, a bounded header buffer, unique members, `jku`/`jwk`/`x5u`/`x5c`/`crit`/`b64`
//! flagged). This module adds only what is particular to our tokens: the size caps, a
//! required `alg`, and the RFC 9068 `typ`.

use crate::jose;
pub(crate) use jose::{HEADER_BUF_LEN, Header, Segments};

/// Longest bearer considered at all (our tokens are well under 1 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest payload decoded for the `iss` peek.
const MAX_PAYLOAD_B64: usize = 6 * 1024;

/// Three non-empty base64url segments separated by dots, within [`MAX_TOKEN_LEN`].
pub(crate) fn split(token: &str) -> Option<Segments<'_>> {
    jose::split(token, MAX_TOKEN_LEN).ok()
}

/// Decodes the header into `buf` and parses it; `None` if it is not a base64url JSON
/// object with a string `alg` and unique members.
pub(crate) fn parse_header<'b>(
    header_b64: &str,
    buf: &'b mut [u8; HEADER_BUF_LEN],
) -> Option<Header<'b>> {
    jose::parse_header(header_b64, buf)
        .ok()
        .filter(|h| !h.alg.is_empty())
}

/// A fresh header buffer.
pub(crate) const fn header_buf() -> [u8; HEADER_BUF_LEN] {
    [0u8; HEADER_BUF_LEN]
}

/// The unverified `iss` of the payload, if it is a JSON object with a string `iss`. Only
/// used to decide whether a token with an unknown `kid` claims to be ours.
pub(crate) fn peek_issuer(payload_b64: &str) -> Option<String> {
    if payload_b64.len() > MAX_PAYLOAD_B64 {
        return None;
    }
    jose::peek_issuer(payload_b64).ok()
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
    use base64ct::{Base64UrlUnpadded, Encoding as _};

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
