//! Signing keys taken from a JWKS: each JWK is parsed once into a `DecodingKey`, bound to
//! the algorithms its type allows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde::Deserialize;

/// The type of a public key, which fixes the algorithms it may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// RSA, at least 2048 bits: RS256/384/512 and PS256/384/512.
    Rsa,
    /// ECDSA on P-256: ES256 only.
    EcP256,
    /// ECDSA on P-384: ES384 only.
    EcP384,
    /// Ed25519: EdDSA only.
    Ed25519,
}

impl KeyType {
    /// Whether a key of this type may verify `alg`. Symmetric algorithms never fit a
    /// public key.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                Self::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (Self::EcP256, Algorithm::ES256)
                | (Self::EcP384, Algorithm::ES384)
                | (Self::Ed25519, Algorithm::EdDSA)
        )
    }
}

/// One verification key, parsed once per `kid`.
pub(crate) struct VerifyKey {
    pub(crate) key: DecodingKey,
    pub(crate) key_type: KeyType,
    /// The JWK's own `alg`, if it declared one: then only that algorithm.
    pub(crate) declared_alg: Option<Algorithm>,
}

impl VerifyKey {
    /// Whether this key may verify a token whose header says `alg`.
    pub(crate) fn permits(&self, alg: Algorithm) -> bool {
        self.key_type.fits(alg) && self.declared_alg.is_none_or(|d| d == alg)
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("key_type", &self.key_type)
            .field("declared_alg", &self.declared_alg)
            .finish_non_exhaustive()
    }
}

/// Every algorithm a public key can ever verify (the asymmetric ones).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a JWK was skipped (logged with its `kid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SkipReason {
    KidTooLong,
    NotForSignatures,
    PrivateOrSymmetric,
    UnsupportedType,
    WeakOrBadKey,
    Unparseable,
    DuplicateKid,
}

impl SkipReason {
    pub(crate) const fn code(self) -> &'static str {
        match self {
            Self::KidTooLong => "jwks.kid_too_long",
            Self::NotForSignatures => "jwks.key_not_for_signatures",
            Self::PrivateOrSymmetric => "jwks.private_or_symmetric_key",
            Self::UnsupportedType => "jwks.unsupported_key_type",
            Self::WeakOrBadKey => "jwks.weak_or_bad_key",
            Self::Unparseable => "jwks.unparseable_key",
            Self::DuplicateKid => "jwks.duplicate_kid",
        }
    }
}

/// Smallest accepted RSA modulus, in bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;
/// Largest accepted RSA modulus, in bytes (8192 bits).
const MAX_RSA_MODULUS: usize = 1024;

/// Members that only private or symmetric JWKs carry. A JWKS must publish public keys
/// only; a key carrying any of these is skipped rather than trusted.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Builds a [`VerifyKey`] from one JWK given as raw JSON, with its `kid` (`None` when the
/// JWK has none, or an empty one: RFC 7517 makes `kid` optional; such a key can only
/// verify tokens without `kid`).
pub(crate) fn parse_jwk(
    raw: &serde_json::Value,
    max_kid_len: usize,
) -> Result<(Option<String>, VerifyKey), (Option<String>, SkipReason)> {
    let kid_of = |v: &serde_json::Value| v.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
    let Some(obj) = raw.as_object() else {
        return Err((None, SkipReason::Unparseable));
    };
    if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
        return Err((kid_of(raw), SkipReason::PrivateOrSymmetric));
    }
    let jwk = Jwk::deserialize(raw).map_err(|_| (kid_of(raw), SkipReason::Unparseable))?;
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty());
    let skip = |r| (kid.clone(), r);
    if kid.as_ref().is_some_and(|k| k.len() > max_kid_len) {
        return Err(skip(SkipReason::KidTooLong));
    }
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err(skip(SkipReason::NotForSignatures));
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(skip(SkipReason::NotForSignatures));
    }
    let declared_alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).map_err(|_| skip(SkipReason::NotForSignatures))?),
    };
    let key_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyType::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyType::EcP256,
            EllipticCurve::P384 => KeyType::EcP384,
            _ => return Err(skip(SkipReason::UnsupportedType)),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyType::Ed25519
        }
        AlgorithmParameters::OctetKey(_) => return Err(skip(SkipReason::PrivateOrSymmetric)),
        _ => return Err(skip(SkipReason::UnsupportedType)),
    };
    if let Some(alg) = declared_alg
        && !key_type.fits(alg)
    {
        return Err(skip(SkipReason::NotForSignatures));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| skip(SkipReason::WeakOrBadKey))?;
    if !well_formed(&key, key_type) {
        return Err(skip(SkipReason::WeakOrBadKey));
    }
    Ok((
        kid,
        VerifyKey {
            key,
            key_type,
            declared_alg,
        },
    ))
}

/// Size checks the library does not do when building a key from JWK components.
fn well_formed(key: &DecodingKey, key_type: KeyType) -> bool {
    match (key.kind(), key_type) {
        (DecodingKeyKind::RsaModulusExponent { n, e }, KeyType::Rsa) => {
            let n_len = n.iter().skip_while(|b| **b == 0).count();
            let e_len = e.iter().skip_while(|b| **b == 0).count();
            (MIN_RSA_MODULUS..=MAX_RSA_MODULUS).contains(&n_len) && (1..=8).contains(&e_len)
        }
        (DecodingKeyKind::SecretOrDer(point), KeyType::EcP256) => point.len() == 1 + 2 * 32,
        (DecodingKeyKind::SecretOrDer(point), KeyType::EcP384) => point.len() == 1 + 2 * 48,
        (DecodingKeyKind::SecretOrDer(x), KeyType::Ed25519) => x.len() == 32,
        _ => false,
    }
}

/// The key a token without `kid` may use for one algorithm.
#[derive(Debug)]
pub(crate) enum Sole<'a> {
    /// No key of the set fits the algorithm.
    None,
    /// Exactly one key fits it.
    One(&'a Arc<VerifyKey>),
    /// Several keys fit it: a token must name one by `kid`.
    Several,
}

/// The usable keys of one issuer: by `kid`, and per algorithm the one key (if exactly
/// one) that a token without `kid` may use (OpenID Connect Core 1.0 section 10.1 requires
/// `kid` only when the set holds several keys; we require it when several keys fit the
/// token's algorithm and key type).
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<VerifyKey>>,
    /// Keys published without `kid`.
    unnamed: usize,
    /// For each algorithm some key fits: that key, or `None` when several fit.
    by_alg: Vec<(Algorithm, Option<Arc<VerifyKey>>)>,
}

impl KeySet {
    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.keys.get(kid)
    }

    /// The key a token without `kid` and with this `alg` may use.
    pub(crate) fn sole(&self, alg: Algorithm) -> Sole<'_> {
        match self.by_alg.iter().find(|(a, _)| *a == alg) {
            None => Sole::None,
            Some((_, Some(key))) => Sole::One(key),
            Some((_, None)) => Sole::Several,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len() + self.unnamed
    }

    fn new(keys: HashMap<String, Arc<VerifyKey>>, unnamed: Vec<Arc<VerifyKey>>) -> Self {
        let mut by_alg = Vec::new();
        for alg in ASYMMETRIC {
            let mut fitting = keys.values().chain(&unnamed).filter(|k| k.permits(alg));
            match (fitting.next(), fitting.next()) {
                (None, _) => {}
                (Some(one), None) => by_alg.push((alg, Some(Arc::clone(one)))),
                (Some(_), Some(_)) => by_alg.push((alg, None)),
            }
        }
        Self {
            unnamed: unnamed.len(),
            keys,
            by_alg,
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("unnamed", &self.unnamed)
            .finish()
    }
}

/// Why a JWKS document was not accepted as a whole (the previous keys keep serving).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetError {
    /// Not JSON, or not an object with a `keys` array.
    Malformed,
    /// More keys than the cap.
    TooManyKeys,
    /// No key in it is usable.
    NoUsableKey,
}

impl SetError {
    pub(crate) const fn code(self) -> &'static str {
        match self {
            Self::Malformed => "jwks.malformed",
            Self::TooManyKeys => "jwks.too_many_keys",
            Self::NoUsableKey => "jwks.no_usable_key",
        }
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document. Unusable keys are skipped (and logged); a `kid` that appears
/// twice is dropped entirely, since we could not tell which key it means. Keys without
/// `kid` are kept for tokens without `kid` only.
pub(crate) fn parse_set(
    body: &[u8],
    issuer: &str,
    max_keys: usize,
    max_kid_len: usize,
) -> Result<KeySet, SetError> {
    let raw: RawSet = serde_json::from_slice(body).map_err(|_| SetError::Malformed)?;
    if raw.keys.len() > max_keys {
        return Err(SetError::TooManyKeys);
    }
    let mut keys: HashMap<String, Arc<VerifyKey>> = HashMap::with_capacity(raw.keys.len());
    let mut unnamed: Vec<Arc<VerifyKey>> = Vec::new();
    let mut duplicated: Vec<String> = Vec::new();
    for value in &raw.keys {
        match parse_jwk(value, max_kid_len) {
            Ok((None, key)) => unnamed.push(Arc::new(key)),
            Ok((Some(kid), key)) => {
                if keys.insert(kid.clone(), Arc::new(key)).is_some() {
                    duplicated.push(kid);
                }
            }
            Err((kid, reason)) => {
                tracing::warn!(
                    issuer,
                    kid = kid.as_deref().map(|k| truncate(k, max_kid_len)),
                    code = reason.code(),
                    "jwks key skipped"
                );
            }
        }
    }
    for kid in duplicated {
        keys.remove(&kid);
        tracing::warn!(
            issuer,
            kid = truncate(&kid, max_kid_len),
            code = SkipReason::DuplicateKid.code(),
            "jwks key skipped"
        );
    }
    if keys.is_empty() && unnamed.is_empty() {
        return Err(SetError::NoUsableKey);
    }
    Ok(KeySet::new(keys, unnamed))
}

/// At most `max` bytes of `s`, cut on a character boundary (for log fields).
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}
