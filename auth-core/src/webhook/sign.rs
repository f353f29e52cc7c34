//! Signing outbound deliveries.

use super::{ActiveSecrets, WebhookSecret, delivery_tag};

/// Signs outbound deliveries: produces the `X-Strongroom-Signature` header value for a
/// timestamp and the exact body bytes that will be sent.
///
/// During a rotation ([`Signer::rotating`]) the header carries one `v1` entry per active
/// secret (current first), so receivers that hold either secret accept it.
#[derive(Debug)]
pub struct Signer {
    secrets: ActiveSecrets,
}

impl Signer {
    /// A signer with one secret.
    #[must_use]
    pub fn new(secret: WebhookSecret) -> Self {
        Self::rotating(ActiveSecrets::new(secret))
    }

    /// A signer with the secrets of a rotation: every secret active at the delivery's
    /// timestamp signs it.
    #[must_use]
    pub fn rotating(secrets: ActiveSecrets) -> Self {
        Self { secrets }
    }

    /// The secrets this signer uses.
    #[must_use]
    pub fn secrets(&self) -> &ActiveSecrets {
        &self.secrets
    }

    /// The header value `t=<timestamp>,v1=<hex>[,v1=<hex>]` for `body` sent at
    /// `timestamp` (Unix seconds, normally the current time: receivers refuse a
    /// timestamp more than their tolerance, 300 s by default, from their clock).
    ///
    /// `body` must be the exact bytes sent on the wire (after any serialisation and
    /// compression the receiver does not undo before verifying).
    #[must_use]
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let t = timestamp.to_string();
        let prefix = format!("{t}.");
        let now = i64::try_from(timestamp).unwrap_or(i64::MAX);
        let mut header = String::with_capacity(t.len() + 2 + 2 * (4 + 64));
        header.push_str("t=");
        header.push_str(&t);
        for secret in self.secrets.active(now) {
            let tag = delivery_tag(secret.key(), prefix.as_bytes(), body);
            let mut hex = [0u8; 64];
            header.push_str(",v1=");
            // A 32-byte tag always fits 64 hex digits.
            if let Ok(hex) = base16ct::lower::encode_str(tag.as_ref(), &mut hex) {
                header.push_str(hex);
            }
        }
        header
    }
}
