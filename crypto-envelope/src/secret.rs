//! Secret types: the data key and the opened plaintext. Both wipe themselves on drop and
//! print nothing of their bytes.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::BackendError;

/// Length of a data key, in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// A 256-bit data key (DEK): fresh and random for every sealed value.
///
/// Backends see it when they wrap it and give one back when they unwrap. It is wiped on
/// drop and its `Debug` prints nothing of it.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// A fresh key from the operating system's random generator.
    ///
    /// # Errors
    /// [`BackendError::Random`] when the generator fails.
    pub fn generate() -> Result<Self, BackendError> {
        let mut key = Self([0; DATA_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key.0).map_err(|_| BackendError::Random)?;
        Ok(key)
    }

    /// A data key from unwrapped bytes, for backends. The caller's buffer should be a
    /// zeroizing one; the bytes are copied.
    ///
    /// # Errors
    /// [`BackendError::Refused`] when `bytes` is not exactly [`DATA_KEY_LEN`] long: an
    /// unwrap that yields anything else did not yield our key.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BackendError> {
        let array: [u8; DATA_KEY_LEN] = bytes.try_into().map_err(|_| BackendError::Refused)?;
        Ok(Self(array))
    }

    /// The key's bytes, for a backend to wrap.
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").finish_non_exhaustive()
    }
}

/// An opened secret. Wiped on drop; `Debug` prints nothing of it; the bytes come out only
/// through [`Plaintext::expose_secret`].
///
/// The wipe covers the whole allocation (spare capacity included) with a vectorised
/// fill followed by [`zeroize::optimization_barrier`], the zeroize crate's sanctioned
/// guard against the compiler dropping the writes; a byte-at-a-time volatile wipe would
/// halve the throughput of opening a large value.
#[derive(Clone)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub(crate) fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    /// Shortens the value; the cut bytes stay in the allocation and are wiped on drop.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8, when it is.
    ///
    /// # Errors
    /// [`std::str::Utf8Error`] when the bytes are not UTF-8 (the error carries no bytes).
    pub fn expose_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Plaintext {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.fill(0);
        let capacity = self.0.capacity();
        // Writes zeros over the spare capacity too; never reallocates.
        self.0.resize(capacity, 0);
        zeroize::optimization_barrier(self.0.as_slice());
    }
}

impl ZeroizeOnDrop for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plaintext").finish_non_exhaustive()
    }
}
