//! Sealing and opening: suite 1 (AES-256-GCM with an HKDF-SHA-256 derived key and key
//! commitment) over a data key wrapped by a [`KekBackend`].

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::backend::{KekBackend, Wrapped};
use crate::cache::{DataKeyCache, Fingerprint};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError, Error};
use crate::format::{
    self, COMMITMENT_LEN, MAGIC, MAX_CIPHERTEXT_LEN, MAX_WRAPPED_LEN, NONCE_LEN, Sealed,
    SealedView, Suite, TAG_LEN, VERSION_1, valid_backend_id, valid_key_id,
};
use crate::secret::{DataKey, Plaintext};

/// The HKDF info of suite 1: one expansion yields the payload key and the commitment.
/// Kept under 23 bytes so that each HMAC block of the expansion is one SHA-256 block.
const HKDF_INFO: &[u8] = b"strongroom sre v1 s1";
/// Purpose byte of the payload's associated data.
const PURPOSE_PAYLOAD: u8 = 1;
/// Purpose byte of the data-key wrap's associated data.
const PURPOSE_WRAP: u8 = 2;
/// Where the purpose byte stands in the associated data.
const PURPOSE_OFFSET: usize = MAGIC.len() + 2;

/// Seals and opens secrets. Cheap to clone; share one per process.
///
/// New values are wrapped by the primary backend; values wrapped by any configured
/// backend open, so a deployment can move from one backend to another (a master key to
/// a KMS, say) and re-wrap at leisure without changing what the database holds.
#[derive(Clone)]
pub struct Envelope {
    primary: Arc<dyn KekBackend>,
    backends: Arc<[Arc<dyn KekBackend>]>,
    cache: Option<Arc<DataKeyCache>>,
}

/// What [`Envelope::rewrap`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rewrap {
    /// The value opened in full and is already wrapped by the primary backend's primary
    /// key.
    Current,
    /// The value's data key was re-wrapped; payload, nonce and commitment are unchanged.
    Rewrapped(Sealed),
}

impl Envelope {
    /// An envelope whose `primary` backend wraps every new data key.
    ///
    /// # Errors
    /// [`ConfigError`] when the backend id is malformed.
    pub fn new(primary: impl KekBackend + 'static) -> Result<Self, ConfigError> {
        Self::from_arc(Arc::new(primary))
    }

    /// As [`Envelope::new`], for a backend already shared.
    ///
    /// # Errors
    /// As [`Envelope::new`].
    pub fn from_arc(primary: Arc<dyn KekBackend>) -> Result<Self, ConfigError> {
        check_backend_id(primary.as_ref())?;
        Ok(Self {
            backends: Arc::from(vec![Arc::clone(&primary)]),
            primary,
            cache: None,
        })
    }

    /// Adds a backend that only opens (and whose values [`Envelope::rewrap`] moves to the
    /// primary).
    ///
    /// # Errors
    /// [`ConfigError`] when its id is malformed or already configured.
    pub fn with_decrypt_only(
        self,
        backend: impl KekBackend + 'static,
    ) -> Result<Self, ConfigError> {
        self.with_decrypt_only_arc(Arc::new(backend))
    }

    /// As [`Envelope::with_decrypt_only`], for a backend already shared.
    ///
    /// # Errors
    /// As [`Envelope::with_decrypt_only`].
    pub fn with_decrypt_only_arc(self, backend: Arc<dyn KekBackend>) -> Result<Self, ConfigError> {
        check_backend_id(backend.as_ref())?;
        if self.backends.iter().any(|b| b.id() == backend.id()) {
            return Err(ConfigError::Invalid {
                field: format!("backend {}", backend.id()),
                reason: "a backend with this id is already configured",
            });
        }
        let mut backends = self.backends.to_vec();
        backends.push(backend);
        Ok(Self {
            primary: self.primary,
            backends: Arc::from(backends),
            cache: self.cache,
        })
    }

    /// Caches unwrapped data keys for opens (off by default), so that a value opened
    /// often costs one backend call per cache lifetime rather than one per open.
    ///
    /// Only opens use the cache; seals draw a fresh data key every time and
    /// [`Envelope::rewrap`] always asks the backend. A data key is cached only after its
    /// value opened in full, and a hit still checks the key commitment and the payload
    /// tag. The price: for up to [`CacheLimits::max_age`](crate::CacheLimits) after a
    /// key-encryption key is retired, disabled or its grant revoked in the backend,
    /// values whose data key is cached keep opening here. With a credential cache in
    /// front (cred-cache), this cache is rarely worth it: see the crate README.
    pub fn with_data_key_cache(mut self, cache: DataKeyCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// The data-key cache, when one is configured.
    pub fn data_key_cache(&self) -> Option<&DataKeyCache> {
        self.cache.as_deref()
    }

    /// Seals `plaintext` under a fresh data key, bound to `context`.
    ///
    /// # Errors
    /// [`Error::Malformed`] (`plaintext length`) above 64 MiB; [`Error::Backend`] when the
    /// backend cannot wrap; [`Error::KeyNotHeld`] when it no longer holds its primary key.
    pub async fn seal(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Sealed, Error> {
        if plaintext.len() > MAX_CIPHERTEXT_LEN - TAG_LEN {
            return Err(Error::Malformed {
                field: "plaintext length",
            });
        }
        let dek = DataKey::generate()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| BackendError::Random)?;
        let wrapped = self.wrap_dek(&dek, &wrap_aad(context), context).await?;
        let (commitment, ciphertext) = seal_payload(&dek, nonce, plaintext, context)?;
        Ok(Sealed {
            suite: Suite::Aes256GcmHkdfSha256Commit,
            backend: self.primary.id().to_owned(),
            key: wrapped.key,
            wrapped_key: wrapped.bytes,
            nonce,
            commitment,
            ciphertext,
        })
    }

    /// Opens a sealed value in binary form.
    ///
    /// # Errors
    /// [`Error::Refused`] for every cryptographic failure alike (wrong context, wrong
    /// key, tampering); [`Error::Malformed`] and the unsupported-version and -suite errors
    /// for bytes that are not a sealed value; [`Error::UnknownBackend`] and
    /// [`Error::KeyNotHeld`] (both [`Error::is_configuration`]) for a value sealed under a
    /// backend or key this envelope was not configured with; [`Error::Backend`] for a
    /// retired key or a backend failure.
    pub async fn open(
        &self,
        sealed: &[u8],
        context: &EncryptionContext,
    ) -> Result<Plaintext, Error> {
        self.open_view(&SealedView::parse(sealed)?, context).await
    }

    /// Opens a sealed value in text form.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_text(
        &self,
        sealed: &str,
        context: &EncryptionContext,
    ) -> Result<Plaintext, Error> {
        let bytes = format::decode_text(sealed)?;
        self.open_view(&SealedView::parse(&bytes)?, context).await
    }

    /// Opens a parsed sealed value.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_sealed(
        &self,
        sealed: &Sealed,
        context: &EncryptionContext,
    ) -> Result<Plaintext, Error> {
        self.open_view(&sealed.view(), context).await
    }

    async fn open_view(
        &self,
        sealed: &SealedView<'_>,
        context: &EncryptionContext,
    ) -> Result<Plaintext, Error> {
        let mut aad = wrap_aad(context);
        let Some(cache) = &self.cache else {
            let dek = self.unwrap_dek(sealed, &aad, context).await?;
            let key = committed_key(&dek, sealed)?;
            // The payload's associated data differs from the wrap's only in the purpose
            // byte.
            aad[PURPOSE_OFFSET] = PURPOSE_PAYLOAD;
            return open_payload(&key, sealed, &aad);
        };
        let fingerprint: Fingerprint =
            DataKeyCache::fingerprint(sealed.backend, &sealed.key, sealed.wrapped_key, &aad);
        let bytes = sealed.ciphertext.len();
        let (dek, cached) = match cache.get(&fingerprint, bytes) {
            Some(dek) => (dek, true),
            None => (
                Arc::new(self.unwrap_dek(sealed, &aad, context).await?),
                false,
            ),
        };
        let key = committed_key(&dek, sealed)?;
        aad[PURPOSE_OFFSET] = PURPOSE_PAYLOAD;
        let plaintext = open_payload(&key, sealed, &aad)?;
        if !cached {
            cache.insert(fingerprint, dek, bytes);
        }
        Ok(plaintext)
    }

    /// Re-wraps a value's data key under the primary backend's primary key, leaving the
    /// payload untouched.
    ///
    /// The value is opened in full first (data key unwrapped, commitment checked,
    /// payload decrypted and its tag verified, the plaintext wiped at once), whether or
    /// not it is already under the primary key: so [`Rewrap::Current`] means "opens
    /// under this context and needs nothing", never only "the header names the primary
    /// key", and nothing that would not open is ever re-wrapped. A value the primary
    /// backend wrapped under an older key is re-wrapped inside that backend when it
    /// supports it ([`KekBackend::rewrap`]), otherwise wrapped afresh.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn rewrap(
        &self,
        sealed: &[u8],
        context: &EncryptionContext,
    ) -> Result<Rewrap, Error> {
        let mut sealed = Sealed::from_bytes(sealed)?;
        let mut aad = wrap_aad(context);
        let dek = self.unwrap_dek(&sealed.view(), &aad, context).await?;
        let key = committed_key(&dek, &sealed.view())?;
        aad[PURPOSE_OFFSET] = PURPOSE_PAYLOAD;
        drop(open_payload(&key, &sealed.view(), &aad)?);
        aad[PURPOSE_OFFSET] = PURPOSE_WRAP;
        if sealed.backend == self.primary.id() && self.primary.is_current(&sealed.key) {
            return Ok(Rewrap::Current);
        }
        let in_backend = if sealed.backend == self.primary.id() {
            self.primary
                .rewrap(&sealed.key, &sealed.wrapped_key, &aad, context)
                .await?
        } else {
            None
        };
        let wrapped = match in_backend {
            Some(wrapped) => self.check_wrapped(wrapped)?,
            None => self.wrap_dek(&dek, &aad, context).await?,
        };
        sealed.backend = self.primary.id().to_owned();
        sealed.key = wrapped.key;
        sealed.wrapped_key = wrapped.bytes;
        Ok(Rewrap::Rewrapped(sealed))
    }

    /// The primary backend.
    pub fn primary(&self) -> &dyn KekBackend {
        self.primary.as_ref()
    }

    /// Wraps a data key under the primary backend and checks that what the backend gave
    /// back fits the format, so that no sealed value (new or re-wrapped) is ever written
    /// that could not be read again.
    async fn wrap_dek(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, Error> {
        let wrapped = self.primary.wrap(dek, aad, context).await?;
        self.check_wrapped(wrapped)
    }

    /// Checks that a wrap the primary backend gave back fits the format.
    fn check_wrapped(&self, wrapped: Wrapped) -> Result<Wrapped, Error> {
        let misbehaved = |reason| BackendError::Misbehaved {
            backend: self.primary.id().to_owned(),
            reason,
        };
        if !valid_key_id(wrapped.key.id.as_bytes()) {
            return Err(misbehaved("the key id is not 1 to 255 visible ASCII bytes").into());
        }
        if wrapped.bytes.is_empty() || wrapped.bytes.len() > MAX_WRAPPED_LEN {
            return Err(misbehaved("the wrapped key is not 1 to 4096 bytes").into());
        }
        Ok(wrapped)
    }

    async fn unwrap_dek(
        &self,
        sealed: &SealedView<'_>,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, Error> {
        let backend = self
            .backends
            .iter()
            .find(|b| b.id() == sealed.backend)
            .ok_or_else(|| Error::UnknownBackend {
                backend: sealed.backend.to_owned(),
            })?;
        backend
            .unwrap(&sealed.key, sealed.wrapped_key, aad, context)
            .await
            .map_err(Error::from)
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("primary", &self.primary.id())
            .field(
                "backends",
                &self.backends.iter().map(|b| b.id()).collect::<Vec<_>>(),
            )
            .field("data_key_cache", &self.cache.as_ref().map(|c| c.limits()))
            .finish()
    }
}

fn check_backend_id(backend: &dyn KekBackend) -> Result<(), ConfigError> {
    if valid_backend_id(backend.id().as_bytes()) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: "backend id".to_owned(),
            reason: "expected 1 to 32 bytes of a-z, 0-9 and -",
        })
    }
}

/// The associated data of suite 1 for `purpose`: magic, version, suite, purpose byte,
/// then the canonical context.
fn aad(purpose: u8, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + 3 + context.encoded_len());
    aad.extend_from_slice(MAGIC);
    aad.push(VERSION_1);
    aad.push(Suite::Aes256GcmHkdfSha256Commit.id());
    aad.push(purpose);
    context.encode_into(&mut aad);
    aad
}

/// The associated data of the payload.
pub(crate) fn payload_aad(context: &EncryptionContext) -> Vec<u8> {
    aad(PURPOSE_PAYLOAD, context)
}

/// The associated data a backend binds the wrapped data key to.
pub(crate) fn wrap_aad(context: &EncryptionContext) -> Vec<u8> {
    aad(PURPOSE_WRAP, context)
}

/// The length of suite 1's HKDF output: payload key, then commitment.
struct KeyAndCommitment;

impl KeyType for KeyAndCommitment {
    fn len(&self) -> usize {
        32 + COMMITMENT_LEN
    }
}

/// Derives the payload key and the key commitment from a data key with one
/// HKDF-SHA-256 expansion (RFC 5869). The data key is already a uniformly random 256-bit
/// key, so it serves as the pseudorandom key directly (RFC 5869, section 3.3): one
/// expansion instead of an extraction and two expansions, the largest cost of opening a
/// small value.
///
/// aws-lc-rs wipes every intermediate (the PRK copy, the HMAC contexts, the blocks of the
/// expansion); RustCrypto's `hkdf` is faster here but leaves the padded key block and the
/// first output block on the stack, so it is not used (see the crate README).
pub(crate) fn derive(dek: &DataKey) -> Result<(LessSafeKey, [u8; COMMITMENT_LEN]), Error> {
    let prk = Prk::new_less_safe(HKDF_SHA256, dek.expose_secret());
    let mut okm = Zeroizing::new([0u8; 32 + COMMITMENT_LEN]);
    prk.expand(&[HKDF_INFO], KeyAndCommitment)
        .and_then(|okm_out| okm_out.fill(okm.as_mut()))
        .map_err(|_| Error::Refused)?;
    let (enc, commit) = okm.split_at(32);
    let key = UnboundKey::new(&AES_256_GCM, enc).map_err(|_| Error::Refused)?;
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(commit);
    Ok((LessSafeKey::new(key), commitment))
}

/// Encrypts the payload under the key derived from `dek`.
pub(crate) fn seal_payload(
    dek: &DataKey,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<([u8; COMMITMENT_LEN], Vec<u8>), Error> {
    let (key, commitment) = derive(dek)?;
    let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
    ciphertext.extend_from_slice(plaintext);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(payload_aad(context)),
        &mut ciphertext,
    )
    .map_err(|_| BackendError::Random)?;
    Ok((commitment, ciphertext))
}

/// Derives the payload key, after checking in constant time that the value commits to
/// this data key.
fn committed_key(dek: &DataKey, sealed: &SealedView<'_>) -> Result<LessSafeKey, Error> {
    let (key, commitment) = derive(dek)?;
    if commitment_eq(&commitment, &sealed.commitment) {
        Ok(key)
    } else {
        Err(Error::Refused)
    }
}

/// Constant-time equality of two commitments, compared as four 64-bit words: every word
/// is always compared and the result is one [`subtle::Choice`], so the time does not
/// depend on where they differ (and it takes four optimisation barriers, not 32).
fn commitment_eq(a: &[u8; COMMITMENT_LEN], b: &[u8; COMMITMENT_LEN]) -> bool {
    let words = |c: &[u8; COMMITMENT_LEN]| -> [u64; COMMITMENT_LEN / 8] {
        let mut out = [0u64; COMMITMENT_LEN / 8];
        for (o, w) in out.iter_mut().zip(c.as_chunks::<8>().0) {
            *o = u64::from_le_bytes(*w);
        }
        out
    };
    bool::from(words(a).ct_eq(&words(b)))
}

/// Decrypts the payload under a committed key. The buffer is a [`Plaintext`] from the
/// start, so that it is wiped whether or not the tag verifies.
fn open_payload(
    key: &LessSafeKey,
    sealed: &SealedView<'_>,
    aad: &[u8],
) -> Result<Plaintext, Error> {
    let mut plaintext = Plaintext::from_vec(sealed.ciphertext.to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(sealed.nonce),
            Aad::from(aad),
            plaintext.buffer_mut(),
        )
        .map_err(|_| Error::Refused)?
        .len();
    plaintext.truncate(len);
    Ok(plaintext)
}
