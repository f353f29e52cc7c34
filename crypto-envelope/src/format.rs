//! The sealed-value format, version 1: binary and text forms. `FORMAT.md` is the
//! specification; this module is its only reader and writer.

use crate::backend::KeyRef;
use crate::error::Error;

/// The three bytes every sealed value starts with.
pub const MAGIC: &[u8; 3] = b"SRE";
/// The format version this build writes.
pub const VERSION_1: u8 = 1;
/// The prefix of the text form.
pub const TEXT_PREFIX: &str = "sre1:";
/// Nonce length of suite 1.
pub const NONCE_LEN: usize = 12;
/// Commitment length of suite 1.
pub const COMMITMENT_LEN: usize = 32;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Longest backend id.
pub const MAX_BACKEND_ID_LEN: usize = 32;
/// Longest wrapped data key.
pub const MAX_WRAPPED_LEN: usize = 4096;
/// Longest ciphertext (with tag): 64 MiB.
pub const MAX_CIPHERTEXT_LEN: usize = 64 << 20;

/// A cipher suite: how the payload is encrypted and committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Suite {
    /// Suite 1: AES-256-GCM payload, HKDF-SHA-256 derived encryption key and key
    /// commitment, 96-bit random nonce.
    Aes256GcmHkdfSha256Commit,
}

impl Suite {
    /// The byte that names the suite in the format.
    pub fn id(self) -> u8 {
        match self {
            Self::Aes256GcmHkdfSha256Commit => 1,
        }
    }

    fn from_id(id: u8) -> Result<Self, Error> {
        match id {
            1 => Ok(Self::Aes256GcmHkdfSha256Commit),
            suite => Err(Error::UnsupportedSuite { suite }),
        }
    }
}

/// A parsed sealed value. Nothing in it is secret: the data key inside is wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub(crate) suite: Suite,
    pub(crate) backend: String,
    pub(crate) key: KeyRef<'static>,
    pub(crate) wrapped_key: Vec<u8>,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) commitment: [u8; COMMITMENT_LEN],
    pub(crate) ciphertext: Vec<u8>,
}

impl Sealed {
    /// The format version.
    pub fn version(&self) -> u8 {
        VERSION_1
    }

    /// The cipher suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The id of the backend that wrapped the data key.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The key that wrapped the data key.
    pub fn key(&self) -> &KeyRef<'static> {
        &self.key
    }

    /// The payload ciphertext with its tag; unchanged by re-wrapping.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let key_id = self.key.id.as_bytes();
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 2
                + 1
                + self.backend.len()
                + 1
                + key_id.len()
                + 4
                + 2
                + self.wrapped_key.len()
                + NONCE_LEN
                + COMMITMENT_LEN
                + 4
                + self.ciphertext.len(),
        );
        out.extend_from_slice(MAGIC);
        out.push(VERSION_1);
        out.push(self.suite.id());
        // Lengths are bounded when a `Sealed` is built or parsed; the casts cannot
        // truncate.
        out.push(self.backend.len() as u8);
        out.extend_from_slice(self.backend.as_bytes());
        out.push(key_id.len() as u8);
        out.extend_from_slice(key_id);
        out.extend_from_slice(&self.key.version.to_be_bytes());
        out.extend_from_slice(&(self.wrapped_key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// The text form, for TEXT columns: `sre1:` and the binary form in unpadded
    /// base64url.
    pub fn to_text(&self) -> String {
        use base64ct::Encoding;
        let mut text = String::from(TEXT_PREFIX);
        text.push_str(&base64ct::Base64UrlUnpadded::encode_string(
            &self.to_bytes(),
        ));
        text
    }

    /// Parses the binary form. Any trailing byte, short field or out-of-range length is
    /// refused with [`Error::Malformed`] naming the field.
    ///
    /// # Errors
    /// [`Error::Malformed`], [`Error::UnsupportedVersion`], [`Error::UnsupportedSuite`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let view = SealedView::parse(bytes)?;
        Ok(Self {
            suite: view.suite,
            backend: view.backend.to_owned(),
            key: view.key.into_owned(),
            wrapped_key: view.wrapped_key.to_vec(),
            nonce: view.nonce,
            commitment: view.commitment,
            ciphertext: view.ciphertext.to_vec(),
        })
    }

    pub(crate) fn view(&self) -> SealedView<'_> {
        SealedView {
            suite: self.suite,
            backend: &self.backend,
            key: self.key.borrowed(),
            wrapped_key: &self.wrapped_key,
            nonce: self.nonce,
            commitment: self.commitment,
            ciphertext: &self.ciphertext,
        }
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// [`Error::Malformed`] with field `text prefix` or `text encoding`, then as
    /// [`Sealed::from_bytes`].
    pub fn from_text(text: &str) -> Result<Self, Error> {
        Self::from_bytes(&decode_text(text)?)
    }
}

/// The binary form inside a text form (not yet parsed).
pub(crate) fn decode_text(text: &str) -> Result<Vec<u8>, Error> {
    use base64ct::Encoding;
    let body = text.strip_prefix(TEXT_PREFIX).ok_or(Error::Malformed {
        field: "text prefix",
    })?;
    if body.len() > (MAX_CIPHERTEXT_LEN + 8192) / 3 * 4 + 4 {
        return Err(Error::Malformed {
            field: "text length",
        });
    }
    // base64ct refuses non-canonical text (a last character with unused bits set), so
    // each value has one text form; a fail vector holds it to that.
    base64ct::Base64UrlUnpadded::decode_vec(body).map_err(|_| Error::Malformed {
        field: "text encoding",
    })
}

/// A sealed value parsed in place: what opening reads, without copying the payload.
pub(crate) struct SealedView<'a> {
    pub(crate) suite: Suite,
    pub(crate) backend: &'a str,
    pub(crate) key: KeyRef<'a>,
    pub(crate) wrapped_key: &'a [u8],
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) commitment: [u8; COMMITMENT_LEN],
    pub(crate) ciphertext: &'a [u8],
}

impl<'a> SealedView<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(Error::Malformed { field: "magic" });
        }
        let version = r.u8("version")?;
        if version != VERSION_1 {
            return Err(Error::UnsupportedVersion { version });
        }
        let suite = Suite::from_id(r.u8("suite")?)?;
        let backend_len = usize::from(r.u8("backend id length")?);
        let backend = r.take(backend_len, "backend id")?;
        if !valid_backend_id(backend) {
            return Err(Error::Malformed {
                field: "backend id",
            });
        }
        let key_id_len = usize::from(r.u8("key id length")?);
        let key_id = r.take(key_id_len, "key id")?;
        if !valid_key_id(key_id) {
            return Err(Error::Malformed { field: "key id" });
        }
        let key_version = r.u32("key version")?;
        let wrapped_len = usize::from(r.u16("wrapped key length")?);
        if wrapped_len == 0 || wrapped_len > MAX_WRAPPED_LEN {
            return Err(Error::Malformed {
                field: "wrapped key length",
            });
        }
        let wrapped_key = r.take(wrapped_len, "wrapped key")?;
        let nonce = r.array::<NONCE_LEN>("nonce")?;
        let commitment = r.array::<COMMITMENT_LEN>("commitment")?;
        let ct_len = r.u32("ciphertext length")? as usize;
        if !(TAG_LEN..=MAX_CIPHERTEXT_LEN).contains(&ct_len) {
            return Err(Error::Malformed {
                field: "ciphertext length",
            });
        }
        let ciphertext = r.take(ct_len, "ciphertext")?;
        if !r.0.is_empty() {
            return Err(Error::Malformed {
                field: "trailing bytes",
            });
        }
        // Both were checked to be ASCII above, so neither conversion can fail.
        let ascii = |b| std::str::from_utf8(b).map_err(|_| Error::Malformed { field: "ascii" });
        Ok(SealedView {
            suite,
            backend: ascii(backend)?,
            key: KeyRef::new(ascii(key_id)?, key_version),
            wrapped_key,
            nonce,
            commitment,
            ciphertext,
        })
    }
}

/// Whether `id` is a well-formed backend id: 1 to 32 bytes of `a-z`, `0-9`, `-`.
pub fn valid_backend_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_BACKEND_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Whether `id` is a well-formed key id: 1 to 255 bytes of visible ASCII.
pub fn valid_key_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 255 && id.iter().all(|b| b.is_ascii_graphic())
}

/// A cursor over untrusted bytes that never panics.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Malformed { field });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}
