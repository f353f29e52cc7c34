//! The encryption context: the (name, value) pairs that bind a sealed value to its row.

use std::collections::BTreeMap;

use crate::error::ContextError;

/// Most pairs one context may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// A set of (name, value) strings bound as associated data into both the payload AEAD
/// and the data-key wrap of a sealed value.
///
/// The context is not stored in the sealed value: whoever opens it must supply the same
/// context again, which is what binds a blob to its row. A typical context names the
/// owner, the venue and the field: `owner=42, venue=binance, field=api_secret`.
/// Opening with any other context fails.
///
/// The canonical encoding (see `FORMAT.md`, "Encryption context") sorts the pairs by the
/// bytes of their names and length-prefixes every part, so that no two different
/// contexts encode alike.
///
/// Context values are not secret: they appear in `Debug`, in errors never.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext {
    pairs: BTreeMap<String, String>,
}

impl EncryptionContext {
    /// An empty context. Prefer a context that names the row a value belongs to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair, builder style.
    ///
    /// # Errors
    /// [`ContextError`] when the name is empty, a name repeats, a name or value is too
    /// long, or the context would hold more than [`MAX_PAIRS`] pairs.
    pub fn with(mut self, name: &str, value: &str) -> Result<Self, ContextError> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// Adds a pair.
    ///
    /// # Errors
    /// As [`EncryptionContext::with`].
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), ContextError> {
        if name.is_empty() {
            return Err(ContextError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ContextError::NameTooLong);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(ContextError::ValueTooLong {
                name: name.to_owned(),
            });
        }
        if self.pairs.len() >= MAX_PAIRS {
            return Err(ContextError::TooManyPairs);
        }
        if self.pairs.contains_key(name) {
            return Err(ContextError::DuplicateName {
                name: name.to_owned(),
            });
        }
        self.pairs.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the context holds no pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The canonical encoding: a big-endian `u16` pair count, then for each pair in
    /// ascending byte order of names a `u16` name length, the name, a `u16` value length
    /// and the value.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self
            .pairs
            .iter()
            .map(|(n, v)| 4 + n.len() + v.len())
            .sum::<usize>()
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        // Lengths are bounded by the checks in `insert`, so the casts cannot truncate.
        out.extend_from_slice(&(self.pairs.len() as u16).to_be_bytes());
        for (name, value) in &self.pairs {
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_is_sorted_and_length_prefixed() {
        let a = EncryptionContext::new()
            .with("venue", "binance")
            .unwrap()
            .with("owner", "42")
            .unwrap();
        let b = EncryptionContext::new()
            .with("owner", "42")
            .unwrap()
            .with("venue", "binance")
            .unwrap();
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        assert_eq!(
            a.canonical_bytes(),
            b"\x00\x02\x00\x05owner\x00\x0242\x00\x05venue\x00\x07binance".to_vec()
        );
        assert_eq!(a.canonical_bytes().len(), a.encoded_len());
    }

    #[test]
    fn no_two_contexts_encode_alike_across_a_boundary() {
        let a = EncryptionContext::new().with("ab", "c").unwrap();
        let b = EncryptionContext::new().with("a", "bc").unwrap();
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn bad_pairs_are_refused_with_typed_errors() {
        assert_eq!(
            EncryptionContext::new().with("", "x"),
            Err(ContextError::EmptyName)
        );
        let long = "n".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            EncryptionContext::new().with(&long, "x"),
            Err(ContextError::NameTooLong)
        );
        let dup = EncryptionContext::new()
            .with("a", "1")
            .unwrap()
            .with("a", "2");
        assert_eq!(dup, Err(ContextError::DuplicateName { name: "a".into() }));
        let mut ctx = EncryptionContext::new();
        for i in 0..MAX_PAIRS {
            ctx.insert(&format!("k{i}"), "v").unwrap();
        }
        assert_eq!(ctx.insert("one-more", "v"), Err(ContextError::TooManyPairs));
    }
}
