//! Request bodies: a JSON object read with a size cap, and field accessors that name the
//! field in every error and never echo a value (serde's own messages can quote input).

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::edge::MAX_BODY;
use super::error::ApiError;
use super::risk::{MAX_DECIMAL, parse_decimal};

/// A JSON object body. An empty body (no bytes, or only whitespace) is the empty object,
/// so that a route whose fields are all optional accepts a bare `POST`; each required
/// field is then refused by name.
///
/// The second field keeps the source text of each top-level JSON number, so that a
/// decimal sent as a number (`"amount": 0.001`) is read exactly as the digits it spells
/// ([`Body::positive_decimal`]), never through a float.
#[derive(Debug)]
pub(crate) struct Body(pub(crate) Map<String, Value>, BTreeMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The body limit (module `edge`) stops the read at `MAX_BODY`.
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::Code(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
                }
                _ => ApiError::Code(StatusCode::BAD_REQUEST, "invalid_body"),
            }
        })?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::Code(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ));
        }
        Self::parse(&bytes)
    }
}

impl Body {
    /// Parses a JSON object (or an empty body); 400 `invalid_json` for anything else.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new(), BTreeMap::new()));
        }
        let invalid = || ApiError::Code(StatusCode::BAD_REQUEST, "invalid_json");
        // First the top level as raw text borrowed from the body (to keep each number's
        // digits; no copy of any value, so no unwiped copy of a secret), then each value
        // into the map, whose strings are wiped on drop.
        let raw: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_slice(bytes).map_err(|_| invalid())?;
        let mut map = Map::new();
        let mut numbers = BTreeMap::new();
        for (key, raw) in raw {
            let value: Value = serde_json::from_str(raw.get()).map_err(|_| invalid())?;
            if value.is_number() {
                numbers.insert(key.clone().into_owned(), raw.get().to_owned());
            }
            map.insert(key.into_owned(), value);
        }
        Ok(Self(map, numbers))
    }

    /// A required positive decimal (a string, or a JSON number read from its digits), in
    /// minor units of 1e-8 (module `risk`); 400 naming the field otherwise.
    pub(crate) fn positive_decimal(&self, field: &'static str) -> Result<u64, ApiError> {
        let text = match self.0.get(field) {
            Some(Value::String(s)) if s.len() <= MAX_DECIMAL => s.as_str(),
            Some(Value::Number(_)) => {
                let plain = self.1.get(field).and_then(|raw| plain_decimal(raw));
                return match plain.as_deref().and_then(parse_decimal) {
                    Some(v) if v > 0 => Ok(v),
                    _ => Err(ApiError::Field(field)),
                };
            }
            _ => return Err(ApiError::Field(field)),
        };
        match parse_decimal(text) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(ApiError::Field(field)),
        }
    }

    /// An optional positive decimal (absent or null is `None`).
    pub(crate) fn opt_positive_decimal(
        &self,
        field: &'static str,
    ) -> Result<Option<u64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.positive_decimal(field).map(Some),
        }
    }

    /// A required string of 1..=`max` bytes.
    pub(crate) fn str(&self, field: &'static str, max: usize) -> Result<&str, ApiError> {
        match self.0.get(field) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s),
            _ => Err(ApiError::Field(field)),
        }
    }

    /// An optional string (absent or null is `None`).
    pub(crate) fn opt_str(
        &self,
        field: &'static str,
        max: usize,
    ) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(field, max).map(Some),
        }
    }

    /// A required secret string, copied into a wiped buffer.
    pub(crate) fn secret(
        &self,
        field: &'static str,
        max: usize,
    ) -> Result<Zeroizing<String>, ApiError> {
        self.str(field, max).map(|s| Zeroizing::new(s.to_owned()))
    }

    /// A required boolean.
    pub(crate) fn bool(&self, field: &'static str) -> Result<bool, ApiError> {
        match self.0.get(field) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(ApiError::Field(field)),
        }
    }

    /// An optional integer.
    pub(crate) fn opt_i64(&self, field: &'static str) -> Result<Option<i64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or(ApiError::Field(field)),
        }
    }
}

/// The source text of a JSON number as a plain decimal (`1e-8` is `0.00000001`,
/// `1.50` is `1.5`), exactly: digits are moved, never computed. `None` for a negative
/// number or an exponent beyond ±64.
fn plain_decimal(raw: &str) -> Option<String> {
    if raw.starts_with('-') {
        return None;
    }
    let (mantissa, exponent) = match raw.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok().filter(|e| e.abs() <= 64)?),
        None => (raw, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = int.chars().chain(frac.chars()).collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Where the decimal point falls in `digits` (may be outside it).
    let point = i64::try_from(int.len()).ok()? + i64::from(exponent);
    let len = i64::try_from(digits.len()).ok()?;
    let (whole, fraction) = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).ok()?);
        ("0".to_owned(), format!("{zeros}{digits}"))
    } else if point >= len {
        let zeros = "0".repeat(usize::try_from(point - len).ok()?);
        (format!("{digits}{zeros}"), String::new())
    } else {
        let at = usize::try_from(point).ok()?;
        (digits[..at].to_owned(), digits[at..].to_owned())
    };
    let fraction = fraction.trim_end_matches('0');
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        w => w,
    };
    Some(if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    })
}

impl Drop for Body {
    fn drop(&mut self) {
        // Best effort: wipe the string values (passwords, keys) before the map is freed.
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => zeroize::Zeroize::zeroize(s),
                Value::Array(a) => a.iter_mut().for_each(wipe),
                Value::Object(m) => m.values_mut().for_each(wipe),
                _ => {}
            }
        }
        self.0.values_mut().for_each(wipe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_become_the_decimal_they_spell() {
        for (raw, plain) in [
            ("0.001", "0.001"),
            ("1e-8", "0.00000001"),
            ("1E-8", "0.00000001"),
            ("1.5e2", "150"),
            ("1.50", "1.5"),
            ("100", "100"),
            ("0", "0"),
            ("2.5e-1", "0.25"),
            ("12345e-2", "123.45"),
            ("1e+3", "1000"),
            ("0.10000000000000000001", "0.10000000000000000001"),
        ] {
            assert_eq!(plain_decimal(raw).as_deref(), Some(plain), "{raw}");
        }
        for raw in ["-1", "-0.5", "1e65", "1e-65", "", "1e", "e5", "1.2.3"] {
            assert_eq!(plain_decimal(raw), None, "{raw}");
        }
        // Exact where a float is not: 0.1 + 0.2 style digits stay as written.
        let body = Body::parse(br#"{"a": 0.30000000, "b": 1e-9, "c": 1.00000001}"#).unwrap();
        assert_eq!(body.positive_decimal("a").unwrap(), 30_000_000);
        assert!(body.positive_decimal("b").is_err());
        assert_eq!(body.positive_decimal("c").unwrap(), 100_000_001);
    }
}
