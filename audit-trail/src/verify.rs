//! Chain verification and the classification of the first fault (README,
//! "Verification").

use std::fmt;

use crate::key::MacKey;
use crate::record::{Anchor, Checkpoint, Record};

/// What is wrong at the first bad place of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The record's content (or MAC) was changed: its MAC verifies under no position.
    Edited,
    /// The record is missing: a gap in the sequence numbers, or the head (or an external
    /// anchor) says the chain went further than the rows do.
    Deleted,
    /// The record does not belong here: the rows after it verify once it is taken out,
    /// it is a second copy, or it was written past the head.
    Inserted,
    /// The record is genuine but sits at another position (its MAC verifies under
    /// another sequence number, or it links to a later record).
    Reordered,
    /// The newest checkpoint's MAC does not verify: forged or edited.
    Checkpoint,
    /// The record at an anchor's position (the head row's, or an external anchor's) has
    /// another MAC: the chain was rewritten, or the head row was edited.
    Anchor,
}

impl FaultKind {
    /// A stable lowercase name: `edited`, `deleted`, `inserted`, `reordered`,
    /// `checkpoint`, `anchor`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Edited => "edited",
            FaultKind::Deleted => "deleted",
            FaultKind::Inserted => "inserted",
            FaultKind::Reordered => "reordered",
            FaultKind::Checkpoint => "checkpoint",
            FaultKind::Anchor => "anchor",
        }
    }
}

/// The first fault of a chain: where and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// The sequence number of the record (or checkpoint) named.
    pub seq: u64,
    /// What is wrong there.
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match self.kind {
            FaultKind::Edited => write!(f, "audit record {seq} was edited"),
            FaultKind::Deleted => write!(f, "audit record {seq} was deleted"),
            FaultKind::Inserted => write!(f, "audit record {seq} was inserted"),
            FaultKind::Reordered => write!(f, "audit record {seq} was moved (reordered)"),
            FaultKind::Checkpoint => write!(f, "audit checkpoint at record {seq} is forged"),
            FaultKind::Anchor => write!(f, "audit record {seq} does not match its anchor"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records whose MAC and link verified, from `start` on.
    pub checked: u64,
    /// The checkpoint verification started from (`None`: from record 1).
    pub checkpoint: Option<Checkpoint>,
    /// Where verification started: the checkpoint's anchor or [`Anchor::EMPTY`].
    pub start: Anchor,
    /// The last record that verified (`start` when none did).
    pub last: Anchor,
    /// The first fault; `None` when the whole chain verified.
    pub fault: Option<Fault>,
}

impl Report {
    /// Whether the chain verified with no fault.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.fault.is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            Some(fault) => write!(
                f,
                "{fault} ({} records verified before it, from record {})",
                self.checked,
                self.start.seq + 1
            ),
            None => write!(
                f,
                "{} audit records verified (records {}..={}{}), head {}",
                self.checked,
                self.start.seq + 1,
                self.last.seq,
                if self.checkpoint.is_some() {
                    ", earlier ones dropped under a valid checkpoint"
                } else {
                    ""
                },
                self.last
            ),
        }
    }
}

/// A stored row: a record, or the sequence number of a row that cannot be decoded (an
/// unknown outcome, a MAC of the wrong length). Such a row verifies under nothing.
// Nearly every slot is a record; boxing it would cost an allocation per row read for the
// sake of the rare corrupt one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Record(Record),
    Corrupt(u64),
}

impl Slot {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Slot::Record(r) => r.seq,
            Slot::Corrupt(seq) => *seq,
        }
    }

    fn record(&self) -> Option<&Record> {
        match self {
            Slot::Record(r) => Some(r),
            Slot::Corrupt(_) => None,
        }
    }
}

/// Walks rows in stored sequence order, one at a time, keeping the expected sequence
/// number and previous MAC.
#[derive(Debug)]
pub(crate) struct Walker<'k> {
    key: &'k MacKey,
    start: Anchor,
    last: Anchor,
    checked: u64,
    /// Points the chain must pass through (the head row read before the walk, external
    /// anchors), sorted by seq.
    anchors: Vec<Anchor>,
    /// The head row's seq when known: a failing last row past it was inserted.
    head_seq: Option<u64>,
}

impl<'k> Walker<'k> {
    pub(crate) fn new(
        key: &'k MacKey,
        start: Anchor,
        mut anchors: Vec<Anchor>,
        head_seq: Option<u64>,
    ) -> Self {
        anchors.sort_by_key(|a| a.seq);
        Walker {
            key,
            start,
            last: start,
            checked: 0,
            anchors,
            head_seq,
        }
    }

    /// Checks anchors at or before the start: one at the start itself must match it;
    /// earlier ones were dropped under the (verified) checkpoint and cannot be checked.
    pub(crate) fn check_start(&self) -> Option<Fault> {
        self.anchors
            .iter()
            .find(|a| a.seq == self.start.seq && a.mac != self.start.mac)
            .map(|a| Fault {
                seq: a.seq,
                kind: FaultKind::Anchor,
            })
    }

    /// Steps over `window[i]`; `window[i + 1..]` is the lookahead.
    pub(crate) fn step(&mut self, window: &[Slot], i: usize) -> Option<Fault> {
        let slot = window.get(i)?;
        let seq = slot.seq();
        let expected = self.last.seq.saturating_add(1);
        if seq < expected {
            return Some(Fault {
                seq,
                kind: FaultKind::Inserted,
            });
        }
        if seq > expected {
            return Some(Fault {
                seq: expected,
                kind: FaultKind::Deleted,
            });
        }
        let kind = match slot.record() {
            Some(r) if r.verify(self.key) => {
                if r.prev_mac == self.last.mac {
                    if let Some(a) = self.anchors.iter().find(|a| a.seq == seq)
                        && a.mac != r.mac
                    {
                        return Some(Fault {
                            seq,
                            kind: FaultKind::Anchor,
                        });
                    }
                    self.last = r.anchor();
                    self.checked += 1;
                    return None;
                }
                // Genuine at this position but linked to something else: to a later row
                // (moved), or to another chain under the same key (a splice).
                let later = window[i + 1..]
                    .iter()
                    .filter_map(Slot::record)
                    .any(|x| x.mac == r.prev_mac);
                if later {
                    FaultKind::Reordered
                } else {
                    FaultKind::Inserted
                }
            }
            record => self.classify_bad(window, i, record),
        };
        Some(Fault { seq, kind })
    }

    /// A row at the expected position whose MAC does not verify there.
    fn classify_bad(&self, window: &[Slot], i: usize, record: Option<&Record>) -> FaultKind {
        let seq = self.last.seq.saturating_add(1);
        let next = window
            .get(i + 1)
            .and_then(Slot::record)
            .filter(|n| n.seq == seq.saturating_add(1));
        if let Some(n) = next {
            // Two neighbours swapped.
            if record.is_some_and(|r| r.verify_as(self.key, n.seq)) && n.verify_as(self.key, seq) {
                return FaultKind::Reordered;
            }
            // Taken out, the rest verifies: this row was inserted and the later ones
            // renumbered.
            if n.verify_as(self.key, seq) && n.prev_mac == self.last.mac {
                return FaultKind::Inserted;
            }
        }
        if let Some(r) = record {
            // Genuine elsewhere: the position after the record it links to, or any
            // position in the window.
            let mut candidates: Vec<u64> = window
                .iter()
                .filter_map(Slot::record)
                .filter(|x| x.mac == r.prev_mac)
                .map(|x| x.seq.saturating_add(1))
                .collect();
            if r.prev_mac == self.start.mac {
                candidates.push(self.start.seq.saturating_add(1));
            }
            candidates.extend(window.iter().map(Slot::seq));
            if candidates
                .into_iter()
                .any(|s| s != seq && r.verify_as(self.key, s))
            {
                return FaultKind::Reordered;
            }
        }
        if window.get(i + 1).is_none() && self.head_seq.is_some_and(|h| seq > h) {
            return FaultKind::Inserted;
        }
        FaultKind::Edited
    }

    /// After the last row: anchors past the last verified record mean the tail was cut.
    pub(crate) fn finish(&self) -> Option<Fault> {
        self.anchors
            .iter()
            .any(|a| a.seq > self.last.seq)
            .then(|| Fault {
                seq: self.last.seq.saturating_add(1),
                kind: FaultKind::Deleted,
            })
    }

    pub(crate) fn report(&self, checkpoint: Option<Checkpoint>, fault: Option<Fault>) -> Report {
        Report {
            checked: self.checked,
            checkpoint,
            start: self.start,
            last: self.last,
            fault,
        }
    }
}

/// Verifies `records` (in sequence order) as the chain that follows `start`, with no
/// store: an export, say. `start` is [`Anchor::EMPTY`] for a chain from record 1, a
/// [`Checkpoint::anchor`], or, for an export that begins mid-chain, the first record's
/// `(seq - 1, prev_mac)` (which then is trusted, not checked). `anchors` are points the
/// chain must pass through (an externally kept [`crate::AuditLog::head`]).
///
/// The report names the first fault as [`crate::AuditLog::verify`] does.
#[must_use]
pub fn verify_records(
    key: &MacKey,
    start: Anchor,
    records: &[Record],
    anchors: &[Anchor],
) -> Report {
    let window: Vec<Slot> = records.iter().cloned().map(Slot::Record).collect();
    let mut walker = Walker::new(key, start, anchors.to_vec(), None);
    if let Some(fault) = walker.check_start() {
        return walker.report(None, Some(fault));
    }
    for i in 0..window.len() {
        if let Some(fault) = walker.step(&window, i) {
            return walker.report(None, Some(fault));
        }
    }
    let fault = walker.finish();
    walker.report(None, fault)
}
