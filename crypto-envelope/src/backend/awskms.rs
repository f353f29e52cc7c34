//! The AWS KMS backend (feature `awskms`): data keys wrapped by a symmetric KMS key
//! through the official AWS SDK (`aws-sdk-kms` over rustls; no OpenSSL).
//!
//! # Shapes
//!
//! - **Wrap**: [`Encrypt`] of the 32-byte data key under the primary key, with
//!   `EncryptionAlgorithm = SYMMETRIC_DEFAULT` and an `EncryptionContext` made of the
//!   envelope's [`EncryptionContext`] pairs as they are, plus one pair
//!   [`AAD_CONTEXT_NAME`] (`strongroom:aad`) whose value is the unpadded standard base64
//!   (RFC 4648 section 4, 43 characters) of SHA-256 of the wrap's associated data
//!   (`aad(2)` of FORMAT.md, which encodes the format version, the suite and the
//!   canonical context). The wrapped bytes are KMS's `CiphertextBlob` as it is (1 to
//!   4096 bytes, or the wrap fails as [`BackendError::Misbehaved`]).
//! - **Key id**: the full key ARN that KMS reports in the `Encrypt` answer, which must
//!   be the ARN the configured key id, alias or ARN resolved to at [`AwsKmsBuilder::connect`]
//!   (through [`DescribeKey`]): an alias re-pointed later does not change which key a
//!   stored value needs. **Version 0** always: KMS rotates a key's backing material
//!   itself, and the ciphertext blob records which material it was made with.
//! - **Unwrap**: [`Decrypt`] with `KeyId` = the value's key ARN and the same encryption
//!   context. Only a key this backend was configured with (the primary and the
//!   decrypt-only keys, all resolved to ARNs at connect) is ever sent to KMS: any other
//!   key id in a value is [`BackendError::KeyNotFound`] without a call. The data key KMS
//!   returns must be exactly 32 bytes, or the unwrap is [`BackendError::Misbehaved`].
//! - **Rewrap** ([`KekBackend::rewrap`]): [`ReEncrypt`] from a decrypt-only key to the
//!   primary key with the same context as source and destination, so that the data key
//!   never leaves KMS.
//! - **Current**: a value is current when its key is the primary key's ARN, version 0.
//!
//! Why only configured keys: the key id in a stored value is not authenticated. If any
//! ARN were passed to KMS, whoever can write a row could name a key in *their own*
//! account whose key policy lets everyone decrypt, wrap a data key of their choice under
//! the right encryption context, and have a value of their making open as genuine. The
//! AWS Encryption SDK's "strict mode" (decrypt only with key ARNs given in advance)
//! closes the same hole.
//!
//! # Errors
//!
//! KMS's error codes map to [`BackendError`] so that a caller never learns more than the
//! envelope's contract allows, and no error holds SDK text (which can be verbose and
//! hold request details):
//!
//! | KMS answer | error |
//! | --- | --- |
//! | `InvalidCiphertextException`, `IncorrectKeyException`, `InvalidKeyUsageException`; `AccessDeniedException` on `Decrypt`/`ReEncrypt` (KMS's answer to a blob naming a key that does not exist or is not accessible; logged as `envelope.awskms.access_denied`) | [`BackendError::Refused`] |
//! | `NotFoundException` | [`BackendError::KeyNotFound`] |
//! | `DisabledException`, `KMSInvalidStateException` | [`BackendError::KeyRetired`] |
//! | throttling, `KMSInternalException`, `DependencyTimeoutException`, `KeyUnavailableException`, any 5xx, timeouts, connection failures | [`BackendError::Unavailable`], after the SDK's bounded retries |
//! | `AccessDeniedException` on `Encrypt`/`DescribeKey`, credential errors, any other error | [`BackendError::Unavailable`] naming the kind (a deployment problem, never the value's fault) |
//!
//! Retries: the SDK's standard mode (exponential backoff with jitter, a client-side
//! retry quota), at most [`DEFAULT_MAX_ATTEMPTS`] attempts; each attempt is bounded by
//! [`DEFAULT_ATTEMPT_TIMEOUT`] and the whole operation, retries included, by
//! [`DEFAULT_OPERATION_TIMEOUT`] (all configurable on [`AwsKmsBuilder`]).
//!
//! # Secrets
//!
//! The data key goes to KMS in the `Encrypt` request and comes back in the `Decrypt`
//! answer. What this module holds of it is wiped ([`DataKey`], a zeroizing buffer), but
//! the SDK's request and response buffers (JSON with the key in base64) are not ours to
//! wipe: they are freed, not zeroed. The SDK's `Debug` of these requests and answers
//! redacts the key, and its trace-level log of the `Decrypt` answer is redacted unless
//! the environment sets `LOG_SENSITIVE_BODIES=true`: **never set it in production**
//! (the answer holds the data key; the credential-canary test checks the default and
//! was seen to catch the key with the variable set).
//!
//! Credentials are the SDK's (environment, profile, web identity, container or instance
//! metadata, through `aws-config`, or [`AwsKmsBuilder::static_credentials`]); none of
//! this module's `Debug` output or errors holds them.
//!
//! # AWS KMS API references
//!
//! [`Encrypt`]: https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html
//! [`Decrypt`]: https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html
//! [`ReEncrypt`]: https://docs.aws.amazon.com/kms/latest/APIReference/API_ReEncrypt.html
//! [`DescribeKey`]: https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html
//!
//! - [`Encrypt`], [`Decrypt`], [`ReEncrypt`], [`DescribeKey`];
//! - encryption context: <https://docs.aws.amazon.com/kms/latest/developerguide/encrypt_context.html>;
//! - errors common to all actions: <https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html>.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Credentials, SharedHttpClient};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeySpec, KeyState, KeyUsageType};
use base64ct::Encoding;
use zeroize::Zeroizing;

use super::{KekBackend, KeyRef, Wrapped};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError};
use crate::format::{MAX_WRAPPED_LEN, valid_key_id};
use crate::secret::{DATA_KEY_LEN, DataKey};

/// The backend id this backend writes into sealed values.
pub const BACKEND_ID: &str = "awskms";

/// The primary KMS key: a key id, key ARN, alias name (`alias/...`) or alias ARN.
pub const ENV_KMS_KEY_ID: &str = "STRONGROOM_KMS_KEY_ID";
/// Decrypt-only KMS keys (values wrapped under them open and are re-wrapped to the
/// primary): comma-separated key ids, ARNs or aliases.
pub const ENV_KMS_KEY_IDS_OLD: &str = "STRONGROOM_KMS_KEY_IDS_OLD";
/// The AWS region (the SDK's own variable).
pub const ENV_REGION: &str = "AWS_REGION";
/// A KMS endpoint other than the region's (the SDK's own variable): a VPC endpoint, a
/// local KMS-compatible server.
pub const ENV_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// The encryption-context name under which the wrap's associated data is bound.
pub const AAD_CONTEXT_NAME: &str = "strongroom:aad";
/// Context names starting with this are this backend's own: an envelope context holding
/// one cannot be wrapped or unwrapped here.
pub const RESERVED_PREFIX: &str = "strongroom:";

/// Default bound on one KMS operation, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on one attempt (and on opening a connection).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of attempts per operation (the first one included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Longest key id, ARN or alias KMS accepts.
const MAX_CONFIG_KEY_ID_LEN: usize = 2048;
/// Most decrypt-only keys.
const MAX_OLD_KEYS: usize = 64;

pub use crate::error::ConnectError;

/// Where the builder's settings came from, to name them in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Builder,
    Env,
}

impl Origin {
    fn name(self, builder: &str, env: &str) -> String {
        match self {
            Self::Builder => builder.to_owned(),
            Self::Env => env.to_owned(),
        }
    }
}

/// Static credentials given to the builder. Wiped on drop; `Debug` prints the access key
/// id only.
struct StaticCredentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
}

impl Clone for StaticCredentials {
    fn clone(&self) -> Self {
        Self {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: Zeroizing::new(self.secret_access_key.as_str().to_owned()),
        }
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Configuration of an [`AwsKms`] backend.
///
/// Region and key id are required; the endpoint defaults to the region's KMS endpoint
/// (or to what the SDK's own configuration says, `AWS_ENDPOINT_URL` included);
/// credentials come from the SDK's standard chain unless given.
#[derive(Clone, Debug)]
pub struct AwsKmsBuilder {
    origin: Origin,
    region: Option<String>,
    endpoint_url: Option<String>,
    key_id: Option<String>,
    old_key_ids: Vec<String>,
    credentials: Option<StaticCredentials>,
    http_client: Option<SharedHttpClient>,
    operation_timeout: Duration,
    attempt_timeout: Duration,
    max_attempts: u32,
}

impl Default for AwsKmsBuilder {
    fn default() -> Self {
        Self {
            origin: Origin::Builder,
            region: None,
            endpoint_url: None,
            key_id: None,
            old_key_ids: Vec::new(),
            credentials: None,
            http_client: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl AwsKmsBuilder {
    /// Settings from the process environment: [`ENV_REGION`] (required),
    /// [`ENV_ENDPOINT_URL`], [`ENV_KMS_KEY_ID`] (required) and [`ENV_KMS_KEY_IDS_OLD`].
    /// Credentials come from the SDK's standard chain (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`, web identity,
    /// container and instance metadata) when [`AwsKmsBuilder::connect`] runs.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// As [`AwsKmsBuilder::from_env`], reading settings through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut builder = Self {
            origin: Origin::Env,
            ..Self::default()
        };
        builder.region = Some(lookup(ENV_REGION).ok_or_else(|| ConfigError::Missing {
            field: ENV_REGION.to_owned(),
        })?);
        builder.endpoint_url = lookup(ENV_ENDPOINT_URL);
        builder.key_id = Some(lookup(ENV_KMS_KEY_ID).ok_or_else(|| ConfigError::Missing {
            field: ENV_KMS_KEY_ID.to_owned(),
        })?);
        if let Some(old) = lookup(ENV_KMS_KEY_IDS_OLD) {
            builder.old_key_ids = old.split(',').map(str::to_owned).collect();
        }
        builder.validate()?;
        Ok(builder)
    }

    /// The AWS region (`us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// A KMS endpoint other than the region's: `https://...` (or `http://` for a local
    /// test server). It must not hold credentials.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// The primary key, which wraps every new data key: a key id, key ARN, alias name or
    /// alias ARN. It is resolved to its key ARN once, at [`AwsKmsBuilder::connect`].
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// A decrypt-only key: values wrapped under it open, and a re-wrap moves them to the
    /// primary key. Resolved to its ARN at connect; it may be disabled.
    pub fn decrypt_only_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.old_key_ids.push(key_id.into());
        self
    }

    /// Static credentials instead of the SDK's credential chain (from a secret manager,
    /// say). The secret is wiped when the builder is dropped; the SDK keeps its own copy.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: Zeroizing<String>,
    ) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
        });
        self
    }

    /// The HTTP client the SDK sends its requests with, instead of its default (hyper and
    /// rustls with the platform's trust roots): for a proxy or a private CA in front of a
    /// VPC endpoint. The client must verify TLS; the timeouts and retries above still
    /// apply.
    pub fn http_client(mut self, client: SharedHttpClient) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Bound on one operation, retries included (default 5 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bound on one attempt and on opening a connection (default 2 s).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Attempts per operation, the first included: 1 to 10 (default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let o = self.origin;
        let region_field = || o.name("region", ENV_REGION);
        let region = self.region.as_deref().ok_or_else(|| ConfigError::Missing {
            field: region_field(),
        })?;
        if region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::Invalid {
                field: region_field(),
                reason: "not an AWS region name (a-z, 0-9 and -)",
            });
        }
        if let Some(url) = &self.endpoint_url {
            check_endpoint(&o.name("endpoint_url", ENV_ENDPOINT_URL), url)?;
        }
        let key_field = o.name("key_id", ENV_KMS_KEY_ID);
        let key = self.key_id.as_deref().ok_or_else(|| ConfigError::Missing {
            field: key_field.clone(),
        })?;
        check_config_key_id(&key_field, key)?;
        if self.old_key_ids.len() > MAX_OLD_KEYS {
            return Err(ConfigError::Invalid {
                field: o.name("decrypt_only_key_id", ENV_KMS_KEY_IDS_OLD),
                reason: "more than 64 decrypt-only keys",
            });
        }
        for (i, old) in self.old_key_ids.iter().enumerate() {
            let field = match o {
                Origin::Builder => format!("decrypt_only_key_id (entry {})", i + 1),
                Origin::Env => format!("{ENV_KMS_KEY_IDS_OLD} (entry {})", i + 1),
            };
            check_config_key_id(&field, old)?;
        }
        let timeout = |field: &str, d: Duration| {
            if d.is_zero() || d > Duration::from_secs(300) {
                Err(ConfigError::Invalid {
                    field: field.to_owned(),
                    reason: "must be above 0 and at most 300 s",
                })
            } else {
                Ok(())
            }
        };
        timeout("operation_timeout", self.operation_timeout)?;
        timeout("attempt_timeout", self.attempt_timeout)?;
        if self.attempt_timeout > self.operation_timeout {
            return Err(ConfigError::Invalid {
                field: "attempt_timeout".to_owned(),
                reason: "longer than operation_timeout",
            });
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(ConfigError::BadNumber {
                field: "max_attempts".to_owned(),
                reason: "must be 1 to 10",
            });
        }
        if let Some(creds) = &self.credentials
            && (creds.access_key_id.is_empty() || creds.secret_access_key.is_empty())
        {
            return Err(ConfigError::Invalid {
                field: "static_credentials".to_owned(),
                reason: "empty access key id or secret",
            });
        }
        Ok(())
    }

    /// Builds the SDK client, resolves the primary and decrypt-only keys to their ARNs
    /// with `DescribeKey`, and checks that each is a symmetric encryption key
    /// (`SYMMETRIC_DEFAULT`, `ENCRYPT_DECRYPT`) and that the primary is enabled.
    ///
    /// # Errors
    /// [`ConnectError::Config`] for a missing or unusable setting, or a key of the wrong
    /// kind; [`ConnectError::Backend`] with [`BackendError::Unavailable`] when KMS cannot
    /// be asked, [`BackendError::KeyNotFound`] for a key KMS does not hold,
    /// [`BackendError::KeyRetired`] for a primary key that is not enabled.
    pub async fn connect(self) -> Result<AwsKms, ConnectError> {
        self.validate()?;
        let (Some(region), Some(key_id)) = (self.region.clone(), self.key_id.clone()) else {
            return Err(ConfigError::Missing {
                field: self.origin.name("key_id", ENV_KMS_KEY_ID),
            }
            .into());
        };
        let retry = RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(1));
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .connect_timeout(self.attempt_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(creds) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.as_str().to_owned(),
                None,
                None,
                "strongroom-static",
            ));
        }
        if let Some(client) = &self.http_client {
            loader = loader.http_client(client.clone());
        }
        let sdk = loader.load().await;
        let client = Client::new(&sdk);

        let primary = describe(&client, &key_id, true).await?;
        let mut keys = vec![primary.clone()];
        for old in &self.old_key_ids {
            let arn = describe(&client, old, false).await?;
            if !keys.contains(&arn) {
                keys.push(arn);
            }
        }
        Ok(AwsKms {
            client,
            region,
            endpoint_url: self.endpoint_url,
            primary,
            keys,
        })
    }
}

fn check_endpoint(field: &str, url: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::Invalid {
        field: field.to_owned(),
        reason,
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("not an http:// or https:// URL"))?;
    if url.len() > 2048 || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("not an http:// or https:// URL"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("the URL has no host"));
    }
    if authority.contains('@') {
        return Err(invalid("the URL must not hold credentials"));
    }
    Ok(())
}

fn check_config_key_id(field: &str, key: &str) -> Result<(), ConfigError> {
    if key.is_empty()
        || key.len() > MAX_CONFIG_KEY_ID_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "not a KMS key id, key ARN or alias (1 to 2048 visible ASCII characters)",
        });
    }
    Ok(())
}

/// Resolves a configured key id to its key ARN and checks that the key can serve.
async fn describe(client: &Client, key_id: &str, primary: bool) -> Result<String, ConnectError> {
    let asked = KeyRef::new(key_id.to_owned(), 0);
    let out = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| map_sdk_error(e, &asked, Op::Other))?;
    let misbehaved = |reason| BackendError::Misbehaved {
        backend: BACKEND_ID.to_owned(),
        reason,
    };
    let meta = out
        .key_metadata()
        .ok_or_else(|| misbehaved("DescribeKey answered without key metadata"))?;
    let arn = meta
        .arn()
        .filter(|arn| valid_key_id(arn.as_bytes()))
        .ok_or_else(|| misbehaved("DescribeKey answered without a usable key ARN"))?
        .to_owned();
    let field = if primary {
        "KMS key (primary)"
    } else {
        "KMS key (decrypt-only)"
    };
    // A SYMMETRIC_DEFAULT key is always ENCRYPT_DECRYPT; KMS reports both (moto omits
    // the usage of a key created without one, so an absent usage is accepted).
    if meta.key_spec() != Some(&KeySpec::SymmetricDefault)
        || meta
            .key_usage()
            .is_some_and(|usage| *usage != KeyUsageType::EncryptDecrypt)
    {
        return Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "not a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)",
        }
        .into());
    }
    if primary {
        match meta.key_state() {
            Some(KeyState::Enabled) => {}
            Some(
                KeyState::Disabled
                | KeyState::PendingDeletion
                | KeyState::PendingReplicaDeletion
                | KeyState::PendingImport,
            ) => {
                return Err(BackendError::KeyRetired {
                    key: KeyRef::new(arn, 0),
                }
                .into());
            }
            _ => return Err(unavailable("the primary KMS key is not usable now").into()),
        }
    }
    Ok(arn)
}

/// A key-encryption backend over AWS KMS. See the [module documentation](self).
///
/// Cheap to share (`Arc`); the SDK client pools its connections and recovers from an
/// outage on its own. Its calls need a tokio runtime with I/O and time enabled (what
/// `#[tokio::main]` builds).
pub struct AwsKms {
    client: Client,
    region: String,
    endpoint_url: Option<String>,
    /// The primary key's ARN.
    primary: String,
    /// Every key ARN this backend unwraps with, the primary first.
    keys: Vec<String>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("primary", &self.primary)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A builder.
    pub fn builder() -> AwsKmsBuilder {
        AwsKmsBuilder::default()
    }

    /// The primary key's ARN.
    pub fn primary_arn(&self) -> &str {
        &self.primary
    }

    /// Every key ARN this backend unwraps with, the primary first.
    pub fn key_arns(&self) -> &[String] {
        &self.keys
    }

    /// The configured key a value names, or `KeyNotFound` without asking KMS.
    fn held(&self, key: &KeyRef<'_>) -> Result<&str, BackendError> {
        if key.version == 0
            && let Some(arn) = self.keys.iter().find(|arn| **arn == key.id)
        {
            return Ok(arn);
        }
        Err(BackendError::KeyNotFound {
            key: key.clone().into_owned(),
        })
    }
}

/// The KMS encryption context of a wrap: the envelope's pairs and the `strongroom:aad`
/// pair.
///
/// # Errors
/// [`BackendError::Misbehaved`] when the envelope's context uses the reserved prefix.
pub fn kms_context(
    aad: &[u8],
    context: &EncryptionContext,
) -> Result<HashMap<String, String>, BackendError> {
    let mut pairs = HashMap::with_capacity(context.len() + 1);
    for (name, value) in context.iter() {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(BackendError::Misbehaved {
                backend: BACKEND_ID.to_owned(),
                reason: "the encryption context uses the reserved name prefix `strongroom:`",
            });
        }
        pairs.insert(name.to_owned(), value.to_owned());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, aad);
    pairs.insert(
        AAD_CONTEXT_NAME.to_owned(),
        base64ct::Base64Unpadded::encode_string(digest.as_ref()),
    );
    Ok(pairs)
}

fn unavailable(reason: &str) -> BackendError {
    BackendError::Unavailable {
        backend: BACKEND_ID.to_owned(),
        reason: reason.to_owned(),
    }
}

fn misbehaved(reason: &'static str) -> BackendError {
    BackendError::Misbehaved {
        backend: BACKEND_ID.to_owned(),
        reason,
    }
}

/// What a KMS error code means to the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Refused,
    NotFound,
    Retired,
    Unavailable(&'static str),
}

/// Which kind of call failed: one that carries a stored (attacker-controlled) ciphertext
/// blob, or one that does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `Decrypt` or `ReEncrypt` of a blob read from a value.
    Blob,
    /// `Encrypt` or `DescribeKey`: only configuration and fresh data.
    Other,
}

/// Classifies a KMS service error by its code and HTTP status.
///
/// `AccessDeniedException` is ambiguous on `Decrypt`: KMS answers it both when the
/// caller lacks permission and when the blob names a key that does not exist or that
/// the caller may not use, which anyone who can write a row can arrange. On a blob it is
/// therefore a refusal (with a `envelope.awskms.access_denied` warning in the trace, so
/// that a permission problem is still visible to the operator); elsewhere it is a
/// deployment problem, reported as unavailable.
fn classify(code: Option<&str>, status: u16, op: Op) -> Class {
    match code.unwrap_or_default() {
        "InvalidCiphertextException" | "IncorrectKeyException" | "InvalidKeyUsageException" => {
            Class::Refused
        }
        "AccessDeniedException" if op == Op::Blob => Class::Refused,
        "NotFoundException" => Class::NotFound,
        "DisabledException" | "KMSInvalidStateException" => Class::Retired,
        "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException" => {
            Class::Unavailable("KMS throttled the request")
        }
        "KMSInternalException" | "DependencyTimeoutException" | "KeyUnavailableException" => {
            Class::Unavailable("KMS reported an internal error")
        }
        "AccessDeniedException" => {
            Class::Unavailable("KMS denied access to the key (IAM or key policy)")
        }
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException" => Class::Unavailable("KMS refused the credentials"),
        _ if status >= 500 => Class::Unavailable("KMS answered with a server error"),
        _ => Class::Unavailable("KMS refused the request"),
    }
}

/// Maps an SDK error to a short, secret-free [`BackendError`] about `key`.
fn map_sdk_error<E: ProvideErrorMetadata>(
    err: SdkError<E>,
    key: &KeyRef<'_>,
    op: Op,
) -> BackendError {
    let reason = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            if op == Op::Blob && code == Some("AccessDeniedException") {
                tracing::warn!(
                    code = "envelope.awskms.access_denied",
                    key = %key,
                    "KMS denied a decrypt: a blob naming a key that is not accessible, or a missing permission"
                );
            }
            return match classify(code, status, op) {
                Class::Refused => BackendError::Refused,
                Class::NotFound => BackendError::KeyNotFound {
                    key: key.clone().into_owned(),
                },
                Class::Retired => BackendError::KeyRetired {
                    key: key.clone().into_owned(),
                },
                Class::Unavailable(reason) => unavailable(reason),
            };
        }
        SdkError::TimeoutError(_) => "KMS did not answer in time",
        SdkError::DispatchFailure(failure) if failure.is_timeout() => "KMS did not answer in time",
        SdkError::DispatchFailure(failure) if failure.is_io() => "could not connect to KMS",
        SdkError::DispatchFailure(_) => "the request to KMS could not be sent",
        SdkError::ResponseError(_) => "KMS answered with an unreadable response",
        SdkError::ConstructionFailure(_) => {
            "the request to KMS could not be built (credentials or endpoint)"
        }
        _ => "the request to KMS failed",
    };
    unavailable(reason)
}

/// Checks a ciphertext blob KMS returned against the format's bounds.
fn checked_blob(blob: Option<Blob>) -> Result<Vec<u8>, BackendError> {
    let bytes = blob.map(Blob::into_inner).unwrap_or_default();
    if bytes.is_empty() || bytes.len() > MAX_WRAPPED_LEN {
        return Err(misbehaved(
            "KMS returned a ciphertext blob that is not 1 to 4096 bytes",
        ));
    }
    Ok(bytes)
}

#[async_trait]
impl KekBackend for AwsKms {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn primary_key(&self) -> KeyRef<'_> {
        KeyRef::new(self.primary.as_str(), 0)
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        let pairs = kms_context(aad, context)?;
        let out = self
            .client
            .encrypt()
            .key_id(&self.primary)
            .plaintext(Blob::new(dek.expose_secret().to_vec()))
            .set_encryption_context(Some(pairs))
            .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &self.primary_key(), Op::Other))?;
        if out.key_id() != Some(self.primary.as_str()) {
            return Err(misbehaved(
                "KMS encrypted under a key other than the primary key",
            ));
        }
        Ok(Wrapped {
            key: KeyRef::new(self.primary.clone(), 0),
            bytes: checked_blob(out.ciphertext_blob)?,
        })
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        let arn = self.held(key)?;
        if wrapped.is_empty() || wrapped.len() > MAX_WRAPPED_LEN {
            return Err(BackendError::Refused);
        }
        let pairs = kms_context(aad, context)?;
        let out = self
            .client
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(pairs))
            .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, key, Op::Blob))?;
        if out.key_id() != Some(arn) {
            return Err(misbehaved(
                "KMS decrypted under a key other than the one asked",
            ));
        }
        let plaintext = Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default());
        if plaintext.len() != DATA_KEY_LEN {
            return Err(misbehaved("KMS returned a data key that is not 32 bytes"));
        }
        DataKey::from_slice(&plaintext)
    }

    async fn rewrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Option<Wrapped>, BackendError> {
        let source = self.held(key)?;
        if wrapped.is_empty() || wrapped.len() > MAX_WRAPPED_LEN {
            return Err(BackendError::Refused);
        }
        let pairs = kms_context(aad, context)?;
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .source_key_id(source)
            .set_source_encryption_context(Some(pairs.clone()))
            .source_encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
            .destination_key_id(&self.primary)
            .set_destination_encryption_context(Some(pairs))
            .destination_encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, key, Op::Blob))?;
        if out.source_key_id() != Some(source) {
            return Err(misbehaved(
                "KMS re-encrypted from a key other than the one asked",
            ));
        }
        if out.key_id() != Some(self.primary.as_str()) {
            return Err(misbehaved(
                "KMS re-encrypted under a key other than the primary key",
            ));
        }
        Ok(Some(Wrapped {
            key: KeyRef::new(self.primary.clone(), 0),
            bytes: checked_blob(out.ciphertext_blob)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_the_contract() {
        for code in [
            "InvalidCiphertextException",
            "IncorrectKeyException",
            "InvalidKeyUsageException",
        ] {
            for op in [Op::Blob, Op::Other] {
                assert_eq!(classify(Some(code), 400, op), Class::Refused, "{code}");
            }
        }
        for op in [Op::Blob, Op::Other] {
            assert_eq!(
                classify(Some("NotFoundException"), 400, op),
                Class::NotFound
            );
            assert_eq!(classify(Some("DisabledException"), 400, op), Class::Retired);
            assert_eq!(
                classify(Some("KMSInvalidStateException"), 400, op),
                Class::Retired
            );
        }
        // Denied access: the blob's doing on a decrypt, the deployment's elsewhere.
        assert_eq!(
            classify(Some("AccessDeniedException"), 400, Op::Blob),
            Class::Refused
        );
        assert!(matches!(
            classify(Some("AccessDeniedException"), 400, Op::Other),
            Class::Unavailable(_)
        ));
        for (code, status) in [
            ("ThrottlingException", 400),
            ("KMSInternalException", 500),
            ("DependencyTimeoutException", 503),
            ("KeyUnavailableException", 500),
            ("UnrecognizedClientException", 400),
            ("SomethingNew", 400),
            ("SomethingNew", 502),
        ] {
            for op in [Op::Blob, Op::Other] {
                assert!(
                    matches!(classify(Some(code), status, op), Class::Unavailable(_)),
                    "{code} {status}"
                );
            }
        }
        // An answer without a code (a proxy's error page) is never a refusal.
        assert!(matches!(
            classify(None, 503, Op::Blob),
            Class::Unavailable(_)
        ));
        assert!(matches!(
            classify(None, 400, Op::Blob),
            Class::Unavailable(_)
        ));
    }

    #[test]
    fn the_context_gains_the_aad_pair_and_refuses_the_reserved_prefix() {
        let context = EncryptionContext::new()
            .with("owner", "42")
            .unwrap()
            .with("venue", "binance")
            .unwrap();
        let pairs = kms_context(b"SRE\x01\x01\x02", &context).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs["owner"], "42");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"SRE\x01\x01\x02");
        assert_eq!(
            pairs[AAD_CONTEXT_NAME],
            base64ct::Base64Unpadded::encode_string(digest.as_ref())
        );
        assert_eq!(pairs[AAD_CONTEXT_NAME].len(), 43);
        // A different aad gives a different pair.
        let other = kms_context(b"SRE\x01\x02\x02", &context).unwrap();
        assert_ne!(pairs[AAD_CONTEXT_NAME], other[AAD_CONTEXT_NAME]);

        let reserved = EncryptionContext::new()
            .with("strongroom:aad", "x")
            .unwrap();
        assert!(matches!(
            kms_context(b"", &reserved),
            Err(BackendError::Misbehaved { .. })
        ));
        // The secret store's own name uses a dot, not the reserved colon.
        let store = EncryptionContext::new()
            .with("strongroom.kind", "secret")
            .unwrap();
        assert!(kms_context(b"", &store).is_ok());
    }

    /// The vector of FORMAT.md, section 6, `awskms` (computed there with an independent
    /// SHA-256 and base64).
    #[test]
    fn the_format_vector_of_the_aad_pair() {
        let context = EncryptionContext::new()
            .with("strongroom.kind", "secret")
            .unwrap()
            .with("owner", "user-1")
            .unwrap()
            .with("scope", "")
            .unwrap()
            .with("name", "API_SECRET")
            .unwrap();
        let mut aad = b"SRE\x01\x01\x02".to_vec();
        aad.extend_from_slice(&context.canonical_bytes());
        let expected_aad = concat!(
            "535245010102000400046e616d65000a4150495f53454352455400056f776e6572",
            "0006757365722d31000573636f70650000000f7374726f6e67726f6f6d2e6b696e",
            "640006736563726574"
        );
        assert_eq!(base16ct::lower::encode_string(&aad), expected_aad);
        let pairs = kms_context(&aad, &context).unwrap();
        assert_eq!(
            pairs[AAD_CONTEXT_NAME],
            "y3oLKZOKrDpQ3oXCjKumS/fcaKEUa3scCPVDk2CCGgI"
        );
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs["scope"], "");
    }

    #[test]
    fn configuration_names_the_variable_and_never_echoes_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let err = AwsKmsBuilder::from_lookup(env(&[(ENV_KMS_KEY_ID, "alias/x")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                field: ENV_REGION.into()
            }
        );
        let err = AwsKmsBuilder::from_lookup(env(&[(ENV_REGION, "us-east-1")])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                field: ENV_KMS_KEY_ID.into()
            }
        );
        let err = AwsKmsBuilder::from_lookup(env(&[
            (ENV_REGION, "us-east-1"),
            (ENV_KMS_KEY_ID, "alias/x"),
            (ENV_ENDPOINT_URL, "http://user:hunter2-canary@127.0.0.1:1"),
        ]))
        .unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { field, .. } if field == ENV_ENDPOINT_URL));
        assert!(!format!("{err} {err:?}").contains("hunter2-canary"));
        let err = AwsKmsBuilder::from_lookup(env(&[
            (ENV_REGION, "US East 1"),
            (ENV_KMS_KEY_ID, "alias/x"),
        ]))
        .unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { field, .. } if field == ENV_REGION));
        let err = AwsKmsBuilder::from_lookup(env(&[
            (ENV_REGION, "us-east-1"),
            (ENV_KMS_KEY_ID, "alias/x"),
            (ENV_KMS_KEY_IDS_OLD, "alias/a,,alias/b"),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { field, .. } if field == "STRONGROOM_KMS_KEY_IDS_OLD (entry 2)")
        );
        let ok = AwsKmsBuilder::from_lookup(env(&[
            (ENV_REGION, "us-east-1"),
            (ENV_KMS_KEY_ID, "alias/x"),
            (ENV_ENDPOINT_URL, "http://127.0.0.1:4599"),
            (ENV_KMS_KEY_IDS_OLD, "alias/a,alias/b"),
        ]))
        .unwrap();
        assert_eq!(ok.old_key_ids, ["alias/a", "alias/b"]);

        let bad = AwsKms::builder()
            .region("us-east-1")
            .key_id("alias/x")
            .attempt_timeout(Duration::from_secs(10));
        assert!(
            matches!(bad.validate(), Err(ConfigError::Invalid { field, .. }) if field == "attempt_timeout")
        );
        let bad = AwsKms::builder().key_id("alias/x");
        assert_eq!(
            bad.validate(),
            Err(ConfigError::Missing {
                field: "region".into()
            })
        );
    }

    #[test]
    fn static_credentials_stay_out_of_debug() {
        let builder = AwsKms::builder()
            .region("us-east-1")
            .key_id("alias/x")
            .static_credentials(
                "AKIDCANARY",
                Zeroizing::new("s3cr3t-canary-value".to_owned()),
            );
        let debug = format!("{builder:?}");
        assert!(debug.contains("AKIDCANARY"), "{debug}");
        assert!(!debug.contains("s3cr3t-canary-value"), "{debug}");
    }
}

/// The backend against scripted KMS answers: what a real server does not answer (wrong
/// keys, wrong lengths, garbage) must be refused without a panic, and failures must be
/// retried exactly as configured.
#[cfg(test)]
mod canned {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use proptest::prelude::*;

    use super::*;

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const OTHER: &str =
        "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab";

    type Script = dyn Fn(&str) -> (u16, String) + Send + Sync;

    /// Answers each request by its operation (`Decrypt`, `Encrypt`, ...) and counts them.
    #[derive(Clone)]
    struct Canned {
        script: Arc<Script>,
        calls: Arc<AtomicUsize>,
    }

    impl fmt::Debug for Canned {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Canned")
        }
    }

    impl HttpConnector for Canned {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let op = request
                .headers()
                .get("x-amz-target")
                .unwrap_or_default()
                .trim_start_matches("TrentService.")
                .to_owned();
            if op != "DescribeKey" {
                self.calls.fetch_add(1, Ordering::SeqCst);
            }
            let (status, body) = (self.script)(&op);
            let mut response =
                HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.1");
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    fn describe_ok() -> (u16, String) {
        (
            200,
            format!(
                r#"{{"KeyMetadata":{{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Arn":"{ARN}","KeySpec":"SYMMETRIC_DEFAULT","KeyUsage":"ENCRYPT_DECRYPT","KeyState":"Enabled"}}}}"#
            ),
        )
    }

    fn error(status: u16, code: &str) -> (u16, String) {
        (
            status,
            format!(r#"{{"__type":"{code}","message":"scripted"}}"#),
        )
    }

    /// A backend whose KMS answers `DescribeKey` with `describe` and everything else with
    /// `script`; the call counter counts the latter.
    async fn connect_with(
        attempts: u32,
        describe: fn() -> (u16, String),
        script: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> (Result<AwsKms, ConnectError>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let canned = Canned {
            script: Arc::new(move |op: &str| {
                if op == "DescribeKey" {
                    describe()
                } else {
                    script(op)
                }
            }),
            calls: calls.clone(),
        };
        let client = http_client_fn(move |_, _| SharedHttpConnector::new(canned.clone()));
        let kms = AwsKms::builder()
            .region("us-east-1")
            .endpoint_url("http://kms.invalid")
            .key_id("alias/scripted")
            .static_credentials("AKIDSCRIPTED", Zeroizing::new("scripted".to_owned()))
            .max_attempts(attempts)
            .http_client(client)
            .connect()
            .await;
        (kms, calls)
    }

    async fn scripted(
        attempts: u32,
        script: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> (AwsKms, Arc<AtomicUsize>) {
        let (kms, calls) = connect_with(attempts, describe_ok, script).await;
        (kms.unwrap(), calls)
    }

    fn b64(bytes: &[u8]) -> String {
        base64ct::Base64::encode_string(bytes)
    }

    fn context() -> EncryptionContext {
        EncryptionContext::new().with("owner", "42").unwrap()
    }

    async fn unwrap_with(kms: &AwsKms) -> Result<DataKey, BackendError> {
        kms.unwrap(&KeyRef::new(ARN, 0), b"blob", b"aad", &context())
            .await
    }

    #[tokio::test]
    async fn failures_are_retried_exactly_as_configured_then_unavailable() {
        for (status, code) in [
            (503, "DependencyTimeoutException"),
            (500, "KMSInternalException"),
            (400, "ThrottlingException"),
            (502, ""),
        ] {
            let (kms, calls) = scripted(3, move |_| error(status, code)).await;
            let result = unwrap_with(&kms).await;
            assert!(
                matches!(result, Err(BackendError::Unavailable { .. })),
                "{code}: {result:?}"
            );
            assert_eq!(calls.load(Ordering::SeqCst), 3, "{code}");
        }
        // A refusal is final: no retry.
        let (kms, calls) = scripted(3, |_| error(400, "InvalidCiphertextException")).await;
        assert!(matches!(
            unwrap_with(&kms).await,
            Err(BackendError::Refused)
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_wrong_decrypt_answer_is_misbehaviour_never_a_key() {
        for body in [
            format!(r#"{{"KeyId":"{ARN}","Plaintext":"{}"}}"#, b64(&[7; 16])),
            format!(r#"{{"KeyId":"{ARN}","Plaintext":"{}"}}"#, b64(&[7; 33])),
            format!(r#"{{"KeyId":"{ARN}"}}"#),
            format!(r#"{{"KeyId":"{OTHER}","Plaintext":"{}"}}"#, b64(&[7; 32])),
            format!(r#"{{"Plaintext":"{}"}}"#, b64(&[7; 32])),
        ] {
            let (kms, _) = scripted(1, move |_| (200, body.clone())).await;
            let result = unwrap_with(&kms).await;
            assert!(
                matches!(result, Err(BackendError::Misbehaved { .. })),
                "{result:?}"
            );
        }
        let good = format!(r#"{{"KeyId":"{ARN}","Plaintext":"{}"}}"#, b64(&[7; 32]));
        let (kms, _) = scripted(1, move |_| (200, good.clone())).await;
        assert_eq!(unwrap_with(&kms).await.unwrap().expose_secret(), &[7; 32]);
    }

    #[tokio::test]
    async fn a_wrong_encrypt_or_reencrypt_answer_is_misbehaviour() {
        let dek = DataKey::generate().unwrap();
        for body in [
            format!(r#"{{"KeyId":"{ARN}","CiphertextBlob":""}}"#),
            format!(r#"{{"KeyId":"{ARN}"}}"#),
            format!(
                r#"{{"KeyId":"{ARN}","CiphertextBlob":"{}"}}"#,
                b64(&[1; 4097])
            ),
            format!(
                r#"{{"KeyId":"{OTHER}","CiphertextBlob":"{}"}}"#,
                b64(&[1; 100])
            ),
        ] {
            let (kms, _) = scripted(1, move |_| (200, body.clone())).await;
            let result = kms.wrap(&dek, b"aad", &context()).await;
            assert!(
                matches!(result, Err(BackendError::Misbehaved { .. })),
                "{result:?}"
            );
        }
        let (kms, _) = scripted(1, |_| {
            (
                200,
                format!(
                    r#"{{"KeyId":"{ARN}","CiphertextBlob":"{}"}}"#,
                    b64(&[1; 100])
                ),
            )
        })
        .await;
        let wrapped = kms.wrap(&dek, b"aad", &context()).await.unwrap();
        assert_eq!(wrapped.key, KeyRef::new(ARN, 0));
        assert_eq!(wrapped.bytes, [1; 100]);

        // ReEncrypt from a decrypt-only key: the answer must name both keys right.
        let (kms, _) = connect_with(1, describe_ok, |_| {
            (
                200,
                format!(
                    r#"{{"KeyId":"{ARN}","SourceKeyId":"{ARN}","CiphertextBlob":"{}"}}"#,
                    b64(&[1; 100])
                ),
            )
        })
        .await;
        let kms = kms.unwrap();
        // Only the primary is held here, so the source must be the primary too.
        let moved = kms
            .rewrap(&KeyRef::new(ARN, 0), b"blob", b"aad", &context())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.key, KeyRef::new(ARN, 0));
        let (kms, _) = scripted(1, |_| {
            (
                200,
                format!(
                    r#"{{"KeyId":"{ARN}","SourceKeyId":"{OTHER}","CiphertextBlob":"{}"}}"#,
                    b64(&[1; 100])
                ),
            )
        })
        .await;
        let result = kms
            .rewrap(&KeyRef::new(ARN, 0), b"blob", b"aad", &context())
            .await;
        assert!(
            matches!(result, Err(BackendError::Misbehaved { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn describe_key_answers_decide_what_connect_accepts() {
        fn disabled() -> (u16, String) {
            (
                200,
                format!(
                    r#"{{"KeyMetadata":{{"KeyId":"k","Arn":"{ARN}","KeySpec":"SYMMETRIC_DEFAULT","KeyUsage":"ENCRYPT_DECRYPT","KeyState":"Disabled"}}}}"#
                ),
            )
        }
        fn rsa() -> (u16, String) {
            (
                200,
                format!(
                    r#"{{"KeyMetadata":{{"KeyId":"k","Arn":"{ARN}","KeySpec":"RSA_2048","KeyUsage":"ENCRYPT_DECRYPT","KeyState":"Enabled"}}}}"#
                ),
            )
        }
        fn no_arn() -> (u16, String) {
            (
                200,
                r#"{"KeyMetadata":{"KeyId":"k","KeySpec":"SYMMETRIC_DEFAULT","KeyState":"Enabled"}}"#
                    .to_owned(),
            )
        }
        fn denied() -> (u16, String) {
            error(400, "AccessDeniedException")
        }
        fn garbage() -> (u16, String) {
            (200, "<html>".to_owned())
        }
        let none = |_: &str| (500, String::new());
        let (result, _) = connect_with(1, disabled, none).await;
        assert!(matches!(
            result,
            Err(ConnectError::Backend(BackendError::KeyRetired { .. }))
        ));
        let (result, _) = connect_with(1, rsa, none).await;
        assert!(matches!(result, Err(ConnectError::Config(_))));
        let (result, _) = connect_with(1, no_arn, none).await;
        assert!(matches!(
            result,
            Err(ConnectError::Backend(BackendError::Misbehaved { .. }))
        ));
        // Denied access to configuration is a deployment problem, not a refusal.
        let (result, _) = connect_with(1, denied, none).await;
        assert!(matches!(
            result,
            Err(ConnectError::Backend(BackendError::Unavailable { .. }))
        ));
        let (result, _) = connect_with(1, garbage, none).await;
        assert!(matches!(
            result,
            Err(ConnectError::Backend(BackendError::Unavailable { .. }))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever KMS answers (any status, any body), unwrap, wrap and rewrap return
        /// an error or a well-formed result, and never panic.
        #[test]
        fn any_answer_is_handled_without_panic(
            status in prop::sample::select(vec![200u16, 400, 403, 404, 429, 500, 503]),
            body in prop_oneof![
                ".{0,64}",
                Just(String::new()),
                "\\{\"KeyId\":\"[ -~]{0,80}\",\"Plaintext\":\"[A-Za-z0-9+/=]{0,64}\"\\}",
                "\\{\"__type\":\"[A-Za-z#]{0,40}\"\\}",
                "\\{\"KeyId\":\"[ -~]{0,80}\",\"SourceKeyId\":\"[ -~]{0,80}\",\"CiphertextBlob\":\"[A-Za-z0-9+/=]{0,64}\"\\}",
            ],
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (kms, _) = scripted(1, move |_| (status, body.clone())).await;
                if let Ok(dek) = unwrap_with(&kms).await {
                    prop_assert_eq!(dek.expose_secret().len(), DATA_KEY_LEN);
                }
                let dek = DataKey::generate().unwrap();
                if let Ok(wrapped) = kms.wrap(&dek, b"aad", &context()).await {
                    prop_assert!(!wrapped.bytes.is_empty() && wrapped.bytes.len() <= MAX_WRAPPED_LEN);
                    prop_assert_eq!(wrapped.key, KeyRef::new(ARN, 0));
                }
                let _ = kms.rewrap(&KeyRef::new(ARN, 0), b"blob", b"aad", &context()).await;
                Ok(())
            })?;
        }
    }
}
