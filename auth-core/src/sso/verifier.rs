//! The SSO JWT verifier: token string in, [`VerifiedIdentity`] or an opaque [`JwtError`]
//! out.
//!
//! Order of checks (cheapest and most hostile-input-facing first; no key is fetched for a
//! token that fails any check before the lookup):
//!
//! 1. length cap, then alphabet and shape (three non-empty base64url segments);
//! 2. header: decoded into a stack buffer, must be a JSON object without repeated
//!    members; `jku`/`x5u`/`jwk`/`x5c`/`crit`/`b64` refuse the token; `kid`, if present,
//!    non-empty and length-capped; `alg` must be in some issuer's allowlist (`none` and
//!    `HS*` never are);
//! 3. key: by `kid` in the issuers' cached key sets (if more than one issuer holds that
//!    `kid`, or none does, the unverified `iss` picks the issuer whose set is consulted
//!    and refreshed); without `kid`, the unverified `iss` picks the issuer and its one key
//!    fitting `alg` is used (several: refused, OpenID Connect Core 1.0 section 10.1); the
//!    `alg` must be in that issuer's allowlist and fit the key's type; the header `typ`
//!    must match when the issuer requires one (RFC 9068 section 4);
//! 4. signature and claims by `jsonwebtoken::decode` with `iss`, `aud`, `exp`, `nbf`
//!    validation on;
//! 5. the claims again, by our own typed checks: `iss` a string equal to the issuer,
//!    `aud` a string or non-empty string array containing a configured audience, `exp`
//!    a number (required), `nbf` and `iat` numbers if present, all with the leeway, the
//!    lifetime (`exp - iat` and `exp - now`) at most the issuer's maximum, `sub` a
//!    non-empty capped string, `azp` one of the configured authorized parties (if any).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};

use super::config::{IssuerConfig, Limits, strip_application};
use super::error::{JwtError, Reason, SsoConfigError};
use super::identity::VerifiedIdentity;
use super::jwks::{JwksCache, Lookup, Want};
use super::keys::VerifyKey;
use crate::jose::{self as wire, Claim, Claims, HEADER_BUF_LEN, WireClaims};

/// One configured issuer, ready to verify.
#[derive(Debug)]
struct Issuer {
    name: String,
    audiences: Vec<String>,
    leeway: i64,
    /// Longest accepted lifetime, seconds.
    max_lifetime: i64,
    /// Required header `typ` (lower case, without `application/`).
    typ: Option<Box<str>>,
    /// Accepted `azp` values (empty: not checked).
    authorized_parties: Vec<String>,
    /// One `jsonwebtoken` validation per allowed algorithm (the library requires every
    /// algorithm of a validation to share the key's family).
    validations: Vec<(Algorithm, Validation)>,
    cache: JwksCache,
}

impl Issuer {
    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find_map(|(a, v)| (*a == alg).then_some(v))
    }
}

/// Verifies SSO JWTs from one or more issuers against their JWKS.
///
/// Build with [`SsoVerifier::builder`]. Share it (`Arc`) between requests: the key caches
/// live inside.
#[derive(Debug)]
pub struct SsoVerifier {
    issuers: Box<[Issuer]>,
    /// Union of the issuers' allowlists, checked before any key lookup.
    any_allowed: Vec<Algorithm>,
    limits: Limits,
}

/// Builder for [`SsoVerifier`].
#[derive(Debug, Default)]
#[must_use]
pub struct SsoVerifierBuilder {
    issuers: Vec<IssuerConfig>,
    limits: Limits,
}

impl SsoVerifierBuilder {
    /// Adds a trusted issuer.
    pub fn issuer(mut self, issuer: IssuerConfig) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Replaces the input caps (token length, `kid` length, `sub` length).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds the verifier. Remote key sets are fetched lazily, on the first token (or
    /// eagerly with [`SsoVerifier::prefetch`]).
    ///
    /// # Errors
    ///
    /// [`SsoConfigError`]: no issuer, an issuer configured twice, out-of-range limits, a
    /// pinned key set without a usable key, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<SsoVerifier, SsoConfigError> {
        self.limits.check()?;
        if self.issuers.is_empty() {
            return Err(SsoConfigError::NoIssuer);
        }
        let mut issuers = Vec::with_capacity(self.issuers.len());
        let mut any_allowed: Vec<Algorithm> = Vec::new();
        for cfg in &self.issuers {
            if issuers.iter().any(|i: &Issuer| i.name == cfg.issuer) {
                return Err(SsoConfigError::DuplicateIssuer {
                    issuer: cfg.issuer.clone(),
                });
            }
            let validations = cfg
                .algorithms
                .iter()
                .map(|&alg| (alg, library_validation(cfg, alg)))
                .collect();
            for &alg in &cfg.algorithms {
                if !any_allowed.contains(&alg) {
                    any_allowed.push(alg);
                }
            }
            issuers.push(Issuer {
                name: cfg.issuer.clone(),
                audiences: cfg.audiences.clone(),
                leeway: i64::try_from(cfg.leeway).unwrap_or(i64::MAX),
                max_lifetime: i64::try_from(cfg.max_lifetime).unwrap_or(i64::MAX),
                typ: cfg.typ.as_deref().map(Box::from),
                authorized_parties: cfg.authorized_parties.clone(),
                validations,
                cache: JwksCache::new(cfg, self.limits.max_kid_len)?,
            });
        }
        Ok(SsoVerifier {
            issuers: issuers.into_boxed_slice(),
            any_allowed,
            limits: self.limits,
        })
    }
}

/// The `jsonwebtoken` validation for one issuer and algorithm: every check the library
/// offers is on, as a second line behind our own claim checks.
fn library_validation(cfg: &IssuerConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = cfg.leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_audience(&cfg.audiences);
    v.set_issuer(&[&cfg.issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

/// `alg` header values that can ever be accepted: asymmetric algorithms only.
fn parse_alg(alg: &str) -> Option<Algorithm> {
    let alg: Algorithm = alg.parse().ok()?;
    (alg.family() != AlgorithmFamily::Hmac).then_some(alg)
}

impl SsoVerifier {
    /// Starts a builder.
    pub fn builder() -> SsoVerifierBuilder {
        SsoVerifierBuilder::default()
    }

    /// The configured issuer identifiers.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.name.as_str())
    }

    /// Fetches every remote issuer's JWKS now (for warm-up at start), ignoring the
    /// cooldown; an issuer configured with [`IssuerConfig::discover`] whose JWKS URL is
    /// not known yet fetches its discovery document first. Returns how many issuers have
    /// usable keys afterwards; the others are retried on demand.
    pub async fn prefetch(&self) -> usize {
        let mut ready = 0;
        for issuer in self.issuers.iter() {
            if issuer.cache.refresh_now().await {
                ready += 1;
            }
        }
        ready
    }

    /// Number of keys currently cached for `issuer` (0 for an unknown issuer).
    pub fn cached_key_count(&self, issuer: &str) -> usize {
        self.issuers
            .iter()
            .find(|i| i.name == issuer)
            .map_or(0, |i| i.cache.key_count())
    }

    /// Verifies `token` (a compact JWS, without the `Bearer ` prefix).
    ///
    /// # Errors
    ///
    /// A [`JwtError`]: refused (403), or [`JwtError::is_unavailable`] (503) when the
    /// issuer's keys could not be fetched and none can rule on the token. Its
    /// [`Reason`] is for tracing only.
    pub async fn verify(&self, token: &str) -> Result<VerifiedIdentity, JwtError> {
        self.verify_inner(token).await.map_err(JwtError::new)
    }

    async fn verify_inner(&self, token: &str) -> Result<VerifiedIdentity, Reason> {
        let segments = wire::split(token, self.limits.max_token_len)?;
        let mut buf = [0u8; HEADER_BUF_LEN];
        let header = wire::parse_header(segments.header, &mut buf)?;
        if header.forbidden {
            return Err(Reason::ForbiddenHeader);
        }
        let kid = header.kid.as_deref();
        match kid {
            Some("") => return Err(Reason::KidMissing),
            Some(kid) if kid.len() > self.limits.max_kid_len => return Err(Reason::KidTooLong),
            _ => {}
        }
        let alg = parse_alg(&header.alg)
            .filter(|a| self.any_allowed.contains(a))
            .ok_or(Reason::AlgNotAllowed)?;

        let want = kid.map_or(Want::Sole(alg), Want::Kid);
        let (issuer, key) = self.select_key(want, segments.payload).await?;
        let validation = issuer.validation(alg).ok_or(Reason::AlgNotAllowed)?;
        if !key.permits(alg) {
            return Err(Reason::AlgKeyMismatch);
        }
        if let Some(expected) = &issuer.typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| strip_application(t).eq_ignore_ascii_case(expected))
        {
            return Err(Reason::WrongType);
        }

        let data = match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
            Ok(data) => data,
            Err(e) => return Err(refine(e.kind(), issuer, segments.payload, &self.limits)),
        };
        // The library parsed the header on its own: it must agree with ours.
        let h = &data.header;
        if h.alg != alg
            || h.kid.as_deref() != kid
            || h.typ.as_deref() != header.typ.as_deref()
            || h.jku.is_some()
            || h.x5u.is_some()
            || h.jwk.is_some()
            || h.x5c.is_some()
            || h.crit.is_some()
        {
            return Err(Reason::Malformed);
        }
        check_claims(data.claims.0, issuer, &self.limits, now_unix()?)
    }

    /// Finds the issuer and key for `kid` (or, for a token without `kid`, the issuer's
    /// only key fitting `alg`).
    async fn select_key(
        &self,
        want: Want<'_>,
        payload_b64: &str,
    ) -> Result<(&Issuer, Arc<VerifyKey>), Reason> {
        let issuer = if let [only] = &*self.issuers {
            only
        } else {
            if let Want::Kid(kid) = want {
                let mut hit = None;
                let mut hits = 0usize;
                for issuer in self.issuers.iter() {
                    if let Some(key) = issuer.cache.cached(kid) {
                        hits += 1;
                        hit = Some((issuer, key));
                    }
                }
                if hits == 1
                    && let Some(found) = hit
                {
                    return Ok(found);
                }
            }
            // Unknown everywhere, held by several issuers, or no `kid` at all: let the
            // (unverified) `iss` say which issuer's set to consult. The token must still
            // verify under that issuer's key and carry exactly that `iss`.
            let name = wire::peek_issuer(payload_b64)?;
            self.issuers
                .iter()
                .find(|i| i.name == name)
                .ok_or(Reason::UnknownIssuer)?
        };
        if let Want::Sole(alg) = want
            && issuer.validation(alg).is_none()
        {
            // Not this issuer's algorithm: no key to look for (and nothing to fetch).
            return Err(Reason::AlgNotAllowed);
        }
        match issuer.cache.key(want).await {
            Lookup::Found(key) => Ok((issuer, key)),
            Lookup::Unknown if matches!(want, Want::Kid(_)) => Err(Reason::UnknownKid),
            Lookup::Unknown | Lookup::Ambiguous => Err(Reason::KidMissing),
            Lookup::Unavailable => Err(Reason::JwksUnavailable),
        }
    }
}

/// Current Unix time in seconds; a clock before 1970 refuses every token.
fn now_unix() -> Result<i64, Reason> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Reason::Rejected)?
        .as_secs();
    i64::try_from(secs).map_err(|_| Reason::Rejected)
}

/// Our own claim checks, independent of `jsonwebtoken`'s.
fn check_claims(
    c: WireClaims,
    issuer: &Issuer,
    limits: &Limits,
    now: i64,
) -> Result<VerifiedIdentity, Reason> {
    let iss = present(c.iss)?;
    if iss != issuer.name {
        return Err(Reason::WrongIssuer);
    }
    let aud = present(c.aud)?;
    if !aud.any(|a| issuer.audiences.iter().any(|ok| ok == a)) {
        return Err(Reason::WrongAudience);
    }
    let exp = present(c.exp)?.0;
    if now > exp.saturating_add(issuer.leeway) {
        return Err(Reason::Expired);
    }
    if let Some(nbf) = optional(c.nbf)?
        && nbf.0 > now.saturating_add(issuer.leeway)
    {
        return Err(Reason::NotYetValid);
    }
    let iat = optional(c.iat)?;
    if let Some(iat) = iat
        && iat.0 > now.saturating_add(issuer.leeway)
    {
        return Err(Reason::IssuedInFuture);
    }
    // Lifetime: issued-to-expiry, and now-to-expiry (which also bounds tokens without
    // `iat`); an `exp` in milliseconds fails both.
    if iat.is_some_and(|iat| exp.saturating_sub(iat.0) > issuer.max_lifetime)
        || exp.saturating_sub(now) > issuer.max_lifetime.saturating_add(issuer.leeway)
    {
        return Err(Reason::LifetimeTooLong);
    }
    let sub = present(c.sub)?;
    if sub.is_empty() || sub.len() > limits.max_subject_len {
        return Err(Reason::BadSubject);
    }
    if !issuer.authorized_parties.is_empty() {
        let azp = present(c.azp)?;
        if !issuer.authorized_parties.contains(&azp) {
            return Err(Reason::WrongAuthorizedParty);
        }
    }
    let email = match c.email {
        Claim::Present(e) => Some(e),
        Claim::Absent | Claim::Invalid => None,
    };
    let email_verified = matches!(c.email_verified, Claim::Present(true));
    Ok(VerifiedIdentity::new(iss, sub, email, email_verified, exp))
}

fn present<T>(c: Claim<T>) -> Result<T, Reason> {
    match c {
        Claim::Present(v) => Ok(v),
        Claim::Absent => Err(Reason::MissingClaim),
        Claim::Invalid => Err(Reason::ClaimType),
    }
}

fn optional<T>(c: Claim<T>) -> Result<Option<T>, Reason> {
    match c {
        Claim::Present(v) => Ok(Some(v)),
        Claim::Absent => Ok(None),
        Claim::Invalid => Err(Reason::ClaimType),
    }
}

/// Maps a `jsonwebtoken` error to a reason. For errors raised after the signature
/// verified (claim checks), our own checks are run on the payload to name the claim
/// precisely; the token is refused either way.
fn refine(kind: &ErrorKind, issuer: &Issuer, payload_b64: &str, limits: &Limits) -> Reason {
    let coarse = match kind {
        ErrorKind::InvalidSignature => return Reason::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => return Reason::AlgNotAllowed,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            return Reason::Malformed;
        }
        ErrorKind::Json(_) => Reason::Malformed,
        ErrorKind::MissingRequiredClaim(_) => Reason::MissingClaim,
        ErrorKind::InvalidClaimFormat(_) => Reason::ClaimType,
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::WrongIssuer,
        ErrorKind::InvalidAudience => Reason::WrongAudience,
        ErrorKind::InvalidSubject => Reason::BadSubject,
        _ => return Reason::Rejected,
    };
    let Ok(now) = now_unix() else {
        return coarse;
    };
    match wire::parse_payload(payload_b64) {
        Err(reason) => reason.into(),
        Ok(claims) => check_claims(claims, issuer, limits, now)
            .err()
            .unwrap_or(coarse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_parsing_never_yields_symmetric_or_none() {
        for bad in [
            "none", "None", "HS256", "HS384", "HS512", "", "rs256", "RS257",
        ] {
            assert_eq!(parse_alg(bad), None, "{bad}");
        }
        assert_eq!(parse_alg("RS256"), Some(Algorithm::RS256));
        assert_eq!(parse_alg("ES256"), Some(Algorithm::ES256));
        assert_eq!(parse_alg("EdDSA"), Some(Algorithm::EdDSA));
    }
}
