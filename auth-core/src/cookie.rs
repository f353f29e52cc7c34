//! Browser sessions: a session token in a `__Host-` cookie, and the CSRF defence that
//! cookie-authenticated requests must pass.
//!
//! Bearer tokens stay the default. A deployment serving a browser front end may instead
//! keep the session token in a cookie the page's JavaScript cannot read (`HttpOnly`), so
//! that an XSS bug cannot steal it. Cookies are *ambient*: the browser attaches them to
//! every request to the site, including requests another site makes it send. That is
//! cross-site request forgery, and why every state-changing request authenticated by the
//! cookie alone must prove it came from the site's own pages ([`CsrfGuard`]).
//!
//! * [`SessionCookie`] names the cookie (always `__Host-` prefixed: RFC 6265bis section
//!   4.1.3.2; the browser then only accepts it from this exact host, over HTTPS, with
//!   `Path=/` and no `Domain`, so a sibling subdomain cannot plant or overwrite it), builds
//!   its `Set-Cookie` and clearing values, and takes it out of a request's `Cookie`
//!   headers (untrusted input: size caps, no panic, typed [`ExtractError`]s).
//! * [`CsrfGuard`] decides whether a cookie-authenticated request may proceed, from the
//!   Fetch Metadata header `Sec-Fetch-Site` and the `Origin` header, both of which a
//!   browser sets itself and page scripts cannot forge (OWASP Cross-Site Request Forgery
//!   Prevention Cheat Sheet: "Fetch Metadata headers" and "Verifying origin with standard
//!   headers"; W3C Fetch Metadata Request Headers).
//!
//! The HTTP layer (`http::AuthLayer::with_session_cookie`, feature `axum`) wires both.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, header};

use crate::chain::Refusal;
use crate::config::ConfigError;
use crate::credential::{Credential, CredentialKind, ExtractError};
use crate::session::{DEFAULT_SESSION_TTL, SessionToken};

/// The default session cookie name.
pub const DEFAULT_SESSION_COOKIE: &str = "__Host-strongroom-session";
/// The prefix every session cookie name must carry (RFC 6265bis section 4.1.3.2).
pub const HOST_PREFIX: &str = "__Host-";
/// Longest accepted session cookie name.
pub const MAX_COOKIE_NAME_LEN: usize = 64;
/// Longest accepted session cookie value (session tokens are 47 characters).
pub const MAX_SESSION_COOKIE_LEN: usize = 1024;
/// Largest total size of a request's `Cookie` header fields (all of them together, as
/// HTTP/2 may split one into several) that is parsed at all. Browsers cap one cookie at
/// 4 KiB; a larger header is refused as [`ExtractError::TooLong`].
pub const MAX_COOKIE_HEADER_LEN: usize = 16 * 1024;

/// The field name used in errors about the session cookie.
const COOKIE_FIELD: &str = "cookie";

/// Refusal: a state-changing cookie request whose `Sec-Fetch-Site` is not `same-origin`
/// or `none`, and whose `Origin` is not an allowed origin.
pub const CSRF_CROSS_SITE: Refusal = Refusal::new("csrf.cross_site");
/// Refusal: a state-changing cookie request without `Sec-Fetch-Site` whose `Origin` is
/// not an allowed origin (including `Origin: null`).
pub const CSRF_ORIGIN: Refusal = Refusal::new("csrf.origin");
/// Refusal: a state-changing cookie request with neither `Sec-Fetch-Site` nor `Origin`.
pub const CSRF_NO_ORIGIN: Refusal = Refusal::new("csrf.no_origin");
/// Refusal: a cookie-authenticated WebSocket handshake whose `Origin` is absent or not
/// an allowed origin (Cross-Site WebSocket Hijacking).
pub const CSRF_WS_ORIGIN: Refusal = Refusal::new("csrf.ws_origin");

/// The `SameSite` attribute of the session cookie. `None` is deliberately not offered: it
/// would send the cookie on every cross-site request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Lax` (default): sent on same-site requests and on top-level cross-site
    /// navigations with a safe method (following a link to the site keeps the user
    /// signed in).
    #[default]
    Lax,
    /// `SameSite=Strict`: never sent on a request another site started, not even a link.
    Strict,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
        }
    }
}

/// The session cookie's name and attributes.
///
/// Every cookie it builds is `__Host-<name>=<token>; Path=/; Max-Age=<seconds>; Secure;
/// HttpOnly; SameSite=<Lax|Strict>`, without `Domain` (the `__Host-` prefix requires
/// both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookie {
    name: Box<str>,
    same_site: SameSite,
    max_age: Duration,
}

impl Default for SessionCookie {
    /// [`DEFAULT_SESSION_COOKIE`], `SameSite=Lax`, `Max-Age` of
    /// [`DEFAULT_SESSION_TTL`].
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_TTL)
    }
}

impl SessionCookie {
    /// The default cookie ([`DEFAULT_SESSION_COOKIE`], `SameSite=Lax`) with `Max-Age` set
    /// to `max_age`: pass the session lifetime (`SessionConfig::ttl`), so that the browser
    /// drops the cookie when the session expires.
    #[must_use]
    pub fn new(max_age: Duration) -> Self {
        Self {
            name: DEFAULT_SESSION_COOKIE.into(),
            same_site: SameSite::Lax,
            max_age,
        }
    }

    /// Uses the cookie name `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (field `session cookie name`) unless `name` starts with
    /// `__Host-`, is at most [`MAX_COOKIE_NAME_LEN`] bytes and is an RFC 6265 token
    /// (visible ASCII without separators).
    pub fn named(mut self, name: &str) -> Result<Self, ConfigError> {
        const FIELD: &str = "session cookie name";
        if !name.starts_with(HOST_PREFIX) || name.len() == HOST_PREFIX.len() {
            return Err(ConfigError::Invalid {
                field: FIELD,
                expected: "a name starting with __Host-",
            });
        }
        if name.len() > MAX_COOKIE_NAME_LEN || !name.bytes().all(is_token_byte) {
            return Err(ConfigError::Invalid {
                field: FIELD,
                expected: "an RFC 6265 token of at most 64 characters",
            });
        }
        self.name = name.into();
        Ok(self)
    }

    /// Sets the `SameSite` attribute.
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets `Max-Age` (whole seconds are sent).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The cookie name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `SameSite` attribute.
    #[must_use]
    pub fn same_site_attribute(&self) -> SameSite {
        self.same_site
    }

    /// The `Max-Age` attribute.
    #[must_use]
    pub fn max_age_attribute(&self) -> Duration {
        self.max_age
    }

    /// The `Set-Cookie` value that hands `token` to the browser. The value holds the
    /// secret: it is marked sensitive (its `Debug` prints `Sensitive`, and HTTP/2 HPACK
    /// never indexes it); put it in the response and nowhere else.
    ///
    /// # Errors
    ///
    /// [`CookieValueError`] if the token holds characters a cookie value cannot carry
    /// (never the case for tokens this crate issues).
    pub fn set_cookie(&self, token: &SessionToken) -> Result<HeaderValue, CookieValueError> {
        let token = token.expose_secret();
        if token.is_empty()
            || token.len() > MAX_SESSION_COOKIE_LEN
            || !token.bytes().all(is_cookie_octet)
        {
            return Err(CookieValueError);
        }
        let mut line =
            zeroize::Zeroizing::new(String::with_capacity(self.name.len() + token.len() + 96));
        line.push_str(&self.name);
        line.push('=');
        line.push_str(token);
        self.push_attributes(&mut line, self.max_age.as_secs());
        let mut value = HeaderValue::from_str(&line).map_err(|_| CookieValueError)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The `Set-Cookie` value that removes the cookie (empty value, `Max-Age=0`, same
    /// name and attributes), for logout.
    #[must_use]
    pub fn clear_cookie(&self) -> HeaderValue {
        let mut line = String::with_capacity(self.name.len() + 96);
        line.push_str(&self.name);
        line.push('=');
        self.push_attributes(&mut line, 0);
        // The name was checked to be a token and the attributes are fixed ASCII.
        HeaderValue::from_str(&line).unwrap_or(HeaderValue::from_static(
            "__Host-strongroom-session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        ))
    }

    fn push_attributes(&self, line: &mut String, max_age: u64) {
        use core::fmt::Write as _;
        let _ = write!(
            line,
            "; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite={}",
            self.same_site.as_str()
        );
    }

    /// Takes the session cookie out of a request's `Cookie` header fields (several fields
    /// are joined, as HTTP/2 allows splitting one).
    ///
    /// Returns `Ok(None)` when there is no `Cookie` header, it does not hold this cookie,
    /// or the cookie's value is empty (what a cleared cookie looks like). Other cookies are
    /// skipped without being decoded. The credential's kind is
    /// [`CredentialKind::SessionCookie`].
    ///
    /// # Errors
    ///
    /// A typed [`ExtractError`] naming the `cookie` field, never the value:
    /// [`ExtractError::TooLong`] when the `Cookie` fields together exceed
    /// [`MAX_COOKIE_HEADER_LEN`] or the value exceeds [`MAX_SESSION_COOKIE_LEN`],
    /// [`ExtractError::Duplicate`] when the cookie appears twice,
    /// [`ExtractError::Malformed`] when its value is not RFC 6265 cookie-octets (quoted
    /// values included: this crate never issues them).
    pub fn extract(&self, headers: &HeaderMap) -> Result<Option<Credential>, ExtractError> {
        let mut total = 0usize;
        let mut found: Option<&[u8]> = None;
        for field in headers.get_all(header::COOKIE) {
            total = total.saturating_add(field.len());
            if total > MAX_COOKIE_HEADER_LEN {
                return Err(ExtractError::TooLong {
                    header: COOKIE_FIELD,
                    max: MAX_COOKIE_HEADER_LEN,
                });
            }
            for pair in field.as_bytes().split(|b| *b == b';') {
                let pair = trim_ows(pair);
                let (name, value) = match pair.iter().position(|b| *b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => continue,
                };
                if trim_ows(name) != self.name.as_bytes() {
                    continue;
                }
                if found.is_some() {
                    return Err(ExtractError::Duplicate {
                        header: COOKIE_FIELD,
                    });
                }
                found = Some(trim_ows(value));
            }
        }
        let Some(value) = found else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        if value.len() > MAX_SESSION_COOKIE_LEN {
            return Err(ExtractError::TooLong {
                header: COOKIE_FIELD,
                max: MAX_SESSION_COOKIE_LEN,
            });
        }
        if !value.iter().copied().all(is_cookie_octet) {
            return Err(ExtractError::Malformed {
                header: COOKIE_FIELD,
            });
        }
        let value = core::str::from_utf8(value).map_err(|_| ExtractError::Malformed {
            header: COOKIE_FIELD,
        })?;
        Credential::new(CredentialKind::SessionCookie, value).map(Some)
    }
}

/// A token could not be written as a cookie value. Says nothing about the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the session token cannot be carried in a cookie")]
pub struct CookieValueError;

/// RFC 6265 section 4.1.1 `cookie-octet`: visible ASCII except `"`, `,`, `;` and `\`.
const fn is_cookie_octet(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\')
}

/// RFC 9110 `tchar`: the characters of a token (cookie names are tokens).
const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Trims spaces and tabs at both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether a method is safe in the sense of this defence: `GET`, `HEAD` and `OPTIONS`
/// need no CSRF check; every other method (`POST`, `PUT`, `PATCH`, `DELETE`, and any
/// extension method) does. Routes must therefore never change state on `GET`.
#[must_use]
pub fn is_safe_method(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS
}

/// The CSRF defence for requests authenticated by the session cookie alone.
///
/// A state-changing request (any method but `GET`, `HEAD`, `OPTIONS`) passes when
///
/// 1. its `Sec-Fetch-Site` is `same-origin` (a page of this very origin sent it) or
///    `none` (the user typed or bookmarked it), or
/// 2. its `Origin` is one of the allowed origins (the site's own front end, also when it
///    is served from a sibling origin such as `https://app.example.com` for an API on
///    `https://api.example.com`, where the browser says `same-site`).
///
/// Everything else is refused: `Sec-Fetch-Site: cross-site` or `same-site` from an origin
/// not on the list ([`CSRF_CROSS_SITE`]), no `Sec-Fetch-Site` and a foreign or `null`
/// `Origin` ([`CSRF_ORIGIN`]), and neither header ([`CSRF_NO_ORIGIN`]). Every browser in
/// use sends `Origin` on non-`GET` requests, and the two headers are forbidden request
/// headers that scripts cannot set, so only a non-browser client lacks both; such a
/// client should use a bearer token, which needs no CSRF check because a browser never
/// attaches it by itself. A header present twice is treated as absent.
///
/// A cookie-authenticated WebSocket handshake ([`CsrfGuard::check_websocket`]) is a
/// `GET`, but browsers neither apply CORS nor `SameSite=Lax` protection to it the same
/// way (Cross-Site WebSocket Hijacking), so its `Origin` must be on the list: list the
/// front end's own origin even when it is the API's origin.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CsrfGuard {
    origins: Arc<[Box<str>]>,
}

impl fmt::Debug for CsrfGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfGuard")
            .field("allowed_origins", &self.origins)
            .finish()
    }
}

impl CsrfGuard {
    /// A guard allowing `origins` (each `https://host[:port]`; `http://` only for
    /// `localhost`, `127.0.0.1` and `[::1]`, for development). Scheme and host are
    /// lower-cased and a default port (`:443`, `:80`) dropped, as browsers serialise
    /// `Origin`. An empty list is allowed: then only `Sec-Fetch-Site` can let a request
    /// through, and every cookie WebSocket handshake is refused.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (field `allowed origin`) for anything else: a path (even
    /// `/`), a query, user info, a wildcard, `null`, a non-ASCII host (use its punycode
    /// form), a bad port.
    pub fn new<I, S>(origins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<Box<str>> = Vec::new();
        for origin in origins {
            let origin = normalize_origin(origin.as_ref())?;
            if !list.contains(&origin) {
                list.push(origin);
            }
        }
        Ok(Self {
            origins: list.into(),
        })
    }

    /// The allowed origins, normalised.
    pub fn allowed_origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().map(|o| &**o)
    }

    /// Whether `origin` (an `Origin` header value) is allowed.
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
    }

    /// Checks a request whose only credential is the session cookie (see the type's
    /// docs). Costs a few header lookups; no credential is looked up.
    ///
    /// # Errors
    ///
    /// [`CSRF_CROSS_SITE`], [`CSRF_ORIGIN`] or [`CSRF_NO_ORIGIN`].
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        if is_safe_method(method) {
            return Ok(());
        }
        let site = single_value(headers, "sec-fetch-site");
        if let Some(site) = site
            && (site.as_bytes() == b"same-origin" || site.as_bytes() == b"none")
        {
            return Ok(());
        }
        let origin = single_value(headers, header::ORIGIN.as_str());
        if let Some(origin) = origin
            && self.allows(origin)
        {
            return Ok(());
        }
        Err(match (site, origin) {
            (Some(_), _) => CSRF_CROSS_SITE,
            (None, Some(_)) => CSRF_ORIGIN,
            (None, None) => CSRF_NO_ORIGIN,
        })
    }

    /// Checks a WebSocket handshake whose only credential is the session cookie: its
    /// `Origin` must be an allowed origin.
    ///
    /// # Errors
    ///
    /// [`CSRF_WS_ORIGIN`].
    pub fn check_websocket(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match single_value(headers, header::ORIGIN.as_str()) {
            Some(origin) if self.allows(origin) => Ok(()),
            _ => Err(CSRF_WS_ORIGIN),
        }
    }
}

/// The value of a header present exactly once.
fn single_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    Some(first)
}

/// Checks and normalises one configured origin.
fn normalize_origin(origin: &str) -> Result<Box<str>, ConfigError> {
    let invalid = |expected| ConfigError::Invalid {
        field: "allowed origin",
        expected,
    };
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err(invalid("an https:// origin"));
    };
    // host, or [v6], then an optional :port.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (inner, after) = v6
            .split_once(']')
            .ok_or(invalid("scheme://host[:port] with nothing after it"))?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(invalid("a valid host"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(invalid("scheme://host[:port] with nothing after it"))?,
            ),
        };
        (&rest[..inner.len() + 2], port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty()
        || !(host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    {
        return Err(invalid(
            "scheme://host[:port] with an ASCII host and nothing after it",
        ));
    }
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("a port from 1 to 65535"));
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("a port from 1 to 65535")),
                Ok(443) if scheme == "https" => None,
                Ok(80) if scheme == "http" => None,
                Ok(n) => Some(n),
            }
        }
    };
    if scheme == "http" && !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return Err(invalid(
            "an https:// origin (http:// only for localhost, 127.0.0.1 and [::1])",
        ));
    }
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_or_refused() {
        let g = CsrfGuard::new([
            "HTTPS://App.Example.com",
            "https://api.example.com:443",
            "https://x.example.com:8443",
            "http://localhost:3000",
            "https://[2001:db8::1]:8443",
        ])
        .unwrap();
        assert_eq!(
            g.allowed_origins().collect::<Vec<_>>(),
            [
                "https://app.example.com",
                "https://api.example.com",
                "https://x.example.com:8443",
                "http://localhost:3000",
                "https://[2001:db8::1]:8443"
            ]
        );
        for bad in [
            "",
            "null",
            "*",
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q",
            "https://user@app.example.com",
            "https://*.example.com",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "http://app.example.com",
            "https://bücher.example",
            "https://[::1",
            "ftp://example.com",
        ] {
            assert!(CsrfGuard::new([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cookie_names_need_the_host_prefix() {
        assert!(SessionCookie::default().named("__Host-app").is_ok());
        for bad in [
            "session",
            "__Secure-app",
            "__Host-",
            "__host-app",
            "__Host-a b",
            "__Host-a;b",
        ] {
            assert!(SessionCookie::default().named(bad).is_err(), "{bad:?}");
        }
        let long = format!("__Host-{}", "a".repeat(MAX_COOKIE_NAME_LEN));
        assert!(SessionCookie::default().named(&long).is_err());
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
    }
}
