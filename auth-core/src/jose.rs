//! Strict parsing of the untrusted parts of a compact JWS: shape, header, claims. One
//! parser for every JWT this crate reads: the SSO verifier's (feature `sso`) and our own
//! access tokens' (feature `access-token`); the claim set the SSO verifier reads is
//! compiled with `sso` only.
//!
//! Everything here runs on attacker-controlled bytes, so nothing may panic, allocate
//! without bound or accept an ambiguous encoding:
//!
//! * the token is length-capped and must be exactly three non-empty base64url segments;
//! * the header is decoded into a fixed stack buffer (so it is length-capped too), must be
//!   a JSON object, and may not repeat a member;
//! * each registered claim keeps its JSON type: a `Claim` is `Absent`, `Invalid` (wrong
//!   type, e.g. `"exp": "never"`) or `Present`, so a wrongly typed claim can never be
//!   mistaken for an absent one (the CVE-2026-25537 class of bug).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::secret;

/// Why an untrusted JOSE part was refused. Crate-private: the SSO verifier turns it into
/// its public `sso::Reason` (same names), the access-token verifier into a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoseError {
    /// Longer than the caller's cap.
    TooLong,
    /// Not three base64url segments, or a header that is not a JSON object.
    Malformed,
    /// A payload that is not a JSON object with unique members.
    ClaimsMalformed,
    /// A required claim is absent.
    MissingClaim,
    /// A claim has the wrong JSON type.
    ClaimType,
}

/// Largest decoded header accepted (bytes).
pub(crate) const HEADER_BUF_LEN: usize = 1024;

/// The three segments of a compact JWS, still base64url.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
}

/// Checks the cap, the alphabet and the shape; returns the segments.
pub(crate) fn split(token: &str, max_len: usize) -> Result<Segments<'_>, JoseError> {
    if token.len() > max_len {
        return Err(JoseError::TooLong);
    }
    // One branch-free pass over every byte (vector code: tokens run to hundreds of bytes)
    // for the alphabet, then the two dots by search; a third dot is refused below.
    let alphabet_ok = token
        .bytes()
        .fold(true, |ok, b| ok & (secret::is_base64url(b) | (b == b'.')));
    let (header, rest) = token.split_once('.').ok_or(JoseError::Malformed)?;
    let (payload, signature) = rest.split_once('.').ok_or(JoseError::Malformed)?;
    if !alphabet_ok
        || header.is_empty()
        || payload.is_empty()
        || signature.is_empty()
        || signature.contains('.')
    {
        return Err(JoseError::Malformed);
    }
    Ok(Segments { header, payload })
}

/// Cheap pre-filter used by the resolver: does this look like a compact JWS at all
/// (three non-empty base64url segments)? Does not decode anything.
#[cfg(feature = "sso")]
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    split(token, usize::MAX).is_ok()
}

/// A JSON member whose mere presence matters (its value is skipped).
#[derive(Default, Clone, Copy)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// An optional string member, borrowed from the decoded header where possible. Absent is
/// `None`; any JSON type but a string (including `null`) is a parse error.
#[derive(Debug, Default)]
pub(crate) struct OptStr<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for OptStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = OptStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OptStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OptStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(OptStr(Some(Cow::Owned(v))))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// The header members we read, borrowed from the decoded header where possible.
#[derive(Deserialize)]
struct WireHeader<'a> {
    #[serde(borrow, default)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: OptStr<'a>,
    #[serde(borrow, default)]
    typ: OptStr<'a>,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    x5c: Present,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    b64: Present,
}

/// The parts of the header the verifier uses.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    /// The `alg` member (empty if absent).
    pub(crate) alg: Cow<'a, str>,
    /// The `kid` member (`None` if absent).
    pub(crate) kid: Option<Cow<'a, str>>,
    /// The `typ` member (`None` if absent).
    pub(crate) typ: Option<Cow<'a, str>>,
    /// Whether a member that could select or modify the key or the signing input
    /// (`jku`, `x5u`, `jwk`, `x5c`, `crit`, `b64`) is present.
    pub(crate) forbidden: bool,
}

/// Decodes and parses the header into `buf` (no heap allocation unless a string member
/// contains JSON escapes).
pub(crate) fn parse_header<'b>(
    header_b64: &str,
    buf: &'b mut [u8; HEADER_BUF_LEN],
) -> Result<Header<'b>, JoseError> {
    // 4 base64 chars encode 3 bytes: refuse anything that cannot fit the buffer.
    if header_b64.len() > HEADER_BUF_LEN / 3 * 4 {
        return Err(JoseError::Malformed);
    }
    let json =
        Base64UrlUnpadded::decode(header_b64, &mut buf[..]).map_err(|_| JoseError::Malformed)?;
    let ObjectOnly(h) = serde_json::from_slice::<ObjectOnly<WireHeader<'b>>>(json)
        .map_err(|_| JoseError::Malformed)?;
    let forbidden = h.jku.0 || h.x5u.0 || h.jwk.0 || h.x5c.0 || h.crit.0 || h.b64.0;
    Ok(Header {
        alg: h.alg,
        kid: h.kid.0,
        typ: h.typ.0,
        forbidden,
    })
}

/// Deserialises `T` only from a JSON object (serde's derived structs would otherwise
/// also accept a positional array).
pub(crate) struct ObjectOnly<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<fn() -> T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A registered claim, keeping "absent" and "wrong type" apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Claim<T> {
    /// Not in the payload.
    #[default]
    Absent,
    /// Present with the wrong JSON type (including `null`).
    Invalid,
    /// Present with the right type.
    Present(T),
}

/// A NumericDate (RFC 7519 section 2): a JSON number of seconds, floored to an integer.
#[cfg(feature = "sso")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NumericDate(pub(crate) i64);

/// The `aud` claim: one string or a non-empty array of strings.
#[cfg(feature = "sso")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

#[cfg(feature = "sso")]
impl Audience {
    pub(crate) fn any(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        match self {
            Self::One(a) => f(a),
            Self::Many(v) => v.iter().any(|a| f(a)),
        }
    }
}

/// Drains a sequence or map that was found where a scalar was expected.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Generates the "wrong type" visitor methods that yield `Claim::Invalid` for every JSON
/// type the claim does not take, consuming containers so parsing can go on.
macro_rules! invalid_visits {
    ($($m:ident($t:ty)),* $(,)?) => {
        $(fn $m<E: de::Error>(self, _: $t) -> Result<Self::Value, E> { Ok(Claim::Invalid) })*
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Claim::Invalid) }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| Claim::Invalid)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map).map(|()| Claim::Invalid)
        }
    };
}

impl<'de> Deserialize<'de> for Claim<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Claim<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Claim::Present(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Claim::Present(v))
            }
            invalid_visits!(
                visit_bool(bool),
                visit_i64(i64),
                visit_u64(u64),
                visit_f64(f64)
            );
        }
        d.deserialize_any(V)
    }
}

#[cfg(feature = "sso")]
impl<'de> Deserialize<'de> for Claim<bool> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Claim<bool>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Claim::Present(v))
            }
            invalid_visits!(
                visit_str(&str),
                visit_i64(i64),
                visit_u64(u64),
                visit_f64(f64)
            );
        }
        d.deserialize_any(V)
    }
}

#[cfg(feature = "sso")]
impl<'de> Deserialize<'de> for Claim<NumericDate> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Claim<NumericDate>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Claim::Present(NumericDate(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Claim::Invalid, |v| Claim::Present(NumericDate(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Floor non-integer dates; refuse NaN, infinities and values outside i64.
                // (i64::MIN as f64 is exact; i64::MAX as f64 rounds up to 2^63, hence `<`.)
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let claim = if v.is_finite() && v >= i64::MIN as f64 && v < i64::MAX as f64 {
                    Claim::Present(NumericDate(v.floor() as i64))
                } else {
                    Claim::Invalid
                };
                Ok(claim)
            }
            invalid_visits!(visit_str(&str), visit_bool(bool));
        }
        d.deserialize_any(V)
    }
}

#[cfg(feature = "sso")]
impl<'de> Deserialize<'de> for Claim<Audience> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Claim<Audience>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Claim::Present(Audience::One(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Claim::Present(Audience::One(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                let mut ok = true;
                while let Some(item) = seq.next_element::<Claim<String>>()? {
                    match item {
                        Claim::Present(s) if ok => all.push(s),
                        _ => ok = false,
                    }
                }
                Ok(if ok && !all.is_empty() {
                    Claim::Present(Audience::Many(all))
                } else {
                    Claim::Invalid
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Claim::Invalid)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Claim::Invalid)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Claim::Invalid)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Claim::Invalid)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Claim::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|()| Claim::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// The claims the verifier reads. Unknown claims are ignored; a repeated known claim is a
/// parse error (so two parsers can never disagree about which `exp` counts).
#[cfg(feature = "sso")]
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireClaims {
    #[serde(default)]
    pub(crate) iss: Claim<String>,
    #[serde(default)]
    pub(crate) sub: Claim<String>,
    #[serde(default)]
    pub(crate) aud: Claim<Audience>,
    #[serde(default)]
    pub(crate) exp: Claim<NumericDate>,
    #[serde(default)]
    pub(crate) nbf: Claim<NumericDate>,
    #[serde(default)]
    pub(crate) iat: Claim<NumericDate>,
    #[serde(default)]
    pub(crate) email: Claim<String>,
    #[serde(default)]
    pub(crate) email_verified: Claim<bool>,
    #[serde(default)]
    pub(crate) azp: Claim<String>,
}

/// [`WireClaims`] that only parse from a JSON object: the type handed to
/// `jsonwebtoken::decode`.
#[cfg(feature = "sso")]
#[derive(Debug)]
pub(crate) struct Claims(pub(crate) WireClaims);

#[cfg(feature = "sso")]
impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ObjectOnly::<WireClaims>::deserialize(d).map(|ObjectOnly(c)| Claims(c))
    }
}

/// Decodes and parses a payload segment on the slow paths (issuer selection, refining a
/// refusal reason). Never used to accept anything.
#[cfg(feature = "sso")]
pub(crate) fn parse_payload(payload_b64: &str) -> Result<WireClaims, JoseError> {
    let bytes = Base64UrlUnpadded::decode_vec(payload_b64).map_err(|_| JoseError::Malformed)?;
    serde_json::from_slice::<Claims>(&bytes)
        .map(|Claims(c)| c)
        .map_err(|_| JoseError::ClaimsMalformed)
}

/// The unverified `iss` of a payload, used only to choose which issuer's key set to
/// consult when the `kid` alone does not decide.
#[derive(Deserialize)]
struct IssOnly {
    #[serde(default)]
    iss: Claim<String>,
}

pub(crate) fn peek_issuer(payload_b64: &str) -> Result<String, JoseError> {
    let bytes = Base64UrlUnpadded::decode_vec(payload_b64).map_err(|_| JoseError::Malformed)?;
    let ObjectOnly(claims) = serde_json::from_slice::<ObjectOnly<IssOnly>>(&bytes)
        .map_err(|_| JoseError::ClaimsMalformed)?;
    match claims.iss {
        Claim::Present(iss) => Ok(iss),
        Claim::Absent => Err(JoseError::MissingClaim),
        Claim::Invalid => Err(JoseError::ClaimType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        Base64UrlUnpadded::encode_string(s.as_bytes())
    }

    #[cfg(feature = "sso")]
    fn claims(json: &str) -> Result<WireClaims, JoseError> {
        parse_payload(&b64(json))
    }

    #[test]
    fn split_refuses_bad_shapes() {
        assert_eq!(split("a.b", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("a.b.c.d", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("a..c", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("a.b.", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("a.b+.c", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("a.b=.c", 100).unwrap_err(), JoseError::Malformed);
        assert_eq!(split("abcdef.b.c", 5).unwrap_err(), JoseError::TooLong);
        let s = split("aa.bb.cc", 100).unwrap();
        assert_eq!((s.header, s.payload), ("aa", "bb"));
    }

    #[test]
    fn header_reads_alg_kid_and_flags_key_selecting_members() {
        let mut buf = [0u8; HEADER_BUF_LEN];
        let h = parse_header(&b64(r#"{"alg":"RS256","kid":"k1"}"#), &mut buf).unwrap();
        assert_eq!(
            (&*h.alg, h.kid.as_deref(), h.typ.as_deref(), h.forbidden),
            ("RS256", Some("k1"), None, false)
        );
        let h = parse_header(&b64(r#"{"alg":"RS256","typ":"at+jwt"}"#), &mut buf).unwrap();
        assert_eq!((h.kid, h.typ.as_deref()), (None, Some("at+jwt")));
        // Escapes are decoded (owned); a kid or typ of another type is malformed.
        let h = parse_header(&b64(r#"{"alg":"RS256","kid":"k\u0031"}"#), &mut buf).unwrap();
        assert_eq!(h.kid.as_deref(), Some("k1"));
        for bad in [r#"{"kid":null}"#, r#"{"kid":7}"#, r#"{"typ":["JWT"]}"#] {
            let mut buf = [0u8; HEADER_BUF_LEN];
            assert_eq!(
                parse_header(&b64(bad), &mut buf).unwrap_err(),
                JoseError::Malformed,
                "{bad}"
            );
        }
        for member in ["jku", "x5u", "jwk", "x5c", "crit", "b64"] {
            let mut buf = [0u8; HEADER_BUF_LEN];
            let json = format!(r#"{{"alg":"RS256","kid":"k1","{member}":null}}"#);
            assert!(
                parse_header(&b64(&json), &mut buf).unwrap().forbidden,
                "{member}"
            );
        }
    }

    #[test]
    fn header_refuses_duplicates_arrays_and_oversize() {
        let mut buf = [0u8; HEADER_BUF_LEN];
        let dup = b64(r#"{"alg":"RS256","alg":"none","kid":"k"}"#);
        assert_eq!(
            parse_header(&dup, &mut buf).unwrap_err(),
            JoseError::Malformed
        );
        let arr = b64(r#"["RS256","k"]"#);
        assert_eq!(
            parse_header(&arr, &mut buf).unwrap_err(),
            JoseError::Malformed
        );
        let big = b64(&format!(
            r#"{{"alg":"RS256","kid":"{}"}}"#,
            "k".repeat(2000)
        ));
        assert_eq!(
            parse_header(&big, &mut buf).unwrap_err(),
            JoseError::Malformed
        );
    }

    #[cfg(feature = "sso")]
    #[test]
    fn claims_keep_wrong_types_apart_from_absence() {
        let c = claims(r#"{"exp":"never","nbf":[1],"iss":["a"],"aud":[],"email_verified":"true"}"#)
            .unwrap();
        assert_eq!(c.exp, Claim::Invalid);
        assert_eq!(c.nbf, Claim::Invalid);
        assert_eq!(c.iss, Claim::Invalid);
        assert_eq!(c.aud, Claim::Invalid);
        assert_eq!(c.email_verified, Claim::Invalid);
        assert_eq!(c.sub, Claim::Absent);
        let c =
            claims(r#"{"exp":1.9e9,"iat":17,"aud":["x","y"],"sub":"s","exp2":{"a":[1]}}"#).unwrap();
        assert_eq!(c.exp, Claim::Present(NumericDate(1_900_000_000)));
        assert_eq!(c.iat, Claim::Present(NumericDate(17)));
        assert_eq!(
            c.aud,
            Claim::Present(Audience::Many(vec!["x".into(), "y".into()]))
        );
        assert_eq!(claims(r#"{"exp":null}"#).unwrap().exp, Claim::Invalid);
        assert_eq!(
            claims(r#"{"exp":1e400}"#).unwrap_err(),
            JoseError::ClaimsMalformed
        );
        assert_eq!(claims(r#"{"exp":-1e300}"#).unwrap().exp, Claim::Invalid);
    }

    #[cfg(feature = "sso")]
    #[test]
    fn claims_refuse_duplicates_and_non_objects() {
        assert_eq!(
            claims(r#"{"exp":1,"exp":"x"}"#).unwrap_err(),
            JoseError::ClaimsMalformed
        );
        assert_eq!(
            claims(r#"["iss",1]"#).unwrap_err(),
            JoseError::ClaimsMalformed
        );
        assert_eq!(claims("3").unwrap_err(), JoseError::ClaimsMalformed);
    }

    proptest::proptest! {
        #[test]
        fn hostile_strings_never_panic(s in "\\PC{0,400}") {
            let _ = split(&s, 8192);
            let mut buf = [0u8; HEADER_BUF_LEN];
            let _ = parse_header(&s, &mut buf);
            #[cfg(feature = "sso")]
            let _ = parse_payload(&s);
            let _ = peek_issuer(&s);
        }

        #[test]
        fn hostile_json_headers_and_claims_never_panic(s in "\\PC{0,300}") {
            let encoded = b64(&s);
            let mut buf = [0u8; HEADER_BUF_LEN];
            let _ = parse_header(&encoded, &mut buf);
            #[cfg(feature = "sso")]
            let _ = parse_payload(&encoded);
            let _ = peek_issuer(&encoded);
        }

        #[test]
        fn split_accepts_exactly_three_non_empty_segments(
            parts in proptest::collection::vec("[A-Za-z0-9_-]{0,12}", 1..6)
        ) {
            let token = parts.join(".");
            let expected = parts.len() == 3 && parts.iter().all(|p| !p.is_empty());
            proptest::prop_assert_eq!(split(&token, 8192).is_ok(), expected);
        }

        #[cfg(feature = "sso")]
        #[test]
        fn numeric_dates_keep_their_value_and_strings_never_count(n in proptest::num::i64::ANY) {
            let c = claims(&format!(r#"{{"exp":{n},"nbf":"{n}"}}"#)).unwrap();
            proptest::prop_assert_eq!(c.exp, Claim::Present(NumericDate(n)));
            proptest::prop_assert_eq!(c.nbf, Claim::Invalid);
        }
    }

    #[test]
    fn peek_issuer_types() {
        assert_eq!(peek_issuer(&b64(r#"{"iss":"a"}"#)).unwrap(), "a");
        assert_eq!(
            peek_issuer(&b64(r#"{}"#)).unwrap_err(),
            JoseError::MissingClaim
        );
        assert_eq!(
            peek_issuer(&b64(r#"{"iss":1}"#)).unwrap_err(),
            JoseError::ClaimType
        );
    }
}
