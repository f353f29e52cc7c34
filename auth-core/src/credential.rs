//! Credentials: the secret a request presents, and how it is taken out of HTTP headers.
//!
//! A request carries at most one credential, in one of three headers:
//! `Authorization: Bearer <token>`, `X-API-Key: <key>` or `X-Internal-Secret: <secret>`.
//! A WebSocket handshake may instead carry it in a `token` query parameter (browsers cannot
//! set headers on `new WebSocket(..)`); it is then treated as a bearer token. Only
//! [`Credential::from_ws_handshake`] reads it, which the HTTP layer calls on routes that
//! opt in (`http::AuthLayer::websocket`), never elsewhere.
//!
//! Extraction is strict and fails closed: a header present twice, two different credential
//! headers at once, a value that is not visible ASCII, or a value longer than its cap is a
//! typed [`ExtractError`] (which names the header, never the value), and the chain answers
//! `Invalid` (403) rather than guessing which one was meant.

use core::fmt;

use http::{HeaderMap, HeaderName, Uri};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Name of the API key header.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Name of the internal service secret header.
pub const INTERNAL_SECRET_HEADER: &str = "x-internal-secret";
/// Name of the WebSocket handshake query parameter that may carry a bearer token.
pub const WS_TOKEN_PARAM: &str = "token";

/// Longest accepted bearer token (JWTs with many claims are the largest legitimate case).
pub const MAX_BEARER_LEN: usize = 8 * 1024;
/// Longest accepted API key.
pub const MAX_API_KEY_LEN: usize = 256;
/// Longest accepted internal service secret.
pub const MAX_INTERNAL_SECRET_LEN: usize = 1024;

/// Where a credential came from, which decides which resolvers look at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// `Authorization: Bearer <token>` (or a WebSocket `token` query parameter): a static
    /// token, a session token or an SSO JWT.
    Bearer,
    /// `X-API-Key: <key>`.
    ApiKey,
    /// `X-Internal-Secret: <secret>`: service-to-service calls on internal routes.
    InternalSecret,
    /// The session cookie (`Cookie: __Host-...=<token>`, see [`crate::cookie`]): only the
    /// session resolver accepts it. Read only by layers that enable cookie sessions, and
    /// only when no credential header is present (a header wins over the cookie).
    SessionCookie,
}

impl CredentialKind {
    /// The header this kind is read from (lower case), for error messages and logs.
    #[must_use]
    pub const fn header(self) -> &'static str {
        match self {
            Self::Bearer => "authorization",
            Self::ApiKey => API_KEY_HEADER,
            Self::InternalSecret => INTERNAL_SECRET_HEADER,
            Self::SessionCookie => "cookie",
        }
    }

    /// The longest value accepted for this kind.
    #[must_use]
    pub const fn max_len(self) -> usize {
        match self {
            Self::Bearer => MAX_BEARER_LEN,
            Self::ApiKey => MAX_API_KEY_LEN,
            Self::InternalSecret => MAX_INTERNAL_SECRET_LEN,
            Self::SessionCookie => crate::cookie::MAX_SESSION_COOKIE_LEN,
        }
    }
}

/// A secret presented by a request: a bearer token, an API key or an internal secret.
///
/// The value is wiped from memory on drop, `Debug` prints only the kind, and the value
/// comes out only through [`Credential::expose_secret`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Credential {
    #[zeroize(skip)]
    kind: CredentialKind,
    value: String,
}

impl Credential {
    /// Builds a credential from a raw value, applying the same checks as header
    /// extraction (non-empty, visible ASCII only, at most [`CredentialKind::max_len`]).
    ///
    /// # Errors
    ///
    /// [`ExtractError::Empty`], [`ExtractError::TooLong`] or [`ExtractError::Malformed`],
    /// each naming the header of `kind`, never the value.
    pub fn new(kind: CredentialKind, value: &str) -> Result<Self, ExtractError> {
        check_value(kind, value)?;
        Ok(Self {
            kind,
            value: value.to_owned(),
        })
    }

    /// Which header the credential came from.
    #[must_use]
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The secret value. Never log or store it; hash it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.value
    }

    /// Extracts the request's credential from its headers.
    ///
    /// Returns `Ok(None)` when none of the three headers is present (the chain then answers
    /// `Missing`, 401). An `Authorization` header with another scheme than `Bearer` is not
    /// a credential this crate understands and is refused as malformed.
    ///
    /// # Errors
    ///
    /// A typed [`ExtractError`] naming the offending header: duplicated header, several
    /// credential headers at once, bad scheme, empty, too long or non visible-ASCII value.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ExtractError> {
        let bearer = single(
            headers,
            &http::header::AUTHORIZATION,
            CredentialKind::Bearer,
        )?;
        let api_key = single(
            headers,
            &HeaderName::from_static(API_KEY_HEADER),
            CredentialKind::ApiKey,
        )?;
        let internal = single(
            headers,
            &HeaderName::from_static(INTERNAL_SECRET_HEADER),
            CredentialKind::InternalSecret,
        )?;
        let present = usize::from(bearer.is_some())
            + usize::from(api_key.is_some())
            + usize::from(internal.is_some());
        if present > 1 {
            return Err(ExtractError::Ambiguous);
        }
        if let Some(raw) = bearer {
            let token = strip_bearer(raw)?;
            return Self::new(CredentialKind::Bearer, token).map(Some);
        }
        if let Some(raw) = api_key {
            return Self::new(CredentialKind::ApiKey, raw).map(Some);
        }
        if let Some(raw) = internal {
            return Self::new(CredentialKind::InternalSecret, raw).map(Some);
        }
        Ok(None)
    }

    /// Extracts the credential of a WebSocket handshake: the same headers as
    /// [`Credential::from_headers`], or else a `token` query parameter in `uri`, read as a
    /// bearer token. The query value must be URL-safe as sent (letters, digits, `-._~`);
    /// percent-encoded values are refused, since every token this crate issues is URL-safe.
    ///
    /// # Errors
    ///
    /// As [`Credential::from_headers`]; also [`ExtractError::Ambiguous`] when a header and
    /// the query parameter are both present, [`ExtractError::Duplicate`] when the parameter
    /// appears twice and [`ExtractError::Malformed`] for a non URL-safe value.
    pub fn from_ws_handshake(headers: &HeaderMap, uri: &Uri) -> Result<Option<Self>, ExtractError> {
        let from_headers = Self::from_headers(headers)?;
        let mut found: Option<&str> = None;
        if let Some(query) = uri.query() {
            for pair in query.split('&') {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if name != WS_TOKEN_PARAM {
                    continue;
                }
                if found.is_some() {
                    return Err(ExtractError::Duplicate {
                        header: WS_TOKEN_QUERY_FIELD,
                    });
                }
                found = Some(value);
            }
        }
        match (from_headers, found) {
            (Some(_), Some(_)) => Err(ExtractError::Ambiguous),
            (Some(cred), None) => Ok(Some(cred)),
            (None, None) => Ok(None),
            (None, Some(value)) => {
                if value.is_empty() {
                    return Err(ExtractError::Empty {
                        header: WS_TOKEN_QUERY_FIELD,
                    });
                }
                if value.len() > MAX_BEARER_LEN {
                    return Err(ExtractError::TooLong {
                        header: WS_TOKEN_QUERY_FIELD,
                        max: MAX_BEARER_LEN,
                    });
                }
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
                {
                    return Err(ExtractError::Malformed {
                        header: WS_TOKEN_QUERY_FIELD,
                    });
                }
                Self::new(CredentialKind::Bearer, value).map(Some)
            }
        }
    }
}

/// The field name used in errors about the WebSocket `token` query parameter.
const WS_TOKEN_QUERY_FIELD: &str = "query parameter `token`";

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a credential could not be taken out of a request. Names the header, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The header (or query parameter) appears more than once.
    #[error("{header} appears more than once")]
    Duplicate {
        /// The header or parameter name.
        header: &'static str,
    },
    /// More than one kind of credential was presented at once.
    #[error("more than one credential header is present")]
    Ambiguous,
    /// The `Authorization` header does not use the `Bearer` scheme.
    #[error("authorization: scheme is not Bearer")]
    UnsupportedScheme,
    /// The value is empty.
    #[error("{header} is empty")]
    Empty {
        /// The header or parameter name.
        header: &'static str,
    },
    /// The value is longer than the cap for its kind.
    #[error("{header} is longer than {max} bytes")]
    TooLong {
        /// The header or parameter name.
        header: &'static str,
        /// The cap in bytes.
        max: usize,
    },
    /// The value contains bytes other than visible ASCII (or, for the query parameter,
    /// other than URL-safe characters).
    #[error("{header} contains characters that are not allowed")]
    Malformed {
        /// The header or parameter name.
        header: &'static str,
    },
}

impl ExtractError {
    /// The stable refusal code logged for this error.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Duplicate { .. } => "credential.duplicate",
            Self::Ambiguous => "credential.ambiguous",
            Self::UnsupportedScheme => "credential.scheme",
            Self::Empty { .. } => "credential.empty",
            Self::TooLong { .. } => "credential.too_long",
            Self::Malformed { .. } => "credential.malformed",
        }
    }
}

/// Returns the single value of `name`, refusing duplicates and oversized or non-ASCII
/// values before they are copied anywhere.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    kind: CredentialKind,
) -> Result<Option<&'a str>, ExtractError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::Duplicate {
            header: kind.header(),
        });
    }
    // The bearer header carries "Bearer " in front of the token.
    let cap = if kind == CredentialKind::Bearer {
        kind.max_len() + BEARER_PREFIX_MAX
    } else {
        kind.max_len()
    };
    if first.len() > cap {
        return Err(ExtractError::TooLong {
            header: kind.header(),
            max: kind.max_len(),
        });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ExtractError::Malformed {
            header: kind.header(),
        })
}

/// Room for the scheme and surrounding whitespace in an `Authorization` header.
const BEARER_PREFIX_MAX: usize = 16;

/// Strips the case-insensitive `Bearer` scheme and the spaces after it.
fn strip_bearer(raw: &str) -> Result<&str, ExtractError> {
    let raw = raw.trim_matches(' ');
    let Some((scheme, rest)) = raw.split_once(' ') else {
        if raw.eq_ignore_ascii_case("bearer") {
            return Err(ExtractError::Empty {
                header: CredentialKind::Bearer.header(),
            });
        }
        return Err(ExtractError::UnsupportedScheme);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ExtractError::UnsupportedScheme);
    }
    Ok(rest.trim_start_matches(' '))
}

/// Checks emptiness, the cap and the character set of a credential value.
fn check_value(kind: CredentialKind, value: &str) -> Result<(), ExtractError> {
    if value.is_empty() {
        return Err(ExtractError::Empty {
            header: kind.header(),
        });
    }
    if value.len() > kind.max_len() {
        return Err(ExtractError::TooLong {
            header: kind.header(),
            max: kind.max_len(),
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ExtractError::Malformed {
            header: kind.header(),
        });
    }
    Ok(())
}
