//! The access level on an exchange account.

use core::fmt;
use core::str::FromStr;

use crate::error::ParseError;

/// An access level on an exchange account. `Read < Trade`.
///
/// `Trade` implies `Read`: a user who may place orders may also see the balance. There
/// is deliberately no level that moves funds off an account (withdraw, transfer): no
/// grant, permit or credential fetch can name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// See balances, orders, trades, positions and the ledger: nothing that moves money.
    Read,
    /// Everything `Read` allows, plus creating, editing and cancelling orders.
    Trade,
}

impl Level {
    /// Both levels, lowest first.
    pub const ALL: [Level; 2] = [Level::Read, Level::Trade];

    /// The stable snake_case name (`"read"`, `"trade"`), as stored, sent and parsed.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Trade => "trade",
        }
    }

    /// Whether this level covers `other` (`self >= other`): a `Trade` grant covers a
    /// `Read` use, never the reverse.
    #[must_use]
    pub const fn covers(self, other: Level) -> bool {
        self as u8 >= other as u8
    }

    /// Parses a level from untrusted input, naming `field` in the error.
    ///
    /// Only the exact names `"read"` and `"trade"` are accepted: no trimming, no case
    /// folding, so two spellings can never mean the same thing to two components.
    ///
    /// # Errors
    ///
    /// [`ParseError`] naming `field` when the input is not one of the two names. The
    /// error never echoes the input.
    pub fn parse_field(input: &str, field: &'static str) -> Result<Self, ParseError> {
        match input {
            "read" => Ok(Level::Read),
            "trade" => Ok(Level::Trade),
            _ => Err(ParseError::new(field)),
        }
    }
}

impl FromStr for Level {
    type Err = ParseError;

    /// Parses `"read"` or `"trade"`; the error names the field `level`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::parse_field(s, "level")
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_are_ordered_and_parse_exactly() {
        assert!(Level::Read < Level::Trade);
        assert!(Level::Trade.covers(Level::Read));
        assert!(Level::Trade.covers(Level::Trade));
        assert!(!Level::Read.covers(Level::Trade));
        assert_eq!("trade".parse::<Level>(), Ok(Level::Trade));
        assert_eq!(Level::Read.to_string(), "read");
        for bad in ["", "Trade", "READ", " read", "trade ", "withdraw", "admin"] {
            assert_eq!(bad.parse::<Level>().unwrap_err().field(), "level");
        }
        assert_eq!(
            Level::parse_field("admin", "want").unwrap_err().field(),
            "want"
        );
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_echo(s in ".{0,40}") {
            if let Err(e) = s.parse::<Level>() {
                prop_assert_eq!(e.to_string(), ParseError::new("level").to_string());
            }
        }
    }
}
