//! Orders, as `POST /api/exchange/create_order` and a copy-trading signal give them:
//! the fields parsed into exact minor units, the value the risk limits are checked
//! against, the venue's parameters, and what the venue reports as spent.
//!
//! Amounts and prices are decimal strings or JSON numbers, read exactly as the digits
//! they spell (module `risk`: at most 8 places, no sign, no exponent, never a float).

use cred_cache::{CredCache, FetchError};
use grant_policy::{Level, Notional, Operation, Permit, Reservation, RiskGuard};
use serde_json::{Map, Value, json};

use super::body::Body;
use super::error::ApiError;
use super::risk::{notional, parse_decimal, render_decimal};
use crate::exchange::{ExchangeAdapter, ExchangeError};

/// Longest symbol, bytes.
const MAX_SYMBOL: usize = 32;

/// An order's fields, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) symbol: String,
    /// `buy` or `sell`.
    pub(crate) side: &'static str,
    /// `market` or `limit`, as given.
    pub(crate) kind: &'static str,
    /// Minor units (1e-8).
    pub(crate) amount: u64,
    /// Minor units (1e-8): the limit price, or for a market order an optional bound.
    pub(crate) price: Option<u64>,
}

/// Whether a market order must carry a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Price {
    /// Only limit orders (the API: a market order is valued at the venue's price).
    ForLimit,
    /// Every order (a copy-trading signal: its price is the bound the followers'
    /// limits are checked against).
    Always,
}

impl Order {
    /// Reads `symbol`, `side`, `type` (default `market`; required with
    /// [`Price::Always`]), `amount` and `price` from a body; 400 naming the first refused
    /// field.
    pub(crate) fn parse(body: &Body, price: Price) -> Result<Self, ApiError> {
        let symbol = body.str("symbol", MAX_SYMBOL)?;
        if !symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"/:-_".contains(&b))
        {
            return Err(ApiError::Field("symbol"));
        }
        let side = match body.str("side", 8)? {
            "buy" => "buy",
            "sell" => "sell",
            _ => return Err(ApiError::Field("side")),
        };
        let kind = match body.opt_str("type", 8)? {
            None if price == Price::Always => return Err(ApiError::Field("type")),
            None | Some("market") => "market",
            Some("limit") => "limit",
            Some(_) => return Err(ApiError::Field("type")),
        };
        let amount = body.positive_decimal("amount")?;
        let price = match (kind, price) {
            ("limit", _) | (_, Price::Always) => Some(body.positive_decimal("price")?),
            _ => body.opt_positive_decimal("price")?,
        };
        let order = Self {
            symbol: symbol.to_owned(),
            side,
            kind,
            amount,
            price,
        };
        // Every order's claimed value must be representable.
        if let Some(p) = order.price {
            notional(order.amount, p).ok_or(ApiError::Field("amount"))?;
        }
        Ok(order)
    }

    /// The value the risk limits are checked against, for the order as it is sent
    /// (`as_limit`: sent as a limit order at `price`, as copy trading does).
    ///
    /// A limit buy never costs more than `amount * price`. Anything that fills at the
    /// venue's price (a market order, a limit sell, which fills at its price or better)
    /// is valued at `amount * max(price, the venue's reference price)`, so a low claimed
    /// price cannot pass the limits and then trade at the market. Without a reference
    /// price such an order is refused (fails closed).
    pub(crate) async fn value(
        &self,
        adapter: &dyn ExchangeAdapter,
        as_limit: bool,
    ) -> Result<Notional, ExchangeError> {
        let invalid = ExchangeError::InvalidParameter { field: "amount" };
        if self.side == "buy"
            && (as_limit || self.kind == "limit")
            && let Some(price) = self.price
        {
            return notional(self.amount, price).ok_or(invalid);
        }
        let reference = adapter.reference_price(&self.symbol).await?;
        notional(self.amount, self.price.unwrap_or(0).max(reference)).ok_or(invalid)
    }

    /// The order's fields, re-rendered (for a dry run's answer and signal records).
    pub(crate) fn summary(&self) -> Value {
        let mut v = json!({
            "symbol": self.symbol,
            "side": self.side,
            "type": self.kind,
            "amount": render_decimal(self.amount),
        });
        if let Some(p) = self.price {
            v["price"] = json!(render_decimal(p));
            if let Some(n) = notional(self.amount, p) {
                v["notional"] = json!(render_decimal(n.minor_units()));
            }
        }
        v
    }

    /// The venue's parameters: validated fields only, re-rendered as decimal strings;
    /// with `as_limit`, a limit order at `price` whatever the given type.
    pub(crate) fn params(&self, as_limit: bool) -> Map<String, Value> {
        let kind = if as_limit { "limit" } else { self.kind };
        let mut p = Map::new();
        p.insert("symbol".into(), json!(self.symbol));
        p.insert("side".into(), json!(self.side));
        p.insert("type".into(), json!(kind));
        p.insert("amount".into(), json!(render_decimal(self.amount)));
        if let Some(price) = self.price {
            p.insert("price".into(), json!(render_decimal(price)));
        }
        p
    }
}

/// What the venue reports as really spent: `amount * price` of the placed order, never
/// less than what was reserved (an open limit order counts in full).
pub(crate) fn spent(reserved: Notional, placed: &Value) -> Notional {
    let order = &placed["order"];
    let actual = order["amount"]
        .as_str()
        .and_then(parse_decimal)
        .zip(order["price"].as_str().and_then(parse_decimal))
        .and_then(|(a, p)| notional(a, p));
    actual.map_or(reserved, |a| a.max(reserved))
}

/// How a live order ended, after [`place_reserved`] settled its reservation.
#[derive(Debug)]
pub(crate) enum Placed {
    /// The venue took it: its answer (the reservation committed with what it spent).
    Ok(Value),
    /// The credential could not be fetched (the reservation released).
    NoCredential(FetchError),
    /// The venue could not be reached: the order may have gone through, so the
    /// reservation is committed in full (fails closed: less room under the cap).
    VenueUnavailable,
    /// The venue refused the order (the reservation released).
    Refused(ExchangeError),
}

/// Places an order the risk guard admitted live: fetches the credential with `permit`
/// (grant-policy's, spent here; at trade level, so a read permit is refused), sends the
/// order, and settles `reservation` on every path (see [`Placed`]). A settlement the
/// store refuses leaves the amount reserved for the day (less room, never more) and is
/// logged with `code` `order.settle_failed`.
pub(crate) async fn place_reserved(
    risk: &RiskGuard,
    reservation: Reservation,
    cache: &CredCache,
    permit: Permit,
    adapter: &dyn ExchangeAdapter,
    params: &Map<String, Value>,
) -> Placed {
    let account = permit.account().clone();
    let account = account.as_str();
    let release = |r| async {
        if risk.release(r).await.is_err() {
            tracing::warn!(code = "order.settle_failed", account_id = %account, "reservation not released (stays held: fails closed)");
        }
    };
    let credential = match cache.get_or_fetch(permit, Level::Trade).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(code = e.code(), account_id = %account, "order: credential fetch failed");
            release(reservation).await;
            return Placed::NoCredential(e);
        }
    };
    let result = adapter
        .call(&credential, Operation::CreateOrder, params)
        .await;
    drop(credential);
    match result {
        Ok(placed) => {
            let spent = spent(reservation.amount(), &placed);
            if risk.commit(reservation, spent).await.is_err() {
                tracing::warn!(code = "order.settle_failed", account_id = %account, "order placed, reservation not committed (stays held: fails closed)");
            }
            Placed::Ok(placed)
        }
        Err(ExchangeError::Unavailable) => {
            let amount = reservation.amount();
            if risk.commit(reservation, amount).await.is_err() {
                tracing::warn!(code = "order.settle_failed", account_id = %account, "reservation not committed (stays held: fails closed)");
            }
            Placed::VenueUnavailable
        }
        Err(e) => {
            release(reservation).await;
            Placed::Refused(e)
        }
    }
}
