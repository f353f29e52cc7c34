//! The remote vault source: asks an internal credential service over HTTPS.
//!
//! # Request
//!
//! `POST <endpoint>` with headers `Content-Type: application/json` and
//! `X-Internal-Secret: <configured secret>`, body
//! `{"account_id":"<credential id>","user_id":"<user id>","want":"read"|"trade"}`.
//!
//! # Response
//!
//! * 200: a credential object, see [`response`] for the exact format;
//! * 404: no such credential ([`FetchError::NotFound`]);
//! * 403: not allowed at that level ([`FetchError::Refused`]);
//! * anything else, a timeout, a redirect, a body above the cap or a wrong
//!   content type: [`FetchError::Backend`] / [`FetchError::InvalidResponse`].
//!
//! Without a configured internal secret every fetch fails fast with
//! [`FetchError::Unavailable`] (HTTP 503 in the embedding service), while the
//! rest of the service keeps working.

pub mod response;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::credential::ExchangeCredential;
use crate::error::{ConfigError, FetchError};
use crate::ids::CacheKey;
use crate::source::CredentialSource;

pub use response::{ResponseError, encode_response, parse_response};

/// The header carrying the internal secret.
pub const SECRET_HEADER: &str = "X-Internal-Secret";
/// Default total timeout of one request (connect, send, read the body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest accepted total timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Default response size cap, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// Largest accepted response size cap, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Shortest accepted internal secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A [`CredentialSource`] that POSTs to an internal vault endpoint.
pub struct RemoteVaultSource {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    secret: Option<http::HeaderValue>,
    max_response_bytes: usize,
}

impl fmt::Debug for RemoteVaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteVaultSource")
            .field("endpoint", &self.endpoint.as_str())
            .field("secret_configured", &self.secret.is_some())
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RemoteVaultSource`].
pub struct RemoteVaultBuilder {
    endpoint: String,
    secret: Option<Zeroizing<String>>,
    timeout: Duration,
    max_response_bytes: usize,
    roots_pem: Option<Vec<u8>>,
    pub(crate) allow_http: bool,
}

impl fmt::Debug for RemoteVaultBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint may (wrongly) hold user info: show it without.
        let endpoint = reqwest::Url::parse(&self.endpoint).map_or_else(
            |_| "<not a URL>".to_owned(),
            |mut url| {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            },
        );
        f.debug_struct("RemoteVaultBuilder")
            .field("endpoint", &endpoint)
            .field("secret_configured", &self.secret.is_some())
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("custom_roots", &self.roots_pem.is_some())
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl RemoteVaultBuilder {
    /// The internal secret sent in [`SECRET_HEADER`]: at least
    /// [`MIN_SECRET_LEN`] bytes of visible ASCII. Without it the source answers
    /// every fetch with [`FetchError::Unavailable`].
    #[must_use]
    pub fn internal_secret(mut self, secret: Zeroizing<String>) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Total timeout of one request. Default [`DEFAULT_TIMEOUT`], at most
    /// [`MAX_TIMEOUT`].
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Response size cap: the body is read in chunks and the request is
    /// abandoned as soon as it grows past the cap. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`], at most [`MAX_RESPONSE_BYTES`].
    #[must_use]
    pub const fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Trusts only the CA certificates in this PEM bundle (your internal CA)
    /// instead of the platform's roots.
    #[must_use]
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Self {
        self.roots_pem = Some(pem.to_vec());
        self
    }

    /// Builds the source.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] for a bad endpoint, secret, timeout, size
    /// cap or PEM bundle; [`ConfigError::InsecureEndpoint`] for an `http://`
    /// endpoint (allowed only through [`crate::danger::allow_plain_http`]);
    /// [`ConfigError::HttpClient`] when the TLS client cannot be built.
    pub fn build(self) -> Result<RemoteVaultSource, ConfigError> {
        let endpoint =
            reqwest::Url::parse(&self.endpoint).map_err(|_| ConfigError::InvalidField {
                field: "endpoint",
                reason: "not an absolute URL",
            })?;
        match endpoint.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(ConfigError::InsecureEndpoint),
            _ => {
                return Err(ConfigError::InvalidField {
                    field: "endpoint",
                    reason: "scheme must be https",
                });
            }
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(ConfigError::InvalidField {
                field: "endpoint",
                reason: "must not hold credentials",
            });
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(ConfigError::InvalidField {
                field: "timeout",
                reason: "must be above zero and at most 30 s",
            });
        }
        if self.max_response_bytes == 0 || self.max_response_bytes > MAX_RESPONSE_BYTES {
            return Err(ConfigError::InvalidField {
                field: "max_response_bytes",
                reason: "must be above zero and at most 1 MiB",
            });
        }
        let secret = match &self.secret {
            None => None,
            Some(s) => {
                if s.len() < MIN_SECRET_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::InvalidField {
                        field: "internal_secret",
                        reason: "must be at least 16 bytes of visible ASCII",
                    });
                }
                let mut value =
                    http::HeaderValue::from_str(s).map_err(|_| ConfigError::InvalidField {
                        field: "internal_secret",
                        reason: "not a valid header value",
                    })?;
                // Keeps it out of reqwest's and hyper's Debug output and HPACK tables.
                value.set_sensitive(true);
                Some(value)
            }
        };
        let mut client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!self.allow_http)
            .user_agent(concat!("strongroom-cred-cache/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &self.roots_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                ConfigError::InvalidField {
                    field: "root_certificates_pem",
                    reason: "not a PEM certificate bundle",
                }
            })?;
            if roots.is_empty() {
                return Err(ConfigError::InvalidField {
                    field: "root_certificates_pem",
                    reason: "holds no certificate",
                });
            }
            client = client.tls_certs_only(roots);
        }
        let client = client.build().map_err(|_| ConfigError::HttpClient)?;
        Ok(RemoteVaultSource {
            client,
            endpoint,
            secret,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

impl RemoteVaultSource {
    /// Starts configuring a source for `endpoint` (an `https://` URL).
    #[must_use]
    pub fn builder(endpoint: &str) -> RemoteVaultBuilder {
        RemoteVaultBuilder {
            endpoint: endpoint.to_owned(),
            secret: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            roots_pem: None,
            allow_http: false,
        }
    }

    /// Whether an internal secret is configured (if not, every fetch is
    /// [`FetchError::Unavailable`]).
    #[must_use]
    pub const fn is_configured(&self) -> bool {
        self.secret.is_some()
    }

    /// Reads the body in chunks into a buffer allocated once at the cap (so it
    /// never reallocates and leaves no unwiped copy) and stops past the cap.
    async fn read_capped(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Zeroizing<Vec<u8>>, FetchError> {
        let cap = self.max_response_bytes;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(FetchError::InvalidResponse);
        }
        let mut body = Zeroizing::new(Vec::with_capacity(cap));
        while let Some(chunk) = response.chunk().await.map_err(|_| FetchError::Backend)? {
            if chunk.len() > cap - body.len() {
                return Err(FetchError::InvalidResponse);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[derive(serde::Serialize)]
struct RequestBody<'a> {
    account_id: &'a str,
    user_id: &'a str,
    want: &'static str,
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

#[async_trait]
impl CredentialSource for RemoteVaultSource {
    async fn fetch(&self, key: &CacheKey) -> Result<ExchangeCredential, FetchError> {
        let Some(secret) = &self.secret else {
            return Err(FetchError::Unavailable);
        };
        let body = serde_json::to_vec(&RequestBody {
            account_id: key.credential().as_str(),
            user_id: key.user().as_str(),
            want: key.level().as_str(),
        })
        .map_err(|_| FetchError::Backend)?;
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(SECRET_HEADER, secret.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(
                    code = "cred_cache.remote.transport",
                    timeout = e.is_timeout(),
                    connect = e.is_connect(),
                    "vault request failed"
                );
                FetchError::Backend
            })?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            404 => return Err(FetchError::NotFound),
            403 => return Err(FetchError::Refused),
            _ => {
                tracing::warn!(
                    code = "cred_cache.remote.status",
                    status,
                    "vault answered with an unexpected status"
                );
                return Err(FetchError::Backend);
            }
        }
        if !is_json(&response) {
            tracing::warn!(
                code = "cred_cache.remote.content_type",
                "vault answer is not application/json"
            );
            return Err(FetchError::InvalidResponse);
        }
        let body = self.read_capped(response).await?;
        parse_response(&body, key).map_err(|e| match e {
            ResponseError::ReadOnly => FetchError::Refused,
            other => {
                tracing::warn!(code = "cred_cache.remote.invalid_response", error = %other, "vault answer refused");
                FetchError::InvalidResponse
            }
        })
    }
}
