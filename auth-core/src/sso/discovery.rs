//! OpenID Connect discovery (OpenID Connect Discovery 1.0): the two members of the
//! provider metadata the verifier uses, `issuer` and `jwks_uri`.
//!
//! The document comes from the network and is parsed as untrusted input: it must be a
//! JSON object, `issuer` and `jwks_uri` must be strings and appear once, every other
//! member is skipped unread. `issuer` must equal the configured issuer byte for byte
//! (section 4.3: "MUST be identical"; no trailing-slash, case or percent-encoding
//! normalisation), so a provider cannot hand out keys for another issuer's name.

use serde::Deserialize;

use crate::jose::{Claim, ObjectOnly};

/// The provider metadata the verifier uses, taken from a discovery document whose
/// `issuer` was checked against the configured one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    issuer: String,
    jwks_uri: reqwest::Url,
}

/// Why a discovery document (or its fetch) was refused. Names the member, never its
/// value (the document is untrusted and may carry anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// `discovery.malformed`: not a JSON object, or a member repeated.
    #[error("discovery document is not a JSON object with unique members")]
    Malformed,
    /// `discovery.missing_field`: `issuer` or `jwks_uri` is absent.
    #[error("discovery document has no {field}")]
    MissingField {
        /// `"issuer"` or `"jwks_uri"`.
        field: &'static str,
    },
    /// `discovery.field_type`: `issuer` or `jwks_uri` is not a string.
    #[error("discovery document: {field} is not a string")]
    FieldType {
        /// `"issuer"` or `"jwks_uri"`.
        field: &'static str,
    },
    /// `discovery.issuer_mismatch`: `issuer` is not exactly the configured issuer.
    #[error("discovery document: issuer is not the configured issuer")]
    IssuerMismatch,
    /// `discovery.invalid_jwks_uri`: `jwks_uri` is not an absolute http(s) URL with a host.
    #[error("discovery document: jwks_uri is not a valid URL")]
    InvalidJwksUri,
    /// `discovery.insecure_jwks_uri`: `jwks_uri` is not `https://`.
    #[error("discovery document: jwks_uri must use https")]
    InsecureJwksUri,
}

impl DiscoveryError {
    /// The stable code, for example `"discovery.issuer_mismatch"`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Malformed => "discovery.malformed",
            Self::MissingField { .. } => "discovery.missing_field",
            Self::FieldType { .. } => "discovery.field_type",
            Self::IssuerMismatch => "discovery.issuer_mismatch",
            Self::InvalidJwksUri => "discovery.invalid_jwks_uri",
            Self::InsecureJwksUri => "discovery.insecure_jwks_uri",
        }
    }
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    issuer: Claim<String>,
    #[serde(default)]
    jwks_uri: Claim<String>,
}

fn required(c: Claim<String>, field: &'static str) -> Result<String, DiscoveryError> {
    match c {
        Claim::Present(v) => Ok(v),
        Claim::Absent => Err(DiscoveryError::MissingField { field }),
        Claim::Invalid => Err(DiscoveryError::FieldType { field }),
    }
}

impl ProviderMetadata {
    /// Parses a discovery document served for `expected_issuer`: its `issuer` must equal
    /// `expected_issuer` byte for byte and its `jwks_uri` must be an `https://` URL.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`] naming the member at fault.
    pub fn from_json(body: &[u8], expected_issuer: &str) -> Result<Self, DiscoveryError> {
        Self::parse(body, expected_issuer, false)
    }

    /// As [`from_json`](Self::from_json); `allow_http` (set only through `danger`) also
    /// accepts an `http://` `jwks_uri`.
    pub(crate) fn parse(
        body: &[u8],
        expected_issuer: &str,
        allow_http: bool,
    ) -> Result<Self, DiscoveryError> {
        let ObjectOnly(raw) = serde_json::from_slice::<ObjectOnly<RawMetadata>>(body)
            .map_err(|_| DiscoveryError::Malformed)?;
        let issuer = required(raw.issuer, "issuer")?;
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch);
        }
        let jwks_uri = required(raw.jwks_uri, "jwks_uri")?;
        let url = reqwest::Url::parse(&jwks_uri).map_err(|_| DiscoveryError::InvalidJwksUri)?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(DiscoveryError::InsecureJwksUri),
            _ => return Err(DiscoveryError::InvalidJwksUri),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DiscoveryError::InvalidJwksUri);
        }
        Ok(Self {
            issuer,
            jwks_uri: url,
        })
    }

    /// The `issuer` (equal to the configured issuer).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `jwks_uri`.
    #[must_use]
    pub fn jwks_uri(&self) -> &str {
        self.jwks_uri.as_str()
    }

    pub(crate) fn into_jwks_uri(self) -> reqwest::Url {
        self.jwks_uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://login.example.com/realms/trading";

    fn parse(json: &str) -> Result<ProviderMetadata, DiscoveryError> {
        ProviderMetadata::from_json(json.as_bytes(), ISS)
    }

    #[test]
    fn accepts_the_configured_issuer_and_an_https_jwks_uri() {
        let m = parse(&format!(
            r#"{{"issuer":"{ISS}","jwks_uri":"{ISS}/certs","response_types_supported":["code"],
                "x":{{"nested":[1,2,{{}}]}}}}"#
        ))
        .unwrap();
        assert_eq!(m.issuer(), ISS);
        assert_eq!(m.jwks_uri(), format!("{ISS}/certs"));
    }

    #[test]
    fn issuer_must_match_exactly() {
        for other in [
            format!("{ISS}/"),
            ISS.to_uppercase(),
            ISS.replace("trading", "Trading"),
            ISS.replace("https://", "http://"),
            ISS.replace("/realms", "/%72ealms"),
            format!(" {ISS}"),
            "https://evil.example".to_owned(),
        ] {
            let json = format!(r#"{{"issuer":"{other}","jwks_uri":"https://evil.example/k"}}"#);
            assert_eq!(parse(&json), Err(DiscoveryError::IssuerMismatch), "{other}");
        }
    }

    #[test]
    fn jwks_uri_must_be_https() {
        let with = |uri: &str| format!(r#"{{"issuer":"{ISS}","jwks_uri":"{uri}"}}"#);
        assert_eq!(
            parse(&with("http://login.example.com/certs")),
            Err(DiscoveryError::InsecureJwksUri)
        );
        for bad in [
            "ftp://h/k",
            "/relative/certs",
            "file:///etc/passwd",
            "",
            "https://",
        ] {
            assert_eq!(
                parse(&with(bad)),
                Err(DiscoveryError::InvalidJwksUri),
                "{bad}"
            );
        }
        // With plain http allowed (danger), http is accepted.
        let m = ProviderMetadata::parse(with("http://127.0.0.1:1/k").as_bytes(), ISS, true);
        assert_eq!(m.unwrap().jwks_uri(), "http://127.0.0.1:1/k");
    }

    #[test]
    fn members_are_typed_unique_and_required() {
        assert_eq!(
            parse(r#"{"jwks_uri":"https://h/k"}"#),
            Err(DiscoveryError::MissingField { field: "issuer" })
        );
        assert_eq!(
            parse(&format!(r#"{{"issuer":"{ISS}"}}"#)),
            Err(DiscoveryError::MissingField { field: "jwks_uri" })
        );
        assert_eq!(
            parse(&format!(
                r#"{{"issuer":["{ISS}"],"jwks_uri":"https://h/k"}}"#
            )),
            Err(DiscoveryError::FieldType { field: "issuer" })
        );
        assert_eq!(
            parse(&format!(r#"{{"issuer":"{ISS}","jwks_uri":null}}"#)),
            Err(DiscoveryError::FieldType { field: "jwks_uri" })
        );
        assert_eq!(
            parse(&format!(
                r#"{{"issuer":"https://evil.example","issuer":"{ISS}","jwks_uri":"https://h/k"}}"#
            )),
            Err(DiscoveryError::Malformed)
        );
        for bad in ["", "[]", "null", "\"x\"", "{", r#"["issuer","jwks_uri"]"#] {
            assert_eq!(parse(bad), Err(DiscoveryError::Malformed), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hostile_documents_never_panic(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }
    }
}
