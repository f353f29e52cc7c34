//! The two kinds of SSO error: an opaque refusal of a token (with an internal reason code
//! for tracing), and typed configuration errors.

use core::fmt;

use crate::jose::JoseError;

/// Why a token was refused or could not be ruled on: a stable code for traces and audit
/// logs. Never put it in an HTTP response body.
///
/// Codes are stable strings (see [`Reason::code`]); new reasons may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `jwt.too_long`: the token is longer than the configured cap (checked before any
    /// parsing).
    TooLong,
    /// `jwt.malformed`: not three base64url segments, or a header or payload that is not
    /// valid base64url JSON.
    Malformed,
    /// `jwt.forbidden_header`: the header carries `jku`, `x5u`, `jwk`, `x5c`, `crit` or
    /// `b64`. Keys are only ever taken from the configured JWKS, so such tokens are refused.
    ForbiddenHeader,
    /// `jwt.kid_missing`: the header has no `kid` (or an empty one), and the issuer's key
    /// set does not hold exactly one key that fits the token's `alg` and key type
    /// (OpenID Connect Core 1.0 section 10.1).
    KidMissing,
    /// `jwt.kid_too_long`: the `kid` is longer than the configured cap.
    KidTooLong,
    /// `jwt.alg_not_allowed`: the `alg` is not in the issuer's allowlist (this includes
    /// `none` and every `HS*` algorithm, which are never allowed).
    AlgNotAllowed,
    /// `jwt.alg_key_mismatch`: the `alg` does not fit the type (or declared `alg`) of the
    /// key named by `kid`.
    AlgKeyMismatch,
    /// `jwt.unknown_issuer`: the `kid` is unknown and the unverified `iss` names no
    /// configured issuer.
    UnknownIssuer,
    /// `jwt.unknown_kid`: the issuer's current key set (freshly fetched, or fetched within
    /// the cooldown) has no key with this `kid`.
    UnknownKid,
    /// `jwt.bad_signature`: the signature does not verify under the key.
    BadSignature,
    /// `jwt.claims_malformed`: the payload is not a JSON object, or repeats a claim.
    ClaimsMalformed,
    /// `jwt.claim_type`: a registered claim has the wrong JSON type (for example `exp` as
    /// a string, `iss` as an array).
    ClaimType,
    /// `jwt.missing_claim`: `iss`, `sub`, `aud` or `exp` is absent.
    MissingClaim,
    /// `jwt.expired`: `exp` is in the past (beyond the leeway).
    Expired,
    /// `jwt.not_yet_valid`: `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `jwt.issued_in_future`: `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `jwt.wrong_issuer`: `iss` is not the issuer whose key verified the token.
    WrongIssuer,
    /// `jwt.wrong_audience`: no value of `aud` is one of the configured audiences.
    WrongAudience,
    /// `jwt.bad_subject`: `sub` is empty or longer than the cap.
    BadSubject,
    /// `jwt.lifetime_too_long`: `exp - iat`, or `exp` minus now, is more than the issuer's
    /// maximum token lifetime (default 24 h); for example an `exp` in milliseconds.
    LifetimeTooLong,
    /// `jwt.wrong_typ`: the issuer requires a header `typ` (such as `at+jwt`, RFC 9068)
    /// and the token's is absent or different.
    WrongType,
    /// `jwt.wrong_azp`: the issuer has a list of authorized parties and the token's `azp`
    /// is not one of them.
    WrongAuthorizedParty,
    /// `jwt.rejected`: refused by `jsonwebtoken` for a reason without a finer code.
    Rejected,
    /// `jwks.unavailable`: the issuer's JWKS could not be fetched and no good key exists to
    /// rule on the token with (503, never an allow).
    JwksUnavailable,
}

impl Reason {
    /// The stable code, for example `"jwt.expired"`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::TooLong => "jwt.too_long",
            Self::Malformed => "jwt.malformed",
            Self::ForbiddenHeader => "jwt.forbidden_header",
            Self::KidMissing => "jwt.kid_missing",
            Self::KidTooLong => "jwt.kid_too_long",
            Self::AlgNotAllowed => "jwt.alg_not_allowed",
            Self::AlgKeyMismatch => "jwt.alg_key_mismatch",
            Self::UnknownIssuer => "jwt.unknown_issuer",
            Self::UnknownKid => "jwt.unknown_kid",
            Self::BadSignature => "jwt.bad_signature",
            Self::ClaimsMalformed => "jwt.claims_malformed",
            Self::ClaimType => "jwt.claim_type",
            Self::MissingClaim => "jwt.missing_claim",
            Self::Expired => "jwt.expired",
            Self::NotYetValid => "jwt.not_yet_valid",
            Self::IssuedInFuture => "jwt.issued_in_future",
            Self::WrongIssuer => "jwt.wrong_issuer",
            Self::WrongAudience => "jwt.wrong_audience",
            Self::BadSubject => "jwt.bad_subject",
            Self::LifetimeTooLong => "jwt.lifetime_too_long",
            Self::WrongType => "jwt.wrong_typ",
            Self::WrongAuthorizedParty => "jwt.wrong_azp",
            Self::Rejected => "jwt.rejected",
            Self::JwksUnavailable => "jwks.unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A token was not accepted.
///
/// Deliberately opaque: its `Display` says only "refused" or "unavailable", never which
/// check failed, so it is safe to show. The [`Reason`] is for traces and audit logs only.
/// It never contains the token or any part of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JwtError {
    reason: Reason,
}

impl JwtError {
    pub(crate) const fn new(reason: Reason) -> Self {
        Self { reason }
    }

    /// `true` when no decision could be made because the issuer's keys are unavailable
    /// (map to 503); `false` when the token is refused (map to 403).
    #[must_use]
    pub const fn is_unavailable(&self) -> bool {
        matches!(self.reason, Reason::JwksUnavailable)
    }

    /// The internal reason, for tracing. Never send it to the client.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }
}

impl fmt::Debug for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtError")
            .field("reason", &self.reason.code())
            .finish()
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unavailable() {
            f.write_str("SSO token could not be verified: identity provider unavailable")
        } else {
            f.write_str("SSO token refused")
        }
    }
}

impl std::error::Error for JwtError {}

impl From<Reason> for JwtError {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl From<JoseError> for Reason {
    fn from(e: JoseError) -> Self {
        match e {
            JoseError::TooLong => Self::TooLong,
            JoseError::Malformed => Self::Malformed,
            JoseError::ClaimsMalformed => Self::ClaimsMalformed,
            JoseError::MissingClaim => Self::MissingClaim,
            JoseError::ClaimType => Self::ClaimType,
        }
    }
}

impl From<JoseError> for JwtError {
    fn from(e: JoseError) -> Self {
        Self::new(e.into())
    }
}

/// A configuration error in the SSO verifier or one of its issuers. Names the field and
/// the issuer, never a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SsoConfigError {
    /// The issuer identifier is empty.
    #[error("sso: issuer identifier is empty")]
    EmptyIssuer,
    /// The same issuer identifier is configured twice.
    #[error("sso: issuer {issuer:?} is configured twice")]
    DuplicateIssuer {
        /// The issuer identifier.
        issuer: String,
    },
    /// No issuer is configured.
    #[error("sso: no issuer configured")]
    NoIssuer,
    /// The issuer has no audience: `aud` is always checked, so at least one is required.
    #[error("sso: issuer {issuer:?} has no audience")]
    NoAudience {
        /// The issuer identifier.
        issuer: String,
    },
    /// The algorithm allowlist is empty.
    #[error("sso: issuer {issuer:?} allows no algorithm")]
    NoAlgorithm {
        /// The issuer identifier.
        issuer: String,
    },
    /// A symmetric (`HS*`) algorithm was put in the allowlist. JWKS keys are public, so an
    /// HMAC key taken from them would let anyone forge tokens; never allowed.
    #[error("sso: issuer {issuer:?}: symmetric algorithm {alg} is never allowed")]
    SymmetricAlgorithm {
        /// The issuer identifier.
        issuer: String,
        /// The refused algorithm, e.g. `HS256`.
        alg: String,
    },
    /// The JWKS URL does not parse.
    #[error("sso: issuer {issuer:?}: jwks_url is not a valid URL")]
    InvalidJwksUrl {
        /// The issuer identifier.
        issuer: String,
    },
    /// The JWKS URL is not `https://` (plain `http://` needs
    /// [`danger::allow_plain_http`](super::danger::allow_plain_http)).
    #[error("sso: issuer {issuer:?}: jwks_url must use https")]
    InsecureJwksUrl {
        /// The issuer identifier.
        issuer: String,
    },
    /// The issuer identifier is not a URL that discovery can use (it must be an absolute
    /// URL with a host and without query or fragment).
    #[error("sso: issuer {issuer:?}: issuer is not a valid URL for discovery")]
    InvalidIssuerUrl {
        /// The issuer identifier.
        issuer: String,
    },
    /// Discovery was asked for an issuer that is not `https://` (plain `http://` needs
    /// [`danger::allow_plain_http`](super::danger::allow_plain_http)).
    #[error("sso: issuer {issuer:?}: issuer must use https for discovery")]
    InsecureIssuerUrl {
        /// The issuer identifier.
        issuer: String,
    },
    /// A per-issuer setting is not valid: `typ` (empty, or not a media type) or `azp`
    /// (an empty client id).
    #[error("sso: issuer {issuer:?}: {field} is not valid")]
    InvalidSetting {
        /// The issuer identifier.
        issuer: String,
        /// The setting's name.
        field: &'static str,
    },
    /// A pinned (static) key set does not parse or holds no usable key.
    #[error("sso: issuer {issuer:?}: pinned key set holds no usable signing key")]
    NoUsableKey {
        /// The issuer identifier.
        issuer: String,
    },
    /// A cache or limit setting is out of range (for example a zero timeout, or a minimum
    /// TTL above the maximum).
    #[error("sso: {field} is out of range")]
    OutOfRange {
        /// The setting's name.
        field: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("sso: could not build the JWKS HTTP client")]
    HttpClient(#[source] reqwest::Error),
}
