//! Exchange operations and what each operation requires. The access level itself is
//! [`Level`], shared with cred-cache through `access-types`.

use core::fmt;
use core::str::FromStr;

use access_types::{Level, ParseError};

/// What an operation needs before it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// The effective level must be at least this.
    AtLeast(Level),
    /// No grant, however high, allows this operation.
    Never,
}

impl Requirement {
    /// Raises the requirement to `want` when `want` is higher; never lowers it.
    ///
    /// This is how a caller-supplied level (a `want` field in a request body, say) is
    /// applied: `max(required, want)`. `Never` stays `Never`.
    #[must_use]
    pub const fn raised_to(self, want: Option<Level>) -> Requirement {
        match (self, want) {
            (Requirement::Never, _) => Requirement::Never,
            (Requirement::AtLeast(Level::Read), Some(Level::Trade)) => {
                Requirement::AtLeast(Level::Trade)
            }
            (Requirement::AtLeast(level), _) => Requirement::AtLeast(level),
        }
    }
}

/// An operation on an exchange account.
///
/// The level an operation requires is a property of the operation ([`Operation::required`]),
/// never of the request that asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read the account balance.
    Balance,
    /// List open orders.
    OpenOrders,
    /// List closed orders.
    ClosedOrders,
    /// List the account's own trades.
    MyTrades,
    /// List open positions.
    Positions,
    /// Read the ledger (deposits, fees, funding).
    Ledger,
    /// Place an order.
    CreateOrder,
    /// Amend an open order.
    EditOrder,
    /// Cancel one order.
    CancelOrder,
    /// Cancel every open order.
    CancelAll,
    /// Withdraw funds off the exchange. Never allowed.
    Withdraw,
    /// Move funds between accounts or wallets. Never allowed.
    Transfer,
}

impl Operation {
    /// Every operation, read operations first.
    pub const ALL: [Operation; 12] = [
        Operation::Balance,
        Operation::OpenOrders,
        Operation::ClosedOrders,
        Operation::MyTrades,
        Operation::Positions,
        Operation::Ledger,
        Operation::CreateOrder,
        Operation::EditOrder,
        Operation::CancelOrder,
        Operation::CancelAll,
        Operation::Withdraw,
        Operation::Transfer,
    ];

    /// The level this operation requires; `Never` for withdraw and transfer.
    #[must_use]
    pub const fn required(self) -> Requirement {
        match self {
            Operation::Balance
            | Operation::OpenOrders
            | Operation::ClosedOrders
            | Operation::MyTrades
            | Operation::Positions
            | Operation::Ledger => Requirement::AtLeast(Level::Read),
            Operation::CreateOrder
            | Operation::EditOrder
            | Operation::CancelOrder
            | Operation::CancelAll => Requirement::AtLeast(Level::Trade),
            Operation::Withdraw | Operation::Transfer => Requirement::Never,
        }
    }

    /// The requirement after applying a caller-supplied `want`, which can only raise it.
    #[must_use]
    pub const fn required_with(self, want: Option<Level>) -> Requirement {
        self.required().raised_to(want)
    }

    /// The stable snake_case name (`"create_order"`), as logged and as parsed.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Balance => "balance",
            Operation::OpenOrders => "open_orders",
            Operation::ClosedOrders => "closed_orders",
            Operation::MyTrades => "my_trades",
            Operation::Positions => "positions",
            Operation::Ledger => "ledger",
            Operation::CreateOrder => "create_order",
            Operation::EditOrder => "edit_order",
            Operation::CancelOrder => "cancel_order",
            Operation::CancelAll => "cancel_all",
            Operation::Withdraw => "withdraw",
            Operation::Transfer => "transfer",
        }
    }

    /// Parses an operation from untrusted input, naming `field` in the error.
    ///
    /// Only the exact snake_case names of [`Operation::as_str`] are accepted.
    ///
    /// # Errors
    ///
    /// [`ParseError`] naming `field` for anything else. The error never echoes the input.
    pub fn parse_field(input: &str, field: &'static str) -> Result<Self, ParseError> {
        // Longest name is 13 bytes; anything longer cannot match, so skip the scan.
        if input.len() > 16 {
            return Err(ParseError::new(field));
        }
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == input)
            .ok_or(ParseError::new(field))
    }
}

impl FromStr for Operation {
    type Err = ParseError;

    /// Parses a snake_case operation name; the error names the field `operation`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::parse_field(s, "operation")
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trade_operations_require_trade() {
        for op in [
            Operation::CreateOrder,
            Operation::EditOrder,
            Operation::CancelOrder,
            Operation::CancelAll,
        ] {
            assert_eq!(op.required(), Requirement::AtLeast(Level::Trade), "{op}");
        }
        assert_eq!(Operation::Withdraw.required(), Requirement::Never);
        assert_eq!(Operation::Transfer.required(), Requirement::Never);
        assert_eq!(
            Operation::Balance.required(),
            Requirement::AtLeast(Level::Read)
        );
    }

    #[test]
    fn want_only_raises() {
        for op in Operation::ALL {
            for want in [None, Some(Level::Read), Some(Level::Trade)] {
                let got = op.required_with(want);
                match (op.required(), got) {
                    (Requirement::Never, g) => assert_eq!(g, Requirement::Never),
                    (Requirement::AtLeast(base), Requirement::AtLeast(g)) => {
                        assert!(g >= base, "{op} lowered by {want:?}");
                        assert_eq!(g, want.map_or(base, |w| w.max(base)));
                    }
                    (Requirement::AtLeast(_), Requirement::Never) => panic!("{op} became Never"),
                }
            }
        }
        assert_eq!(
            Operation::CreateOrder.required_with(Some(Level::Read)),
            Requirement::AtLeast(Level::Trade)
        );
    }

    #[test]
    fn parse_is_exact() {
        assert_eq!(
            "create_order".parse::<Operation>(),
            Ok(Operation::CreateOrder)
        );
        for bad in [
            "",
            "Create_Order",
            "create_order ",
            " balance",
            "CREATE_ORDER",
            "createorder",
        ] {
            let err = bad.parse::<Operation>().unwrap_err();
            assert_eq!(err.field(), "operation");
        }
        assert_eq!("trade".parse::<Level>(), Ok(Level::Trade));
        assert_eq!("Trade".parse::<Level>().unwrap_err().field(), "level");
        assert_eq!(
            Level::parse_field("admin", "want").unwrap_err().field(),
            "want"
        );
    }

    proptest! {
        #[test]
        fn names_round_trip(i in 0usize..12) {
            let op = Operation::ALL[i];
            prop_assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
        }

        #[test]
        fn arbitrary_strings_never_panic_and_never_echo(s in ".{0,40}") {
            // The message is the same whatever the input: nothing of it is echoed.
            if let Err(e) = s.parse::<Operation>() {
                prop_assert_eq!(e.to_string(), ParseError::new("operation").to_string());
            }
            if let Err(e) = s.parse::<Level>() {
                prop_assert_eq!(e.to_string(), ParseError::new("level").to_string());
            }
        }
    }
}
