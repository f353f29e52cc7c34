//! Request bodies: a JSON object read with a size cap, and field accessors that name the
//! field in every error and never echo a value (serde's own messages can quote input).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::edge::MAX_BODY;
use super::error::ApiError;

/// A JSON object body. An empty body (no bytes, or only whitespace) is the empty object,
/// so that a route whose fields are all optional accepts a bare `POST`; each required
/// field is then refused by name.
#[derive(Debug)]
pub(crate) struct Body(pub(crate) Map<String, Value>);

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
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(ApiError::Code(StatusCode::BAD_REQUEST, "invalid_json")),
        }
    }
}

impl Body {
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
