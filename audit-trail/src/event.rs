//! What happened: [`Event`], [`Actor`], [`Outcome`], and the field rules.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest code (`action`, `reason`, `method`), in bytes.
pub const MAX_CODE_LEN: usize = 64;
/// Longest free-text field (`principal`, `target`, `subject`), in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// Longest `request_id`, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What a code becomes when nothing of it is left after the rules.
const EMPTY_CODE: &str = "unknown";

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was done.
    Success,
    /// The action was refused (bad credential, missing grant, throttled...).
    Refused,
    /// The action failed on our side (a store down, an internal error).
    Failed,
}

impl Outcome {
    /// The stored name: `success`, `refused` or `failed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// The byte that stands for the outcome in the MAC input (FORMAT.md).
    pub(crate) fn byte(self) -> u8 {
        match self {
            Outcome::Success => 1,
            Outcome::Refused => 2,
            Outcome::Failed => 3,
        }
    }

    /// The outcome stored as `name`, if it is one.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "success" => Some(Outcome::Success),
            "refused" => Some(Outcome::Refused),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted, and how they authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Actor {
    principal: Option<String>,
    method: String,
}

impl Actor {
    /// An authenticated principal (a user id, a service name) and the way it proved
    /// itself, a code such as `session`, `api_key`, `access_token`, `sso`,
    /// `static_token`, `internal`, `webhook` or `cli`. Both go through the field rules.
    #[must_use]
    pub fn new(principal: impl AsRef<str>, method: impl AsRef<str>) -> Self {
        Actor {
            principal: Some(text(principal.as_ref(), MAX_TEXT_LEN)),
            method: code(method.as_ref()),
        }
    }

    /// Nobody authenticated (method `anonymous`): a failed login, a public route.
    #[must_use]
    pub fn anonymous() -> Self {
        Actor {
            principal: None,
            method: "anonymous".to_owned(),
        }
    }

    /// The principal, if any.
    #[must_use]
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// How the principal authenticated.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Exactly these values, without the field rules (values read back from a store or
    /// an export).
    pub(crate) fn raw(principal: Option<String>, method: String) -> Self {
        Actor { principal, method }
    }
}

/// One security-relevant event. The log adds the time and the sequence number.
///
/// Build it with [`Event::new`] and the `with_*` methods. Every value goes through the
/// field rules (README, "Fields"): codes keep `a-z 0-9 . _ -` (anything else becomes
/// `_`, at most [`MAX_CODE_LEN`] bytes); free text drops control, line-separator and
/// bidirectional-override characters (each becomes U+FFFD) and is cut on a character
/// boundary at [`MAX_TEXT_LEN`] ([`MAX_REQUEST_ID_LEN`] for the request id). So no value
/// can break a log line or an export into forged structure, and building an event never
/// fails. Never put a secret (a password, a token, a key) in any field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Event {
    actor: Actor,
    action: String,
    target: Option<String>,
    subject: Option<String>,
    outcome: Outcome,
    reason: Option<String>,
    request_id: Option<String>,
}

impl Event {
    /// `actor` did `action` (a stable code such as `login.success` or `api_key.create`)
    /// with `outcome`.
    #[must_use]
    pub fn new(actor: Actor, action: impl AsRef<str>, outcome: Outcome) -> Self {
        Event {
            actor,
            action: code(action.as_ref()),
            target: None,
            subject: None,
            outcome,
            reason: None,
            request_id: None,
        }
    }

    /// What was acted on (an account id, a key id, a route).
    #[must_use]
    pub fn with_target(mut self, target: impl AsRef<str>) -> Self {
        self.target = Some(text(target.as_ref(), MAX_TEXT_LEN));
        self
    }

    /// The user whose own log shows this event ([`crate::AuditLog::for_subject`]);
    /// usually the actor's user id, or the account owner's.
    #[must_use]
    pub fn with_subject(mut self, subject: impl AsRef<str>) -> Self {
        self.subject = Some(text(subject.as_ref(), MAX_TEXT_LEN));
        self
    }

    /// Why: a stable code such as `bad_password` or `mfa_required`.
    #[must_use]
    pub fn with_reason(mut self, reason: impl AsRef<str>) -> Self {
        self.reason = Some(code(reason.as_ref()));
        self
    }

    /// The request's id, to join the audit log with the traces.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl AsRef<str>) -> Self {
        self.request_id = Some(text(request_id.as_ref(), MAX_REQUEST_ID_LEN));
        self
    }

    /// Who acted.
    #[must_use]
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The action code.
    #[must_use]
    pub fn action(&self) -> &str {
        &self.action
    }

    /// What was acted on.
    #[must_use]
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The user whose log shows the event.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// How it ended.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The reason code.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The request id.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Exactly these values, without the field rules (rows read back from a store: they
    /// must be verified as they are, not as they should be).
    #[allow(clippy::too_many_arguments)] // One parameter per stored column.
    pub(crate) fn raw(
        actor: Actor,
        action: String,
        target: Option<String>,
        subject: Option<String>,
        outcome: Outcome,
        reason: Option<String>,
        request_id: Option<String>,
    ) -> Self {
        Event {
            actor,
            action,
            target,
            subject,
            outcome,
            reason,
            request_id,
        }
    }
}

/// The code rule: ASCII `a-z 0-9 . _ -` (upper case is lowered, anything else becomes
/// `_`), at most [`MAX_CODE_LEN`] bytes, never empty.
fn code(value: &str) -> String {
    let out: String = value
        .chars()
        .take(MAX_CODE_LEN)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        EMPTY_CODE.to_owned()
    } else {
        out
    }
}

/// Characters that could forge structure in a log line or a terminal: controls (C0, DEL,
/// C1), the line and paragraph separators, and the bidirectional embeddings, overrides
/// and isolates.
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The text rule: forbidden characters become U+FFFD, then the value is cut to at most
/// `max` bytes on a character boundary.
fn text(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let c = if forbidden(c) { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_charset_and_length() {
        assert_eq!(code("login.Success"), "login.success");
        assert_eq!(code("a b\nc"), "a_b_c");
        assert_eq!(code(""), "unknown");
        assert_eq!(code(&"x".repeat(100)).len(), MAX_CODE_LEN);
        assert_eq!(code("é"), "_");
    }

    #[test]
    fn text_cannot_break_a_line_and_is_cut_on_a_boundary() {
        assert_eq!(
            text("a\nb\r\u{1b}[31m", 256),
            "a\u{FFFD}b\u{FFFD}\u{FFFD}[31m"
        );
        assert_eq!(text("x\u{202E}y\u{2028}", 256), "x\u{FFFD}y\u{FFFD}");
        let long = "é".repeat(200); // 400 bytes
        let cut = text(&long, MAX_TEXT_LEN);
        assert_eq!(cut.len(), 256);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(text(&"€".repeat(100), 10).len(), 9);
    }
}
