//! The PKCS#11 backend (`pkcs11`): the key-encryption key is a non-extractable AES-256
//! key inside a hardware security module (or any PKCS#11 token, SoftHSM2 in the tests),
//! and every data key is wrapped and unwrapped **inside the token**.
//!
//! ```no_run
//! use crypto_envelope::{Envelope, Pkcs11Kek};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // STRONGROOM_PKCS11_MODULE, _TOKEN_LABEL, _PIN (or _PIN_FILE), _KEY_LABEL
//! let kek = Pkcs11Kek::from_env()?;
//! kek.check().await?; // load the module, log in, find the key: fail at start-up
//! let envelope = Envelope::new(kek)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Shapes
//!
//! - **Key id**: the KEK's `CKA_LABEL`, 1 to 255 bytes of visible ASCII (`!` to `~`),
//!   such as `strongroom-kek-1`. **Key version**: always [`KEY_VERSION`] (1). PKCS#11
//!   has no key versions: a new key gets a new label (`strongroom-kek-2`), and rotation
//!   is a re-wrap from the old label to the new one (configure the old label with
//!   [`Pkcs11KekBuilder::decrypt_only_label`], then run
//!   [`Rewrapper`](crate::Rewrapper)).
//! - **Wrapped key**: `iv (12) || ciphertext (32) || tag (16)`, [`WRAPPED_LEN`] = 60
//!   bytes, where `ciphertext || tag = CKM_AES_GCM-Encrypt(KEK, iv, aad, DEK)` with a
//!   128-bit tag (PKCS#11 v2.40 section 2.12.3 / v3.0 section 2.11.4 `CKM_AES_GCM` with
//!   `CK_GCM_PARAMS`; NIST SP 800-38D). `aad` is the envelope's wrap AAD, which
//!   encodes the format version, the suite and the encryption context (FORMAT.md,
//!   section 3). The IV is 12 fresh bytes from the system generator (aws-lc-rs) for
//!   every wrap; if a token overwrites the IV it was given (some FIPS-mode tokens
//!   generate their own), the IV the token reports back is the one written.
//! - **The KEK**: a token object of class `CKO_SECRET_KEY`, type `CKK_AES`,
//!   `CKA_VALUE_LEN` 32, `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
//!   `CKA_EXTRACTABLE` false, `CKA_ENCRYPT` and `CKA_DECRYPT` true and nothing else
//!   (no wrap, unwrap, sign, verify or derive). [`Pkcs11Kek::generate_key`] makes one
//!   (it refuses a label that is already taken); a key found by label that is
//!   extractable, not sensitive or not AES-256 is refused ([`BackendError::Misbehaved`]).
//!
//! # Why AES-GCM in the token, not `CKM_AES_KEY_WRAP_PAD`
//!
//! The envelope needs the wrap bound to the encryption context. `CKM_AES_KEY_WRAP_PAD`
//! (RFC 5649) takes no associated data, so the context would need a second binding
//! beside it (a MAC under another token key, or a context-derived key), which is more
//! token objects, more calls and a construction of our own. `CKM_AES_GCM` is an AEAD:
//! the context goes in as GCM's AAD, and the token checks the tag on unwrap, so a wrap
//! moved to another row (another context) or altered in any byte fails inside the token
//! and nothing of the DEK leaves it. The DEK is treated as data (`C_Encrypt` /
//! `C_Decrypt`), not as a token key object: the envelope derives its payload key from
//! the DEK outside the token in any case (FORMAT.md, suite 1), so a token key object
//! would gain nothing. The KEK itself never leaves the token.
//!
//! GCM with random 96-bit IVs is limited to 2^32 wraps per key (SP 800-38D, section
//! 8.3): rotate the KEK (a new label) well before that.
//!
//! # Errors
//!
//! | what happens | error |
//! | --- | --- |
//! | the wrapped key is not 60 bytes | [`BackendError::Refused`] (the token is not asked) |
//! | the token refuses the decryption (`CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE`: a wrong context, a tampered wrap, a wrap made under another key with the same label) | [`BackendError::Refused`] |
//! | the decryption fails with the ambiguous `CKR_GENERAL_ERROR` or `CKR_FUNCTION_FAILED`, and the token then passes a health probe | [`BackendError::Refused`] |
//! | the value names a label not configured, or a version other than 1 | [`BackendError::KeyNotFound`] |
//! | a configured label that the token does not hold | [`BackendError::KeyNotFound`] |
//! | the module does not load, the token is absent, the session is lost (`CKR_DEVICE_ERROR`, `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`, `CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`, ...), a call outlives the timeout, the login is refused | [`BackendError::Unavailable`] |
//! | two keys share the label, the key is extractable or not AES-256 | [`BackendError::Misbehaved`] |
//!
//! Any other token error is [`BackendError::Unavailable`] too (fail closed: never a
//! success, never taken for a refusal of the value). A session that failed with
//! anything but a refusal is closed rather than returned to the pool.
//!
//! **The health probe.** SoftHSM2 before 2.7 (Debian 12 ships 2.6.1) answers a GCM tag
//! mismatch with `CKR_GENERAL_ERROR`, which PKCS#11 also uses for real faults. When
//! `C_Decrypt` fails that way, the backend encrypts and decrypts a random block under
//! the same key on the same session: if the token gives it back, the token is healthy
//! and the value is refused; otherwise the failure is an outage. A forged value
//! therefore costs three token calls on such a token instead of one. A fault that
//! clears in the instant between the failed call and the probe would be reported as a
//! refusal; a later open of the same value succeeds.
//!
//! # Sessions, timeouts, recovery
//!
//! Up to [`DEFAULT_POOL_SIZE`] (configurable) logged-in user sessions are kept open and
//! reused; they are opened on demand. PKCS#11 calls block, so each runs on Tokio's
//! blocking pool (`spawn_blocking`); the caller waits at most the timeout
//! ([`DEFAULT_TIMEOUT`], 5 s) for a free session and the call together, then gets
//! `Unavailable`. A call that timed out keeps its session until the token answers (the
//! pool never runs more calls than it has sessions, so a hung token holds at most
//! `pool_size` blocking threads). When a call fails because the session, login, token
//! or device went away, that session and the idle ones are closed and the call is
//! retried once on a freshly opened and logged-in session (the slot is found again by
//! token label); later calls keep opening fresh sessions, so the backend recovers when
//! the token returns, without a restart.
//!
//! SoftHSM2 itself does not see a token come back within a process that saw it go: a
//! token whose directory could not be read stays invalid in that process until
//! `C_Finalize` (so in practice until a restart), and two processes writing one
//! SoftHSM2 token can trip this. Hardware tokens report `CKR_DEVICE_REMOVED` or
//! `CKR_TOKEN_NOT_PRESENT` and are found again by the next session. This backend never
//! calls `C_Finalize`: the module is initialised once per process and shared by every
//! backend that names the same module path.
//!
//! This backend needs a **Tokio runtime with timers enabled** (`enable_all`, as
//! `#[tokio::main]` gives): outside any Tokio runtime every call is `Unavailable`.
//!
//! **Login.** PKCS#11 logs in an *application*, not a session: all sessions of the
//! process on one token share the login. A second backend in the same process on the
//! same token is therefore logged in by the first one's sessions whatever its own PIN
//! (the token answers `CKR_USER_ALREADY_LOGGED_IN`). A PIN the token refuses
//! (`CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`, ...) is never tried again by the same backend:
//! every later call is `Unavailable` until the configuration is fixed and the backend
//! rebuilt, so that a wrong PIN does not lock the token by repeated attempts.
//!
//! The PIN is held in a [`secrecy::SecretString`](cryptoki::types::AuthPin) (wiped on
//! drop) and never appears in `Debug` output, logs or errors.
//!
//! # What it protects against
//!
//! A database dump, a backup or a stolen disk: without the token the wrapped keys are
//! useless. A compromised host: an attacker running code on the host (with the PIN)
//! can use the token to unwrap while there, but cannot take the KEK away; once the host
//! is cleaned up (and the PIN changed) the stolen wrapped keys are useless again.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use super::{KekBackend, KeyRef, Wrapped};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError, ConnectError};
use crate::secret::{DATA_KEY_LEN, DataKey};

/// The backend id this backend writes into sealed values.
pub const BACKEND_ID: &str = "pkcs11";
/// The key version of every value this backend wraps (PKCS#11 keys have no versions).
pub const KEY_VERSION: u32 = 1;
/// Length of the GCM IV at the start of a wrapped key.
pub const IV_LEN: usize = 12;
/// Length of the GCM tag at the end of a wrapped key.
pub const TAG_LEN: usize = 16;
/// Length of a wrapped key: IV, encrypted data key and tag.
pub const WRAPPED_LEN: usize = IV_LEN + DATA_KEY_LEN + TAG_LEN;
/// Sessions kept open by default.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// The most sessions a backend may keep.
pub const MAX_POOL_SIZE: usize = 64;
/// How long a caller waits for a session and one token call, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PKCS#11 module (shared library) to load, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
pub const ENV_MODULE: &str = "STRONGROOM_PKCS11_MODULE";
/// The label of the token that holds the KEK.
pub const ENV_TOKEN_LABEL: &str = "STRONGROOM_PKCS11_TOKEN_LABEL";
/// The user PIN.
pub const ENV_PIN: &str = "STRONGROOM_PKCS11_PIN";
/// A file holding the user PIN (one trailing newline is ignored), instead of
/// [`ENV_PIN`].
pub const ENV_PIN_FILE: &str = "STRONGROOM_PKCS11_PIN_FILE";
/// The label of the KEK that wraps new data keys.
pub const ENV_KEY_LABEL: &str = "STRONGROOM_PKCS11_KEY_LABEL";

const GCM_TAG_BITS: usize = TAG_LEN * 8;
const MAX_LABEL_LEN: usize = 255;
const MAX_TOKEN_LABEL_LEN: usize = 32;

/// A failure of [`Pkcs11Kek::generate_key`]. Names settings and PKCS#11 return codes,
/// never the PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// A label is not 1 to 255 bytes of visible ASCII.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key with this label already exists in the token; nothing was generated.
    #[error("the token already holds an object labelled {label:?}")]
    KeyExists {
        /// The label asked for.
        label: String,
    },
    /// The backend failed (the token is unavailable, the login was refused, ...).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The security-relevant attributes of a KEK, as the token reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyAttributes {
    /// `CKA_SENSITIVE`: the key value cannot be read out in plaintext.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: the key has always been sensitive.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: the key has never been extractable.
    pub never_extractable: bool,
    /// `CKA_TOKEN`: the key persists in the token.
    pub token: bool,
    /// `CKA_PRIVATE`: the key is usable only after login.
    pub private: bool,
    /// `CKA_VALUE_LEN`: the key length in bytes.
    pub value_len: usize,
}

/// Where the PIN comes from.
enum PinSource {
    Value(Zeroizing<String>),
    File(PathBuf),
}

/// Configuration of a [`Pkcs11Kek`]. Its `Debug` never shows the PIN.
pub struct Pkcs11KekBuilder {
    module: Option<(PathBuf, &'static str)>,
    token_label: Option<(String, &'static str)>,
    pin: Option<(PinSource, &'static str)>,
    key_label: Option<(String, &'static str)>,
    decrypt_only: Vec<String>,
    pool_size: usize,
    timeout: Duration,
    read_write: bool,
}

impl Default for Pkcs11KekBuilder {
    fn default() -> Self {
        Self {
            module: None,
            token_label: None,
            pin: None,
            key_label: None,
            decrypt_only: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            read_write: false,
        }
    }
}

impl fmt::Debug for Pkcs11KekBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KekBuilder")
            .field("module", &self.module.as_ref().map(|(m, _)| m))
            .field("token_label", &self.token_label.as_ref().map(|(t, _)| t))
            .field("pin_set", &self.pin.is_some())
            .field("key_label", &self.key_label.as_ref().map(|(k, _)| k))
            .field("decrypt_only", &self.decrypt_only)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("read_write", &self.read_write)
            .finish_non_exhaustive()
    }
}

impl Pkcs11KekBuilder {
    /// A builder from the process environment: [`ENV_MODULE`], [`ENV_TOKEN_LABEL`],
    /// [`ENV_PIN`] or [`ENV_PIN_FILE`], and [`ENV_KEY_LABEL`]. More settings
    /// (decrypt-only labels, pool size) can be added before [`Self::build`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// As [`Self::from_env`], reading settings through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Missing {
                    field: name.to_owned(),
                })
        };
        let module = required(ENV_MODULE)?;
        let token_label = required(ENV_TOKEN_LABEL)?;
        let key_label = required(ENV_KEY_LABEL)?;
        let pin = lookup(ENV_PIN).map(Zeroizing::new);
        let pin_file = lookup(ENV_PIN_FILE);
        let pin = match (pin, pin_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: ENV_PIN_FILE.to_owned(),
                    reason: "set either STRONGROOM_PKCS11_PIN or STRONGROOM_PKCS11_PIN_FILE, not both",
                });
            }
            (Some(pin), None) => (PinSource::Value(pin), ENV_PIN),
            (None, Some(file)) => (PinSource::File(PathBuf::from(file)), ENV_PIN_FILE),
            (None, None) => {
                return Err(ConfigError::Missing {
                    field: ENV_PIN.to_owned(),
                });
            }
        };
        Ok(Self {
            module: Some((PathBuf::from(module), ENV_MODULE)),
            token_label: Some((token_label, ENV_TOKEN_LABEL)),
            pin: Some(pin),
            key_label: Some((key_label, ENV_KEY_LABEL)),
            ..Self::default()
        })
    }

    /// The PKCS#11 module (shared library) to load.
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = Some((path.into(), "module"));
        self
    }

    /// The label of the token that holds the keys (the slot is found by it).
    pub fn token_label(mut self, label: impl Into<String>) -> Self {
        self.token_label = Some((label.into(), "token_label"));
        self
    }

    /// The user PIN.
    pub fn pin(mut self, pin: impl Into<String>) -> Self {
        self.pin = Some((PinSource::Value(Zeroizing::new(pin.into())), "pin"));
        self
    }

    /// A file holding the user PIN, read by [`Self::build`]; one trailing newline (`\n`
    /// or `\r\n`) is ignored.
    pub fn pin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pin = Some((PinSource::File(path.into()), "pin_file"));
        self
    }

    /// The label of the KEK that wraps new data keys (the primary key).
    pub fn key_label(mut self, label: impl Into<String>) -> Self {
        self.key_label = Some((label.into(), "key_label"));
        self
    }

    /// Adds the label of an older KEK that still unwraps, for rotation inside the token.
    pub fn decrypt_only_label(mut self, label: impl Into<String>) -> Self {
        self.decrypt_only.push(label.into());
        self
    }

    /// How many sessions to keep open (1 to [`MAX_POOL_SIZE`]; default
    /// [`DEFAULT_POOL_SIZE`]). At most this many token calls run at once.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// How long a caller waits for a session and one token call (default
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens read/write sessions instead of read-only ones (wrapping and unwrapping
    /// need only read-only sessions; some tokens require R/W).
    pub fn read_write(mut self, read_write: bool) -> Self {
        self.read_write = read_write;
        self
    }

    /// Validates the settings and reads the PIN file. Nothing is loaded or opened yet:
    /// the first call (or [`Pkcs11Kek::check`]) does.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault, never a PIN.
    pub fn build(self) -> Result<Pkcs11Kek, ConfigError> {
        let (module, _) = self.module.ok_or_else(|| missing("module"))?;
        if module.as_os_str().is_empty() {
            return Err(missing("module"));
        }
        let (token_label, token_field) = self.token_label.ok_or_else(|| missing("token_label"))?;
        if token_label.is_empty()
            || token_label.len() > MAX_TOKEN_LABEL_LEN
            || token_label.ends_with(' ')
        {
            return Err(ConfigError::Invalid {
                field: token_field.to_owned(),
                reason: "a token label is 1 to 32 bytes and does not end with a space",
            });
        }
        let (pin, pin_field) = self.pin.ok_or_else(|| missing("pin"))?;
        let pin = match pin {
            PinSource::Value(pin) => pin,
            PinSource::File(path) => read_pin_file(&path, pin_field)?,
        };
        if pin.is_empty() || pin.contains('\0') {
            return Err(ConfigError::Invalid {
                field: pin_field.to_owned(),
                reason: "the PIN is empty or holds a NUL character",
            });
        }
        let pin = AuthPin::from(pin.as_str());
        let (key_label, key_field) = self.key_label.ok_or_else(|| missing("key_label"))?;
        check_label(key_field, &key_label)?;
        let mut labels = vec![key_label];
        for label in self.decrypt_only {
            check_label("decrypt_only_label", &label)?;
            if labels.contains(&label) {
                return Err(ConfigError::Invalid {
                    field: "decrypt_only_label".to_owned(),
                    reason: "a label is configured twice",
                });
            }
            labels.push(label);
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(ConfigError::BadNumber {
                field: "pool_size".to_owned(),
                reason: "must be 1 to 64",
            });
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid {
                field: "timeout".to_owned(),
                reason: "must be more than zero",
            });
        }
        let primary = KeyRef::new(labels[0].clone(), KEY_VERSION);
        Ok(Pkcs11Kek {
            shared: Arc::new(Shared {
                module,
                token_label,
                pin,
                labels,
                read_write: self.read_write,
                timeout: self.timeout,
                pool_size: self.pool_size,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(self.pool_size)),
                login_refused: Mutex::new(None),
            }),
            primary,
        })
    }

    /// [`Self::build`], then [`Pkcs11Kek::check`]: fails at start-up rather than at the
    /// first open.
    ///
    /// # Errors
    /// [`ConnectError::Config`] as [`Self::build`]; [`ConnectError::Backend`] as
    /// [`Pkcs11Kek::check`].
    pub async fn connect(self) -> Result<Pkcs11Kek, ConnectError> {
        let kek = self.build()?;
        kek.check().await?;
        Ok(kek)
    }
}

fn missing(field: &str) -> ConfigError {
    ConfigError::Missing {
        field: field.to_owned(),
    }
}

fn check_label(field: &str, label: &str) -> Result<(), ConfigError> {
    if label.is_empty()
        || label.len() > MAX_LABEL_LEN
        || !label.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "a key label is 1 to 255 bytes of visible ASCII",
        });
    }
    Ok(())
}

fn read_pin_file(path: &Path, field: &str) -> Result<Zeroizing<String>, ConfigError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|_| ConfigError::Invalid {
        field: field.to_owned(),
        reason: "the PIN file cannot be read",
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| ConfigError::Invalid {
        field: field.to_owned(),
        reason: "the PIN file is not UTF-8",
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(Zeroizing::new(text.to_owned()))
}

/// A session with the KEK handles it has looked up.
struct PooledSession {
    session: Session,
    keys: HashMap<String, ObjectHandle>,
}

struct Shared {
    module: PathBuf,
    token_label: String,
    pin: AuthPin,
    /// The primary label first, then the decrypt-only ones.
    labels: Vec<String>,
    read_write: bool,
    timeout: Duration,
    pool_size: usize,
    idle: Mutex<Vec<PooledSession>>,
    permits: Arc<Semaphore>,
    /// Set when the token refused the PIN: never tried again.
    login_refused: Mutex<Option<String>>,
}

/// Why one attempt on one session failed.
enum Fail {
    /// The token refused the decryption: the value does not open.
    Refused,
    /// The token does not hold the key.
    KeyNotFound(String),
    /// The session, token or device went away: drop the session, retry once.
    Lost(String),
    /// Anything else: drop the session, no retry.
    Fatal(String),
    /// The token holds something it should not (two keys under a label, an
    /// extractable key).
    Misbehaved(&'static str),
    /// A label is already taken (key generation).
    Exists(String),
}

fn describe(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, function) => format!("C_{function:?} failed: {}", rv_name(*rv)),
        CkError::LibraryLoading(_) => "the PKCS#11 module could not be loaded".to_owned(),
        other => format!("PKCS#11 binding error: {}", binding_error_kind(other)),
    }
}

fn binding_error_kind(err: &CkError) -> &'static str {
    match err {
        CkError::NotSupported => "not supported",
        CkError::NullFunctionPointer => "the module lacks a function",
        CkError::MissingSymbol(_) => "the module lacks a symbol",
        CkError::PinNotSet => "no PIN",
        _ => "conversion failed",
    }
}

/// The `CKR_` name of a return value (the binding's own text is a paragraph).
fn rv_name(rv: RvError) -> String {
    let name = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Classifies a failure of a call on an open session.
fn classify(err: &CkError) -> Fail {
    match err {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => Fail::Refused,
            RvError::DeviceError
            | RvError::DeviceRemoved
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid
            | RvError::UserNotLoggedIn
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
            | RvError::OperationActive
            | RvError::CryptokiNotInitialized
            | RvError::GeneralError
            | RvError::FunctionFailed => Fail::Lost(describe(err)),
            _ => Fail::Fatal(describe(err)),
        },
        CkError::LibraryLoading(_) => Fail::Lost(describe(err)),
        _ => Fail::Fatal(describe(err)),
    }
}

/// Process-wide PKCS#11 contexts by module path. `C_Initialize` is per process and per
/// module, and a context is never finalised: several backends (or a rebuilt one) share
/// it.
fn context(module: &Path) -> Result<Pkcs11, Fail> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| Fail::Lost(describe(&e)))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Fail::Lost(describe(&e))),
    }
    contexts.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Shared {
    fn login_refused(&self) -> Option<String> {
        self.login_refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn find_slot(&self, ctx: &Pkcs11) -> Result<Slot, Fail> {
        let slots = ctx.get_slots_with_token().map_err(|e| classify(&e))?;
        let mut found = None;
        for slot in slots {
            let info = match ctx.get_token_info(slot) {
                Ok(info) => info,
                // A token that went away between the two calls.
                Err(_) => continue,
            };
            if info.label() == self.token_label {
                if found.is_some() {
                    return Err(Fail::Misbehaved("two tokens have the configured label"));
                }
                found = Some(slot);
            }
        }
        found.ok_or_else(|| {
            Fail::Lost(format!(
                "no token labelled {:?} is present",
                self.token_label
            ))
        })
    }

    /// Opens and logs in a session of the configured kind.
    fn open_session(&self, read_write: bool) -> Result<Session, Fail> {
        if let Some(reason) = self.login_refused() {
            return Err(Fail::Fatal(reason));
        }
        let ctx = context(&self.module)?;
        let slot = self.find_slot(&ctx)?;
        let session = if read_write {
            ctx.open_rw_session(slot)
        } else {
            ctx.open_ro_session(slot)
        }
        .map_err(|e| classify(&e))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
                | RvError::UserPinNotInitialized),
                _,
            )) => {
                let reason = format!(
                    "the token refused the login ({}); fix the PIN and restart: it is not tried again",
                    rv_name(rv)
                );
                *self
                    .login_refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
                Err(Fail::Fatal(reason))
            }
            Err(e) => Err(classify(&e)),
        }
    }

    fn take_session(&self, fresh: bool) -> Result<PooledSession, Fail> {
        let idle = if fresh {
            // After a lost session the idle ones are suspect too (a token reset, a
            // logout): close them all and start over.
            let stale =
                std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
            drop(stale);
            None
        } else {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
        };
        match idle {
            Some(session) => Ok(session),
            None => Ok(PooledSession {
                session: self.open_session(self.read_write)?,
                keys: HashMap::new(),
            }),
        }
    }

    fn give_back(&self, session: PooledSession) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.pool_size {
            idle.push(session);
        }
    }

    /// Runs `op` on a pooled session; retries once on a fresh session when the session
    /// was lost.
    fn with_session<T>(
        &self,
        op: &dyn Fn(&mut PooledSession) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.take_session(attempt > 1).and_then(|mut session| {
                let result = op(&mut session);
                match &result {
                    Ok(_) | Err(Fail::Refused | Fail::KeyNotFound(_) | Fail::Exists(_)) => {
                        self.give_back(session);
                    }
                    // Dropping closes the session.
                    Err(_) => drop(session),
                }
                result
            });
            match result {
                Err(Fail::Lost(_)) if attempt < 2 => continue,
                other => return other,
            }
        }
    }

    /// Finds a KEK by label on this session (cached per session) and checks that it is
    /// what this backend promises: sensitive, not extractable, AES-256.
    fn find_key(&self, session: &mut PooledSession, label: &str) -> Result<ObjectHandle, Fail> {
        if let Some(handle) = session.keys.get(label) {
            return Ok(*handle);
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let found = session
            .session
            .find_objects(&template)
            .map_err(|e| classify(&e))?;
        let handle = match found.as_slice() {
            [] => return Err(Fail::KeyNotFound(label.to_owned())),
            [one] => *one,
            _ => return Err(Fail::Misbehaved("two keys in the token share the label")),
        };
        let attributes = read_attributes(&session.session, handle)?;
        if !attributes.sensitive || attributes.extractable || attributes.value_len != 32 {
            return Err(Fail::Misbehaved(
                "the key is extractable, not sensitive or not AES-256",
            ));
        }
        session.keys.insert(label.to_owned(), handle);
        Ok(handle)
    }
}

fn read_attributes(session: &Session, handle: ObjectHandle) -> Result<KeyAttributes, Fail> {
    let values = session
        .get_attributes(
            handle,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::ValueLen,
            ],
        )
        .map_err(|e| classify(&e))?;
    // An attribute the token does not report is taken at its least safe value.
    let mut out = KeyAttributes {
        extractable: true,
        ..KeyAttributes::default()
    };
    for value in values {
        match value {
            Attribute::Sensitive(v) => out.sensitive = v,
            Attribute::Extractable(v) => out.extractable = v,
            Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
            Attribute::NeverExtractable(v) => out.never_extractable = v,
            Attribute::Token(v) => out.token = v,
            Attribute::Private(v) => out.private = v,
            Attribute::ValueLen(v) => out.value_len = usize::from(v),
            _ => {}
        }
    }
    Ok(out)
}

/// Whether the token, on this session, still encrypts and decrypts a random block under
/// `key` and gets it back: tells a refusal from a fault when the token's answer to a
/// failed decryption is ambiguous.
fn healthy(session: &Session, key: ObjectHandle) -> bool {
    let probe = || -> Option<bool> {
        let mut block = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(block.as_mut_slice()).ok()?;
        aws_lc_rs::rand::fill(&mut iv).ok()?;
        let aad = b"strongroom pkcs11 health probe";
        let mut enc_iv = iv;
        let sealed = session
            .encrypt(
                &Mechanism::AesGcm(gcm_params(&mut enc_iv, aad).ok()?),
                key,
                block.as_slice(),
            )
            .ok()?;
        let opened = Zeroizing::new(
            session
                .decrypt(
                    &Mechanism::AesGcm(gcm_params(&mut enc_iv, aad).ok()?),
                    key,
                    &sealed,
                )
                .ok()?,
        );
        Some(opened.as_slice() == block.as_slice())
    };
    probe().unwrap_or(false)
}

fn gcm_params<'a>(iv: &'a mut [u8; IV_LEN], aad: &'a [u8]) -> Result<GcmParams<'a>, Fail> {
    let tag_bits = Ulong::try_from(GCM_TAG_BITS).map_err(|e| Fail::Fatal(describe(&e)))?;
    GcmParams::new(iv, aad, tag_bits).map_err(|e| Fail::Fatal(describe(&e)))
}

/// The PKCS#11 key-encryption backend: data keys are wrapped with `CKM_AES_GCM` inside
/// the token, under a non-extractable AES-256 key found by its label. See the
/// [module documentation](self) for the wrapped form, the errors and the sessions.
pub struct Pkcs11Kek {
    shared: Arc<Shared>,
    primary: KeyRef<'static>,
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("module", &self.shared.module)
            .field("token_label", &self.shared.token_label)
            .field("primary", &self.primary)
            .field("decrypt_only", &&self.shared.labels[1..])
            .field("pool_size", &self.shared.pool_size)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Kek {
    /// A builder.
    pub fn builder() -> Pkcs11KekBuilder {
        Pkcs11KekBuilder::default()
    }

    /// A backend from the process environment (see [`Pkcs11KekBuilder::from_env`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Pkcs11KekBuilder::from_env()?.build()
    }

    /// The label of the key that wraps new data keys.
    pub fn primary_label(&self) -> &str {
        &self.primary.id
    }

    /// The label of the token.
    pub fn token_label(&self) -> &str {
        &self.shared.token_label
    }

    /// Opens a session (loading the module and logging in if needed) and finds the
    /// primary key: for a start-up check.
    ///
    /// # Errors
    /// [`BackendError::Unavailable`] when the module, the token or the login fails;
    /// [`BackendError::KeyNotFound`] when the token lacks the primary key;
    /// [`BackendError::Misbehaved`] when that key is not what this backend requires.
    pub async fn check(&self) -> Result<(), BackendError> {
        let label = self.primary.id.to_string();
        self.run(move |shared, session| shared.find_key(session, &label).map(|_| ()))
            .await
    }

    /// The security attributes of the key labelled `label` (configured or not), as the
    /// token reports them.
    ///
    /// # Errors
    /// As [`Pkcs11Kek::check`].
    pub async fn key_attributes(&self, label: &str) -> Result<KeyAttributes, BackendError> {
        check_label("label", label).map_err(|_| self.not_found(label))?;
        let label = label.to_owned();
        self.run(move |_shared, session| {
            // Not through find_key: this reports the attributes of any secret key, even
            // one find_key would refuse.
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let found = session
                .session
                .find_objects(&template)
                .map_err(|e| classify(&e))?;
            match found.as_slice() {
                [] => Err(Fail::KeyNotFound(label.clone())),
                [one] => read_attributes(&session.session, *one),
                _ => Err(Fail::Misbehaved("two keys in the token share the label")),
            }
        })
        .await
    }

    /// Generates a KEK in the token: an AES-256 token key labelled `label`, private,
    /// sensitive, not extractable, usable only to encrypt and decrypt. Refuses a label
    /// that any object in the token already has. For setup and tests; operators may as
    /// well create the key with the token's own tools (with the same attributes).
    ///
    /// Uses a read/write session of its own. Two concurrent calls with the same label
    /// are not serialised against each other.
    ///
    /// # Errors
    /// [`Pkcs11Error::Config`] for a label that is not 1 to 255 bytes of visible ASCII;
    /// [`Pkcs11Error::KeyExists`] when the label is taken; [`Pkcs11Error::Backend`]
    /// when the token is unavailable or refuses.
    pub async fn generate_key(&self, label: &str) -> Result<(), Pkcs11Error> {
        check_label("label", label)?;
        let label = label.to_owned();
        let result = self
            .run_unpooled(move |shared| {
                let session = shared.open_session(true)?;
                let taken = session
                    .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
                    .map_err(|e| classify(&e))?;
                if !taken.is_empty() {
                    return Err(Fail::Exists(label.clone()));
                }
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(
                        Ulong::try_from(32usize).map_err(|e| Fail::Fatal(describe(&e)))?,
                    ),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                ];
                session
                    .generate_key(&Mechanism::AesKeyGen, &template)
                    .map_err(|e| classify(&e))?;
                Ok(())
            })
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(RunError::Exists(label)) => Err(Pkcs11Error::KeyExists { label }),
            Err(RunError::Backend(e)) => Err(Pkcs11Error::Backend(e)),
        }
    }

    fn not_found(&self, label: &str) -> BackendError {
        BackendError::KeyNotFound {
            key: KeyRef::new(label.to_owned(), KEY_VERSION),
        }
    }

    fn unavailable(&self, reason: String) -> BackendError {
        BackendError::Unavailable {
            backend: BACKEND_ID.to_owned(),
            reason,
        }
    }

    fn to_backend_error(&self, fail: Fail) -> RunError {
        RunError::Backend(match fail {
            Fail::Refused => BackendError::Refused,
            Fail::KeyNotFound(label) => self.not_found(&label),
            Fail::Lost(reason) | Fail::Fatal(reason) => self.unavailable(reason),
            Fail::Misbehaved(reason) => BackendError::Misbehaved {
                backend: BACKEND_ID.to_owned(),
                reason,
            },
            Fail::Exists(label) => return RunError::Exists(label),
        })
    }

    /// Runs `op` on a pooled session on the blocking pool, within the timeout.
    async fn run<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: Fn(&Shared, &mut PooledSession) -> Result<T, Fail> + Send + 'static,
    {
        let result = self
            .run_unpooled(move |shared| shared.with_session(&|session| op(shared, session)))
            .await;
        match result {
            Ok(value) => Ok(value),
            Err(RunError::Backend(e)) => Err(e),
            // Only generate_key yields Exists.
            Err(RunError::Exists(_)) => Err(self.unavailable("unexpected answer".to_owned())),
        }
    }

    /// Runs `op` on the blocking pool holding one pool permit, within the timeout.
    async fn run_unpooled<T, F>(&self, op: F) -> Result<T, RunError>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T, Fail> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(RunError::Backend(self.unavailable(
                "no Tokio runtime to run PKCS#11 calls on".to_owned(),
            )));
        };
        let deadline = tokio::time::Instant::now() + self.shared.timeout;
        let timed_out = || {
            RunError::Backend(self.unavailable(format!(
                "no answer from the token within {:?}",
                self.shared.timeout
            )))
        };
        let permit: OwnedSemaphorePermit = match tokio::time::timeout_at(
            deadline,
            Arc::clone(&self.shared.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(RunError::Backend(
                    self.unavailable("the session pool is closed".to_owned()),
                ));
            }
            Err(_) => return Err(timed_out()),
        };
        let shared = Arc::clone(&self.shared);
        let task = runtime.spawn_blocking(move || {
            // Held until the token answers, even if the caller gave up waiting.
            let _permit = permit;
            op(&shared)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(fail))) => Err(self.to_backend_error(fail)),
            Ok(Err(_)) => Err(RunError::Backend(
                self.unavailable("the PKCS#11 call panicked or was cancelled".to_owned()),
            )),
            Err(_) => Err(timed_out()),
        }
    }

    /// The label a value names, if this backend is configured with it.
    fn configured_label(&self, key: &KeyRef<'_>) -> Result<String, BackendError> {
        if key.version != KEY_VERSION {
            return Err(BackendError::KeyNotFound {
                key: key.clone().into_owned(),
            });
        }
        self.shared
            .labels
            .iter()
            .find(|label| **label == *key.id)
            .cloned()
            .ok_or_else(|| BackendError::KeyNotFound {
                key: key.clone().into_owned(),
            })
    }

    /// Unwraps with the token: `wrapped` must be [`WRAPPED_LEN`] bytes.
    async fn decrypt(
        &self,
        label: String,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Result<DataKey, BackendError> {
        let wrapped: [u8; WRAPPED_LEN] = wrapped.try_into().map_err(|_| BackendError::Refused)?;
        let aad = aad.to_vec();
        self.run(move |shared, session| {
            let key = shared.find_key(session, &label)?;
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(&wrapped[..IV_LEN]);
            let params = gcm_params(&mut iv, &aad)?;
            let plain =
                match session
                    .session
                    .decrypt(&Mechanism::AesGcm(params), key, &wrapped[IV_LEN..])
                {
                    Ok(plain) => Zeroizing::new(plain),
                    Err(
                        e @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _),
                    ) => {
                        // Ambiguous: SoftHSM2 before 2.7 answers CKR_GENERAL_ERROR to a tag
                        // mismatch. A token that still wraps and unwraps a fresh key under
                        // the same KEK is healthy, and refused this value.
                        return Err(if healthy(&session.session, key) {
                            Fail::Refused
                        } else {
                            Fail::Lost(describe(&e))
                        });
                    }
                    Err(e) => return Err(classify(&e)),
                };
            DataKey::from_slice(&plain).map_err(|_| Fail::Refused)
        })
        .await
    }
}

/// The result of a blocking run: a backend error, or (key generation only) a taken
/// label.
enum RunError {
    Backend(BackendError),
    Exists(String),
}

#[async_trait]
impl KekBackend for Pkcs11Kek {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.primary.borrowed()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| BackendError::Random)?;
        let dek = Zeroizing::new(*dek.expose_secret());
        let aad = aad.to_vec();
        let label = self.primary.id.to_string();
        let bytes = self
            .run(move |shared, session| {
                let key = shared.find_key(session, &label)?;
                let mut iv = iv;
                let params = gcm_params(&mut iv, &aad)?;
                let sealed = session
                    .session
                    .encrypt(&Mechanism::AesGcm(params), key, dek.as_slice())
                    .map_err(|e| classify(&e))?;
                if sealed.len() != DATA_KEY_LEN + TAG_LEN {
                    return Err(Fail::Misbehaved(
                        "the token's AES-GCM output is not 48 bytes",
                    ));
                }
                let mut out = Vec::with_capacity(WRAPPED_LEN);
                // The IV as the token left it (a token may replace the one it was given).
                out.extend_from_slice(&iv);
                out.extend_from_slice(&sealed);
                Ok(out)
            })
            .await?;
        Ok(Wrapped {
            key: self.primary.clone(),
            bytes,
        })
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        let label = self.configured_label(key)?;
        if wrapped.len() != WRAPPED_LEN {
            return Err(BackendError::Refused);
        }
        self.decrypt(label, wrapped, aad).await
    }
}
