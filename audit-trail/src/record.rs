//! Sealed records, checkpoints and anchors, and the MAC input (FORMAT.md).

use std::fmt;

use aws_lc_rs::hmac;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::{Actor, Event, Outcome};
use crate::key::MacKey;

/// The domain-separation prefix of every MAC input (19 ASCII bytes, no terminator).
pub(crate) const DOMAIN: &[u8] = b"strongroom-audit-v1";
/// Type byte of a record's MAC input.
const TYPE_RECORD: u8 = 0x01;
/// Type byte of a checkpoint's MAC input.
const TYPE_CHECKPOINT: u8 = 0x02;

/// Length of a MAC (HMAC-SHA256) in bytes.
pub const MAC_LEN: usize = 32;

/// The `prev_mac` of record 1: 32 zero bytes.
pub const GENESIS: [u8; MAC_LEN] = [0; MAC_LEN];

/// One stored audit record: the event, its place in the chain and its MAC.
///
/// `mac = HMAC-SHA256(key, "strongroom-audit-v1" || 0x01 || prev_mac || seq || at ||
/// fields)` as FORMAT.md specifies byte for byte; `prev_mac` is the previous record's
/// `mac` ([`GENESIS`] for record 1). Its JSON form (the export's lines, `serde`) is flat
/// except for `actor`, with the MACs in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain: 1, 2, 3... with no gaps.
    pub seq: u64,
    /// When the event was recorded, unix milliseconds (the writing instance's clock).
    pub at: i64,
    /// What happened.
    pub event: Event,
    /// The previous record's MAC.
    pub prev_mac: [u8; MAC_LEN],
    /// This record's MAC.
    pub mac: [u8; MAC_LEN],
}

impl Record {
    /// Seals `event` as record `seq` at `at`, after the record whose MAC is `prev_mac`.
    #[must_use]
    pub fn seal(key: &MacKey, seq: u64, at: i64, event: Event, prev_mac: [u8; MAC_LEN]) -> Self {
        let mac = record_mac(key, seq, at, &event, &prev_mac);
        Record {
            seq,
            at,
            event,
            prev_mac,
            mac,
        }
    }

    /// Whether [`Record::mac`] is the MAC of this record's content under `key`
    /// (constant-time comparison). It says nothing about the chain around it: that is
    /// [`crate::verify_records`]'s job.
    #[must_use]
    pub fn verify(&self, key: &MacKey) -> bool {
        self.verify_as(key, self.seq)
    }

    /// Whether the MAC verifies when the record is taken to be record `seq`.
    pub(crate) fn verify_as(&self, key: &MacKey, seq: u64) -> bool {
        let msg = record_input(seq, self.at, &self.event, &self.prev_mac);
        hmac::verify(key.hmac(), &msg, &self.mac).is_ok()
    }

    /// This record's place as an [`Anchor`].
    #[must_use]
    pub fn anchor(&self) -> Anchor {
        Anchor {
            seq: self.seq,
            mac: self.mac,
        }
    }
}

/// The MAC input of a record (FORMAT.md, "Record MAC").
pub(crate) fn record_input(seq: u64, at: i64, event: &Event, prev_mac: &[u8; MAC_LEN]) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(DOMAIN);
    m.push(TYPE_RECORD);
    m.extend_from_slice(prev_mac);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&at.to_be_bytes());
    let actor = event.actor();
    field(&mut m, actor.principal());
    field(&mut m, Some(actor.method()));
    field(&mut m, Some(event.action()));
    field(&mut m, event.target());
    field(&mut m, event.subject());
    m.push(event.outcome().byte());
    field(&mut m, event.reason());
    field(&mut m, event.request_id());
    m
}

/// A string field: `0x00` when absent, else `0x01 || u32 big-endian byte length || UTF-8`.
fn field(m: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => m.push(0),
        Some(v) => {
            m.push(1);
            // Stored values are bounded far below 4 GiB; a longer one (never written by
            // this crate) saturates and so cannot verify.
            let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(v.as_bytes());
        }
    }
}

pub(crate) fn record_mac(
    key: &MacKey,
    seq: u64,
    at: i64,
    event: &Event,
    prev_mac: &[u8; MAC_LEN],
) -> [u8; MAC_LEN] {
    tag(key, &record_input(seq, at, event, prev_mac))
}

fn tag(key: &MacKey, msg: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(hmac::sign(key.hmac(), msg).as_ref());
    out
}

/// A point of the chain: a record's sequence number and MAC.
///
/// [`crate::AuditLog::head`] gives the newest one; an operator who copies it somewhere
/// the database's writers cannot reach (a ticket, a WORM bucket, another system's log)
/// can later prove with [`crate::AuditLog::verify_against`] that the log was not cut
/// back behind it. Text form: `<seq>:<64 lowercase hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The record's sequence number (0: the empty chain).
    pub seq: u64,
    /// The record's MAC ([`GENESIS`] for the empty chain).
    pub mac: [u8; MAC_LEN],
}

impl Anchor {
    /// The empty chain's anchor.
    pub const EMPTY: Anchor = Anchor {
        seq: 0,
        mac: GENESIS,
    };

    /// Parses the text form `<seq>:<hex mac>`.
    ///
    /// # Errors
    ///
    /// [`AnchorParseError`] when the text is not of that form.
    pub fn parse(text: &str) -> Result<Self, AnchorParseError> {
        let (seq, mac) = text.trim().split_once(':').ok_or(AnchorParseError)?;
        let seq = seq.parse::<u64>().map_err(|_| AnchorParseError)?;
        let mut out = [0u8; MAC_LEN];
        let decoded = base16ct::mixed::decode(mac, &mut out).map_err(|_| AnchorParseError)?;
        if decoded.len() != MAC_LEN {
            return Err(AnchorParseError);
        }
        Ok(Anchor { seq, mac: out })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, hex(&self.mac))
    }
}

/// The text is not an anchor (`<seq>:<64 hex digits>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an audit anchor (expected <seq>:<64 hex digits>)")]
pub struct AnchorParseError;

/// A signed statement that records `1..=seq` were dropped by retention, and that the
/// last of them had MAC `mac`. Verification starts from the newest checkpoint.
///
/// `checkpoint_mac = HMAC-SHA256(key, "strongroom-audit-v1" || 0x02 || seq || mac || at)`
/// (FORMAT.md, "Checkpoint MAC").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last dropped record's sequence number.
    pub seq: u64,
    /// The last dropped record's MAC.
    pub mac: [u8; MAC_LEN],
    /// When the checkpoint was written, unix milliseconds.
    pub at: i64,
    /// The checkpoint's own MAC.
    pub checkpoint_mac: [u8; MAC_LEN],
}

impl Checkpoint {
    /// Seals a checkpoint after record `seq`, whose MAC is `mac`, at `at`.
    #[must_use]
    pub fn seal(key: &MacKey, seq: u64, mac: [u8; MAC_LEN], at: i64) -> Self {
        let checkpoint_mac = tag(key, &checkpoint_input(seq, &mac, at));
        Checkpoint {
            seq,
            mac,
            at,
            checkpoint_mac,
        }
    }

    /// Whether the checkpoint's MAC verifies under `key` (constant-time comparison).
    #[must_use]
    pub fn verify(&self, key: &MacKey) -> bool {
        let msg = checkpoint_input(self.seq, &self.mac, self.at);
        hmac::verify(key.hmac(), &msg, &self.checkpoint_mac).is_ok()
    }

    /// The point of the chain the checkpoint stands for.
    #[must_use]
    pub fn anchor(&self) -> Anchor {
        Anchor {
            seq: self.seq,
            mac: self.mac,
        }
    }
}

/// The MAC input of a checkpoint (FORMAT.md, "Checkpoint MAC").
fn checkpoint_input(seq: u64, mac: &[u8; MAC_LEN], at: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 1 + 8 + MAC_LEN + 8);
    m.extend_from_slice(DOMAIN);
    m.push(TYPE_CHECKPOINT);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(mac);
    m.extend_from_slice(&at.to_be_bytes());
    m
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// The JSON form of a record (one export line).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    seq: u64,
    at: i64,
    actor: WireActor,
    action: String,
    target: Option<String>,
    subject: Option<String>,
    outcome: Outcome,
    reason: Option<String>,
    request_id: Option<String>,
    prev_mac: String,
    mac: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireActor {
    principal: Option<String>,
    method: String,
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = &self.event;
        Wire {
            seq: self.seq,
            at: self.at,
            actor: WireActor {
                principal: e.actor().principal().map(str::to_owned),
                method: e.actor().method().to_owned(),
            },
            action: e.action().to_owned(),
            target: e.target().map(str::to_owned),
            subject: e.subject().map(str::to_owned),
            outcome: e.outcome(),
            reason: e.reason().map(str::to_owned),
            request_id: e.request_id().map(str::to_owned),
            prev_mac: hex(&self.prev_mac),
            mac: hex(&self.mac),
        }
        .serialize(serializer)
    }
}

/// Reads a record back exactly as written (no field rules: an export is verified as it
/// is). Unknown keys and MACs that are not 64 hex digits are refused.
impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(deserializer)?;
        let mac32 = |s: &str| -> Result<[u8; MAC_LEN], D::Error> {
            let mut out = [0u8; MAC_LEN];
            match base16ct::mixed::decode(s, &mut out) {
                Ok(d) if d.len() == MAC_LEN => Ok(out),
                _ => Err(serde::de::Error::custom("a MAC is 64 hex digits")),
            }
        };
        Ok(Record {
            seq: w.seq,
            at: w.at,
            event: Event::raw(
                Actor::raw(w.actor.principal, w.actor.method),
                w.action,
                w.target,
                w.subject,
                w.outcome,
                w.reason,
                w.request_id,
            ),
            prev_mac: mac32(&w.prev_mac)?,
            mac: mac32(&w.mac)?,
        })
    }
}
