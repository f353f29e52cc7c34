//! TEMPORARY stand-in for `auth_core::webhook` (helper W's branch, not merged yet), with
//! the contract's names, so that copy trading can be built and tested now. Deleted when
//! the real module lands.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use zeroize::{Zeroize, Zeroizing};

pub(crate) struct WebhookSecret([u8; 32]);

impl Drop for WebhookSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecret").finish_non_exhaustive()
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl WebhookSecret {
    pub(crate) fn generate() -> Result<Self, WebhookError> {
        let mut b = [0u8; 32];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| WebhookError::Unavailable)?;
        Ok(Self(b))
    }
    pub(crate) fn from_bytes(b: &[u8]) -> Result<Self, WebhookError> {
        let b: [u8; 32] = b.try_into().map_err(|_| WebhookError::Malformed)?;
        Ok(Self(b))
    }
    pub(crate) fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
    pub(crate) fn to_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from("whsec_"));
        let mut bits = 0u32;
        let mut n = 0;
        for &byte in &self.0 {
            bits = (bits << 8) | u32::from(byte);
            n += 8;
            while n >= 6 {
                n -= 6;
                out.push(char::from(B64[((bits >> n) & 63) as usize]));
            }
        }
        if n > 0 {
            out.push(char::from(B64[((bits << (6 - n)) & 63) as usize]));
        }
        out
    }
}

#[derive(Debug)]
pub(crate) struct ActiveSecrets {
    secrets: Vec<(WebhookSecret, Option<i64>)>,
}

impl ActiveSecrets {
    pub(crate) fn new(current: WebhookSecret) -> Self {
        Self {
            secrets: vec![(current, None)],
        }
    }
    pub(crate) fn with_previous(mut self, previous: WebhookSecret, expires_at: i64) -> Self {
        self.secrets.push((previous, Some(expires_at)));
        self
    }
}

#[derive(Debug)]
pub(crate) enum Delivery {
    Accepted {
        delivery_id: String,
        timestamp: i64,
    },
    Duplicate {
        delivery_id: String,
        reference: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookError {
    Missing,
    Malformed,
    Stale,
    BadSignature,
    Unavailable,
}

impl WebhookError {
    pub(crate) fn status(self) -> u16 {
        if self == Self::Unavailable { 503 } else { 401 }
    }
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Missing => "webhook.missing",
            Self::Malformed => "webhook.malformed",
            Self::Stale => "webhook.stale",
            Self::BadSignature => "webhook.bad_signature",
            Self::Unavailable => "webhook.unavailable",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Verifier {
    seen: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl Verifier {
    pub(crate) async fn verify(
        &self,
        sender: &str,
        header: Option<&str>,
        body: &[u8],
        secrets: &ActiveSecrets,
        now: i64,
        reference: &str,
    ) -> Result<Delivery, WebhookError> {
        let header = header.ok_or(WebhookError::Missing)?;
        let mut t = None;
        let mut sigs = Vec::new();
        for part in header.split(',') {
            let (k, v) = part.split_once('=').ok_or(WebhookError::Malformed)?;
            match k {
                "t" => t = Some(v.parse::<i64>().map_err(|_| WebhookError::Malformed)?),
                "v1" => sigs.push(
                    base16ct::lower::decode_vec(v.as_bytes())
                        .map_err(|_| WebhookError::Malformed)?,
                ),
                _ => {}
            }
        }
        let t = t.ok_or(WebhookError::Malformed)?;
        if (now - t).abs() > 300 {
            return Err(WebhookError::Stale);
        }
        let mut msg = format!("{t}.").into_bytes();
        msg.extend_from_slice(body);
        let ok = secrets.secrets.iter().any(|(s, exp)| {
            exp.is_none_or(|e| e > now) && {
                let key = hmac::Key::new(hmac::HMAC_SHA256, s.expose_secret());
                sigs.iter().any(|sig| hmac::verify(&key, &msg, sig).is_ok())
            }
        });
        if !ok {
            return Err(WebhookError::BadSignature);
        }
        let id = base16ct::lower::encode_string(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &msg).as_ref(),
        );
        let mut seen = self.seen.lock().map_err(|_| WebhookError::Unavailable)?;
        match seen.get(&(sender.to_owned(), id.clone())) {
            Some(r) => Ok(Delivery::Duplicate {
                delivery_id: id,
                reference: r.clone(),
            }),
            None => {
                seen.insert((sender.to_owned(), id.clone()), reference.to_owned());
                Ok(Delivery::Accepted {
                    delivery_id: id,
                    timestamp: t,
                })
            }
        }
    }
}
