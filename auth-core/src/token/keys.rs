//! Signing keys: generation (aws-lc-rs, PKCS#8), the secret type that carries a private
//! key across the [`SigningKeyStore`] boundary, `kid` derivation (RFC 7638) and the
//! public JWK (RFC 7517, RFC 8037 for Ed25519).

use core::fmt;

use async_trait::async_trait;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64ct::{Base64UrlUnpadded, Encoding as _};
use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use crate::secret;
use crate::store::StoreError;

/// The asymmetric algorithm of a signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// EdDSA over Ed25519 (RFC 8037): the default. Small keys and signatures, fast
    /// verification, deterministic signatures (no per-signature randomness to get wrong).
    #[default]
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 section 3.4), for verifiers that do not
    /// support EdDSA.
    Es256,
}

impl SigningAlgorithm {
    /// The JOSE `alg` name: `"EdDSA"` or `"ES256"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// Parses a JOSE `alg` name (exactly `"EdDSA"` or `"ES256"`), for stores that keep
    /// the algorithm as text.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    pub(crate) const fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signing key as the [`SigningKeyStore`] keeps it: `kid`, algorithm, the private
/// key (unencrypted PKCS#8 DER, RFC 5958), creation time and retirement time.
///
/// A secret type: the private key is wiped on drop, `Debug` prints the `kid`, the
/// algorithm and the times only, and the key bytes come out only through
/// [`SigningKey::expose_secret`] (for the store to seal them).
pub struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    created_at: i64,
    retire_at: Option<i64>,
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        Self {
            kid: self.kid.clone(),
            alg: self.alg,
            pkcs8: Zeroizing::new(self.pkcs8.to_vec()),
            created_at: self.created_at,
            retire_at: self.retire_at,
        }
    }
}

impl SigningKey {
    /// Generates a fresh key pair of `alg` from the system CSPRNG (aws-lc-rs). Its `kid`
    /// is the RFC 7638 JWK thumbprint of the public key.
    ///
    /// # Errors
    ///
    /// [`secret::RandomError`](crate::RandomError) when key generation fails.
    pub fn generate(alg: SigningAlgorithm, created_at: i64) -> Result<Self, crate::RandomError> {
        let pkcs8 = match alg {
            SigningAlgorithm::EdDsa => {
                let kp = Ed25519KeyPair::generate().map_err(|_| crate::RandomError)?;
                Zeroizing::new(
                    kp.to_pkcs8()
                        .map_err(|_| crate::RandomError)?
                        .as_ref()
                        .to_vec(),
                )
            }
            SigningAlgorithm::Es256 => {
                let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| crate::RandomError)?;
                Zeroizing::new(
                    kp.to_pkcs8v1()
                        .map_err(|_| crate::RandomError)?
                        .as_ref()
                        .to_vec(),
                )
            }
        };
        let public = PublicKey::from_pkcs8(alg, &pkcs8).ok_or(crate::RandomError)?;
        Ok(Self {
            kid: public.thumbprint(),
            alg,
            pkcs8,
            created_at,
            retire_at: None,
        })
    }

    /// Rebuilds a key from what a store persisted (after unsealing the private key).
    /// Nothing is checked here; the issuer parses the key and checks that `kid` is the
    /// thumbprint of its public key when it loads it, and ignores it otherwise.
    #[must_use]
    pub fn from_parts(
        kid: impl Into<String>,
        alg: SigningAlgorithm,
        pkcs8: Vec<u8>,
        created_at: i64,
        retire_at: Option<i64>,
    ) -> Self {
        Self {
            kid: kid.into(),
            alg,
            pkcs8: Zeroizing::new(pkcs8),
            created_at,
            retire_at,
        }
    }

    /// The key id: base64url SHA-256 JWK thumbprint of the public key (RFC 7638), 43
    /// characters. Not secret.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    #[must_use]
    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// Creation time, Unix seconds. The newest key that is not retiring is the primary
    /// (the one that signs).
    #[must_use]
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// When the key stops being published and accepted (Unix seconds), once a rotation
    /// replaced it; `None` while it is current.
    #[must_use]
    pub fn retire_at(&self) -> Option<i64> {
        self.retire_at
    }

    /// Sets the retirement time (for stores).
    #[must_use]
    pub fn with_retire_at(mut self, retire_at: Option<i64>) -> Self {
        self.retire_at = retire_at;
        self
    }

    /// The private key, unencrypted PKCS#8 DER. Seal it before it leaves the process.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// The public half of a signing key, in the encodings JOSE uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Ed25519: the 32-byte public key.
    Ed25519(Vec<u8>),
    /// P-256: the uncompressed point `04 || x || y` (65 bytes).
    P256(Vec<u8>),
}

impl PublicKey {
    /// Parses a PKCS#8 private key of `alg` and returns its public key; `None` if the
    /// bytes are not such a key.
    pub(crate) fn from_pkcs8(alg: SigningAlgorithm, pkcs8: &[u8]) -> Option<Self> {
        match alg {
            SigningAlgorithm::EdDsa => {
                let kp = Ed25519KeyPair::from_pkcs8(pkcs8).ok()?;
                Some(Self::Ed25519(kp.public_key().as_ref().to_vec()))
            }
            SigningAlgorithm::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
                let point = kp.public_key().as_ref().to_vec();
                (point.len() == 65 && point[0] == 4).then_some(Self::P256(point))
            }
        }
    }

    /// The raw bytes `jsonwebtoken`'s aws-lc-rs verifier takes.
    pub(crate) fn raw(&self) -> &[u8] {
        match self {
            Self::Ed25519(b) | Self::P256(b) => b,
        }
    }

    /// The required members of the JWK in lexicographic order, as RFC 7638 section 3.2
    /// hashes them (no whitespace).
    fn canonical_members(&self) -> String {
        match self {
            Self::Ed25519(x) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                Base64UrlUnpadded::encode_string(x)
            ),
            Self::P256(p) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                Base64UrlUnpadded::encode_string(&p[1..33]),
                Base64UrlUnpadded::encode_string(&p[33..65])
            ),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url without padding.
    pub(crate) fn thumbprint(&self) -> String {
        Base64UrlUnpadded::encode_string(&secret::sha256(self.canonical_members().as_bytes()))
    }

    /// The public JWK with `kid`, `use: sig` and `alg`.
    pub(crate) fn jwk(&self, kid: &str, alg: SigningAlgorithm) -> serde_json::Value {
        match self {
            Self::Ed25519(x) => serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": Base64UrlUnpadded::encode_string(x),
                "kid": kid,
                "use": "sig",
                "alg": alg.as_str(),
            }),
            Self::P256(p) => serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": Base64UrlUnpadded::encode_string(&p[1..33]),
                "y": Base64UrlUnpadded::encode_string(&p[33..65]),
                "kid": kid,
                "use": "sig",
                "alg": alg.as_str(),
            }),
        }
    }
}

/// Where signing keys live, shared by every instance of the service.
///
/// # Security contract
///
/// * The private key crosses this trait only inside a [`SigningKey`]; take its bytes
///   with [`SigningKey::expose_secret`] and **seal them before they leave the process**
///   (the reference backend seals them with `crypto-envelope`, context bound to the
///   `kid`). Never log them, never store them in clear.
/// * Keys are identified by `kid` (unique). A store returns exactly what it was given
///   (after unsealing); the issuer checks that each `kid` is the thumbprint of its key
///   and ignores keys that fail the check (a swapped or corrupted row never signs or
///   verifies anything).
/// * Errors are [`StoreError`]s, never an empty list: an empty answer means "no keys".
/// * Every instance reads the same set: that is how a token signed by one instance
///   verifies on another.
#[async_trait]
pub trait SigningKeyStore: Send + Sync + fmt::Debug {
    /// Every stored key (current and retiring).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// Inserts a new key.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] `{ field: "kid" }` if the `kid` exists; [`StoreError`].
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;

    /// Sets the retirement time of key `kid` if it has none yet (a key never un-retires
    /// and its retirement is never pushed back). Returns whether a key was changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn retire_signing_key(&self, kid: &str, retire_at: i64) -> Result<bool, StoreError>;

    /// Deletes key `kid` (called once its retirement time has passed). Returns whether
    /// one was deleted.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError>;
}

/// An in-process [`SigningKeyStore`], for tests and single-instance tools. Cheap to clone
/// (shared): two issuers given clones share one key set, like two instances over one
/// database.
#[derive(Clone, Default)]
pub struct MemorySigningKeyStore {
    keys: std::sync::Arc<std::sync::Mutex<Vec<SigningKey>>>,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MemorySigningKeyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with [`StoreError::Backend`] (or succeed again), to test
    /// outages.
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<SigningKey>>, StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "memory signing key store set to fail".into(),
            ));
        }
        self.keys
            .lock()
            .map_err(|_| StoreError::Backend("memory signing key store poisoned".into()))
    }
}

impl fmt::Debug for MemorySigningKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self
            .keys
            .lock()
            .map(|k| k.iter().map(|k| k.kid.clone()).collect())
            .unwrap_or_default();
        f.debug_struct("MemorySigningKeyStore")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SigningKeyStore for MemorySigningKeyStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        Ok(self.lock()?.clone())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let mut keys = self.lock()?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Conflict { field: "kid" });
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn retire_signing_key(&self, kid: &str, retire_at: i64) -> Result<bool, StoreError> {
        let mut keys = self.lock()?;
        Ok(match keys.iter_mut().find(|k| k.kid == kid) {
            Some(k) if k.retire_at.is_none() => {
                k.retire_at = Some(retire_at);
                true
            }
            _ => false,
        })
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let mut keys = self.lock()?;
        let before = keys.len();
        keys.retain(|k| k.kid != kid);
        Ok(keys.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_of_the_rfc8037_example_key() {
        // RFC 8037 appendix A.3: thumbprint of the Ed25519 key of A.2.
        let x = Base64UrlUnpadded::decode_vec("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap_or_default();
        assert_eq!(
            PublicKey::Ed25519(x).thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn generated_keys_have_their_thumbprint_as_kid() {
        for alg in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let k = SigningKey::generate(alg, 1).unwrap_or_else(|_| panic!("generate"));
            let public = PublicKey::from_pkcs8(alg, k.expose_secret());
            assert_eq!(public.map(|p| p.thumbprint()).as_deref(), Some(k.kid()));
            assert_eq!(k.kid().len(), 43);
        }
    }
}
