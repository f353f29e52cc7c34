//! The paper exchange: an in-process simulated venue and its adapter.
//!
//! The venue ([`PaperVenue`]) behaves like a real one where it matters for security:
//! every call carries the API key and an HMAC-SHA256 signature over
//! `timestamp "\n" operation "\n" body` made with the key's secret; the venue recomputes
//! it (aws-lc-rs, constant-time verification), refuses timestamps more than 30 s away
//! from its clock, and refuses trading calls from keys opened read-only. Withdrawals and
//! transfers are disabled for every key.
//!
//! A venue account is opened the first time the venue sees a key (in
//! [`ExchangeAdapter::verify`], or at the first call after a restart of the service:
//! the venue's state is in memory), funded with 100 000 USDT, 1 BTC and 10 ETH, with the
//! permission the key was registered with, as if the user had created the key at the
//! venue with that permission. From then on the venue enforces it on every call.
//!
//! Prices are fixed marks (BTC/USDT 50 000, ETH/USDT 3 000, SOL/USDT 150). Market orders
//! and marketable limit orders fill at once at the mark; other limit orders rest, with
//! their funds reserved, until cancelled. Amounts are exact decimals with 8 places.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use cred_cache::ExchangeCredential;
use grant_policy::Operation;
use serde_json::{Map, Value, json};

use super::{ExchangeAdapter, ExchangeError};

/// How far a request's timestamp may be from the venue's clock.
pub const MAX_SKEW_MS: i64 = 30_000;

const SCALE: i128 = 100_000_000;
const MAX_RECORDS: usize = 10_000;

/// One signed request, as it would travel to a real venue.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The API key (public identifier of the key pair).
    pub api_key: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The operation name.
    pub operation: String,
    /// The JSON body (parameters).
    pub body: String,
    /// Lower-case hex HMAC-SHA256 of [`signing_payload`].
    pub signature: String,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("operation", &self.operation)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish_non_exhaustive()
    }
}

/// The bytes a request signature covers.
#[must_use]
pub fn signing_payload(timestamp_ms: i64, operation: &str, body: &str) -> Vec<u8> {
    format!("{timestamp_ms}\n{operation}\n{body}").into_bytes()
}

/// Signs a request with `secret` (what a client of a real venue does).
#[must_use]
pub fn sign(
    api_key: &str,
    secret: &str,
    timestamp_ms: i64,
    operation: &str,
    body: String,
) -> SignedRequest {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signing_payload(timestamp_ms, operation, &body));
    SignedRequest {
        api_key: api_key.to_owned(),
        timestamp_ms,
        operation: operation.to_owned(),
        body,
        signature: base16ct::lower::encode_string(tag.as_ref()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An exact decimal amount with 8 places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Amount(i128);

impl Amount {
    fn parse(field: &'static str, value: Option<&Value>) -> Result<Self, ExchangeError> {
        let bad = ExchangeError::InvalidParameter { field };
        let text = match value {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(bad),
        };
        if text.is_empty() || text.len() > 30 {
            return Err(bad);
        }
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if int.is_empty()
            || int.len() > 18
            || frac.len() > 8
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad);
        }
        let mut units: i128 = 0;
        for b in int.bytes() {
            units = units * 10 + i128::from(b - b'0');
        }
        let mut fraction: i128 = 0;
        for b in frac.bytes() {
            fraction = fraction * 10 + i128::from(b - b'0');
        }
        for _ in frac.len()..8 {
            fraction *= 10;
        }
        let amount = Amount(units * SCALE + fraction);
        if amount.0 <= 0 {
            return Err(bad);
        }
        Ok(amount)
    }

    /// `self * price`, rounded up to the 8th place (the buyer pays at least the value);
    /// `None` on overflow (client input: never a panic, never a wrap).
    fn times(self, price: Amount) -> Option<Amount> {
        let product = self.0.checked_mul(price.0)?;
        Some(Amount(product.checked_add(SCALE - 1)? / SCALE))
    }

    fn render(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        let frac = format!("{:08}", abs % scale);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            format!("{sign}{}", abs / scale)
        } else {
            format!("{sign}{}.{frac}", abs / scale)
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Balance {
    free: Amount,
    used: Amount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Debug)]
struct Order {
    id: String,
    symbol: &'static str,
    side: Side,
    kind: &'static str,
    amount: Amount,
    price: Amount,
    status: &'static str,
    created_ms: i64,
}

impl Order {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "symbol": self.symbol,
            "side": match self.side { Side::Buy => "buy", Side::Sell => "sell" },
            "type": self.kind,
            "amount": self.amount.render(),
            "price": self.price.render(),
            "status": self.status,
            "timestamp": self.created_ms,
        })
    }
}

struct VenueAccount {
    key: hmac::Key,
    can_trade: bool,
    balances: BTreeMap<&'static str, Balance>,
    orders: Vec<Order>,
    trades: Vec<Value>,
    ledger: Vec<Value>,
    next_id: u64,
}

const MARKETS: [(&str, &str, &str, i128); 3] = [
    ("BTC/USDT", "BTC", "USDT", 50_000),
    ("ETH/USDT", "ETH", "USDT", 3_000),
    ("SOL/USDT", "SOL", "USDT", 150),
];

/// The simulated venue: keys, balances, orders. Shared by every adapter handle.
#[derive(Default)]
pub struct PaperVenue {
    accounts: Mutex<HashMap<String, VenueAccount>>,
}

impl fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.accounts.lock().map(|a| a.len()).unwrap_or(0);
        f.debug_struct("PaperVenue")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl PaperVenue {
    /// An empty venue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a venue account for a new key (what a user does on the venue's web site).
    /// Returns `false` when the key already exists (nothing is changed).
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unavailable`] if the venue's state is poisoned.
    pub fn open_key(
        &self,
        api_key: &str,
        secret: &str,
        can_trade: bool,
    ) -> Result<bool, ExchangeError> {
        let mut accounts = self
            .accounts
            .lock()
            .map_err(|_| ExchangeError::Unavailable)?;
        if accounts.contains_key(api_key) {
            return Ok(false);
        }
        let mut balances = BTreeMap::new();
        for (asset, units) in [("USDT", 100_000), ("BTC", 1), ("ETH", 10)] {
            balances.insert(
                asset,
                Balance {
                    free: Amount(units * SCALE),
                    used: Amount(0),
                },
            );
        }
        accounts.insert(
            api_key.to_owned(),
            VenueAccount {
                key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
                can_trade,
                balances,
                orders: Vec::new(),
                trades: Vec::new(),
                ledger: Vec::new(),
                next_id: 1,
            },
        );
        Ok(true)
    }

    /// Handles one signed request: authenticates it, checks the key's permission, runs
    /// the operation.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unauthenticated`] for an unknown key, a bad signature or a stale
    /// timestamp (the venue does not say which); [`ExchangeError::PermissionDenied`] for
    /// a trading call with a read-only key and for withdrawals; otherwise as the
    /// operation.
    pub fn handle(&self, request: &SignedRequest) -> Result<Value, ExchangeError> {
        let mut accounts = self
            .accounts
            .lock()
            .map_err(|_| ExchangeError::Unavailable)?;
        let account = accounts
            .get_mut(&request.api_key)
            .ok_or(ExchangeError::Unauthenticated)?;
        let signature = base16ct::lower::decode_vec(request.signature.as_bytes())
            .map_err(|_| ExchangeError::Unauthenticated)?;
        let payload = signing_payload(request.timestamp_ms, &request.operation, &request.body);
        hmac::verify(&account.key, &payload, &signature)
            .map_err(|_| ExchangeError::Unauthenticated)?;
        if (now_ms() - request.timestamp_ms).abs() > MAX_SKEW_MS {
            return Err(ExchangeError::Unauthenticated);
        }
        let params: Map<String, Value> = serde_json::from_str(&request.body)
            .map_err(|_| ExchangeError::InvalidParameter { field: "body" })?;
        match request.operation.as_str() {
            "ping" => Ok(json!({ "ok": true, "can_trade": account.can_trade })),
            "balance" => Ok(account.balance()),
            "open_orders" => Ok(account.orders_with(|o| o.status == "open")),
            "closed_orders" => Ok(account.orders_with(|o| o.status != "open")),
            "my_trades" => Ok(json!({ "trades": account.trades })),
            "ledger" => Ok(json!({ "ledger": account.ledger })),
            "positions" => Ok(account.positions()),
            "create_order" | "cancel_order" | "cancel_all" | "edit_order" if !account.can_trade => {
                Err(ExchangeError::PermissionDenied)
            }
            "create_order" => account.create_order(&params),
            "cancel_order" => account.cancel_order(&params),
            "cancel_all" => Ok(account.cancel_all()),
            "withdraw" | "transfer" => Err(ExchangeError::PermissionDenied),
            _ => Err(ExchangeError::Unsupported),
        }
    }
}

impl VenueAccount {
    fn balance(&self) -> Value {
        let balances: Map<String, Value> = self
            .balances
            .iter()
            .map(|(asset, b)| {
                (
                    (*asset).to_owned(),
                    json!({
                        "free": b.free.render(),
                        "used": b.used.render(),
                        "total": Amount(b.free.0 + b.used.0).render(),
                    }),
                )
            })
            .collect();
        json!({ "balances": balances })
    }

    fn positions(&self) -> Value {
        let positions: Vec<Value> = self
            .balances
            .iter()
            .filter(|(asset, b)| **asset != "USDT" && b.free.0 + b.used.0 > 0)
            .map(|(asset, b)| json!({ "asset": asset, "amount": Amount(b.free.0 + b.used.0).render() }))
            .collect();
        json!({ "positions": positions })
    }

    fn orders_with(&self, keep: impl Fn(&Order) -> bool) -> Value {
        let orders: Vec<Value> = self
            .orders
            .iter()
            .filter(|o| keep(o))
            .map(Order::to_json)
            .collect();
        json!({ "orders": orders })
    }

    fn bal(&mut self, asset: &'static str) -> &mut Balance {
        self.balances.entry(asset).or_default()
    }

    fn create_order(&mut self, params: &Map<String, Value>) -> Result<Value, ExchangeError> {
        let symbol = params.get("symbol").and_then(Value::as_str);
        let (symbol, base, quote, mark) = MARKETS
            .iter()
            .copied()
            .find(|m| Some(m.0) == symbol)
            .ok_or(ExchangeError::InvalidParameter { field: "symbol" })?;
        let mark = Amount(mark * SCALE);
        let side = match params.get("side").and_then(Value::as_str) {
            Some("buy") => Side::Buy,
            Some("sell") => Side::Sell,
            _ => return Err(ExchangeError::InvalidParameter { field: "side" }),
        };
        let kind = match params
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("market")
        {
            "market" => "market",
            "limit" => "limit",
            _ => return Err(ExchangeError::InvalidParameter { field: "type" }),
        };
        let amount = Amount::parse("amount", params.get("amount"))?;
        let price = if kind == "limit" {
            Amount::parse("price", params.get("price"))?
        } else {
            mark
        };
        if self.orders.len() >= MAX_RECORDS {
            return Err(ExchangeError::Rejected {
                code: "too_many_orders",
            });
        }
        let marketable = match side {
            Side::Buy => price >= mark,
            Side::Sell => price <= mark,
        };
        let fill_price = if marketable { mark } else { price };
        // Funds: the quote value for a buy (at the order's own price, the most it can
        // cost), the base amount for a sell.
        let too_large = ExchangeError::Rejected {
            code: "amount_too_large",
        };
        let (asset, needed) = match side {
            Side::Buy => (quote, amount.times(price).ok_or(too_large.clone())?),
            Side::Sell => (base, amount),
        };
        if self.bal(asset).free < needed {
            return Err(ExchangeError::Rejected {
                code: "insufficient_funds",
            });
        }
        let id = format!("paper-{}", self.next_id);
        self.next_id += 1;
        let now = now_ms();
        let mut order = Order {
            id: id.clone(),
            symbol,
            side,
            kind,
            amount,
            price: fill_price,
            status: "open",
            created_ms: now,
        };
        if marketable {
            let cost = amount.times(fill_price).ok_or(too_large)?;
            let (paid, paid_amount, got, got_amount) = match side {
                Side::Buy => (quote, cost, base, amount),
                Side::Sell => (base, amount, quote, cost),
            };
            self.bal(paid).free.0 -= paid_amount.0;
            self.bal(got).free.0 += got_amount.0;
            order.status = "closed";
            self.trades.push(json!({
                "order_id": id, "symbol": symbol, "side": order.to_json()["side"],
                "amount": amount.render(), "price": fill_price.render(), "timestamp": now,
            }));
            self.ledger.push(json!({ "asset": paid, "change": Amount(-paid_amount.0).render(), "reason": "trade", "order_id": id }));
            self.ledger.push(json!({ "asset": got, "change": got_amount.render(), "reason": "trade", "order_id": id }));
        } else {
            let b = self.bal(asset);
            b.free.0 -= needed.0;
            b.used.0 += needed.0;
        }
        let out = order.to_json();
        self.orders.push(order);
        Ok(json!({ "order": out }))
    }

    fn release(&mut self, index: usize) {
        let (side, amount, price, symbol) = {
            let o = &self.orders[index];
            (o.side, o.amount, o.price, o.symbol)
        };
        let Some((_, base, quote, _)) = MARKETS.iter().copied().find(|m| m.0 == symbol) else {
            return;
        };
        let (asset, held) = match side {
            // Reserved at creation with the same computation, so it cannot fail here.
            Side::Buy => (quote, amount.times(price).unwrap_or_default()),
            Side::Sell => (base, amount),
        };
        let b = self.bal(asset);
        b.used.0 -= held.0;
        b.free.0 += held.0;
        self.orders[index].status = "canceled";
    }

    fn cancel_order(&mut self, params: &Map<String, Value>) -> Result<Value, ExchangeError> {
        let id = params
            .get("order_id")
            .and_then(Value::as_str)
            .ok_or(ExchangeError::InvalidParameter { field: "order_id" })?;
        let index = self
            .orders
            .iter()
            .position(|o| o.id == id && o.status == "open")
            .ok_or(ExchangeError::Rejected {
                code: "order_not_found",
            })?;
        self.release(index);
        Ok(json!({ "order": self.orders[index].to_json() }))
    }

    fn cancel_all(&mut self) -> Value {
        let open: Vec<usize> = (0..self.orders.len())
            .filter(|i| self.orders[*i].status == "open")
            .collect();
        for i in &open {
            self.release(*i);
        }
        json!({ "canceled": open.len() })
    }
}

/// The adapter for the paper venue: signs every call with the stored key and secret.
#[derive(Debug, Clone, Default)]
pub struct PaperExchange {
    venue: Arc<PaperVenue>,
}

impl PaperExchange {
    /// An adapter over a fresh venue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The venue behind the adapter.
    #[must_use]
    pub fn venue(&self) -> &Arc<PaperVenue> {
        &self.venue
    }

    fn signed(
        credential: &ExchangeCredential,
        operation: &str,
        params: &Map<String, Value>,
    ) -> SignedRequest {
        let body = Value::Object(params.clone()).to_string();
        sign(
            credential.expose_api_key(),
            credential.expose_secret(),
            now_ms(),
            operation,
            body,
        )
    }
}

#[async_trait]
impl ExchangeAdapter for PaperExchange {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn verify(&self, credential: &ExchangeCredential) -> Result<(), ExchangeError> {
        self.venue.open_key(
            credential.expose_api_key(),
            credential.expose_secret(),
            !credential.is_read_only(),
        )?;
        self.venue
            .handle(&Self::signed(credential, "ping", &Map::new()))
            .map(|_| ())
    }

    async fn call(
        &self,
        credential: &ExchangeCredential,
        operation: Operation,
        params: &Map<String, Value>,
    ) -> Result<Value, ExchangeError> {
        // The venue lives in memory: after a restart of the service it re-opens a key
        // registered before (fresh balances), as a real venue would still know it.
        self.venue.open_key(
            credential.expose_api_key(),
            credential.expose_secret(),
            !credential.is_read_only(),
        )?;
        self.venue
            .handle(&Self::signed(credential, operation.as_str(), params))
    }

    async fn reference_price(&self, symbol: &str) -> Result<u64, ExchangeError> {
        MARKETS
            .iter()
            .find(|m| m.0 == symbol)
            .and_then(|m| u64::try_from(m.3 * SCALE).ok())
            .ok_or(ExchangeError::InvalidParameter { field: "symbol" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn body(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn amounts_parse_exactly_and_refuse_junk() {
        let v = |s: &str| Amount::parse("amount", Some(&Value::String(s.into())));
        assert_eq!(v("0.01").unwrap(), Amount(1_000_000));
        assert_eq!(v("12").unwrap().render(), "12");
        assert_eq!(v("1.23456789").unwrap().render(), "1.23456789");
        for bad in [
            "",
            "0",
            "-1",
            "1.123456789",
            "1e3",
            ".5",
            "1.2.3",
            "abc",
            "99999999999999999999",
        ] {
            assert!(v(bad).is_err(), "{bad}");
        }
        assert!(Amount::parse("amount", Some(&json!(1))).is_err());
        assert_eq!(
            Amount(1_000_000)
                .times(Amount(50_000 * SCALE))
                .unwrap()
                .render(),
            "500"
        );
    }

    #[test]
    fn venue_checks_every_signature() {
        let venue = PaperVenue::new();
        venue.open_key("key-1", "secret-1", true).unwrap();
        let now = now_ms();
        let good = sign("key-1", "secret-1", now, "balance", body(json!({})));
        assert!(venue.handle(&good).is_ok());
        // Wrong secret, tampered body, unknown key, stale timestamp, garbage signature.
        let wrong = sign("key-1", "secret-2", now, "balance", body(json!({})));
        assert_eq!(venue.handle(&wrong), Err(ExchangeError::Unauthenticated));
        let mut tampered = sign(
            "key-1",
            "secret-1",
            now,
            "create_order",
            body(json!({"amount": "1"})),
        );
        tampered.body = body(json!({"amount": "100"}));
        assert_eq!(venue.handle(&tampered), Err(ExchangeError::Unauthenticated));
        let unknown = sign("key-9", "secret-1", now, "balance", body(json!({})));
        assert_eq!(venue.handle(&unknown), Err(ExchangeError::Unauthenticated));
        let stale = sign(
            "key-1",
            "secret-1",
            now - 2 * MAX_SKEW_MS,
            "balance",
            body(json!({})),
        );
        assert_eq!(venue.handle(&stale), Err(ExchangeError::Unauthenticated));
        let mut garbage = good.clone();
        garbage.signature = "zz".into();
        assert_eq!(venue.handle(&garbage), Err(ExchangeError::Unauthenticated));
        // Reopening an existing key changes nothing (the secret stays the first one).
        assert!(!venue.open_key("key-1", "secret-2", true).unwrap());
        assert_eq!(venue.handle(&wrong), Err(ExchangeError::Unauthenticated));
    }

    #[test]
    fn read_only_keys_cannot_trade_at_the_venue() {
        let venue = PaperVenue::new();
        venue.open_key("ro", "s", false).unwrap();
        let order =
            json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"});
        for op in ["create_order", "cancel_order", "cancel_all", "withdraw"] {
            let req = sign("ro", "s", now_ms(), op, body(order.clone()));
            assert_eq!(
                venue.handle(&req),
                Err(ExchangeError::PermissionDenied),
                "{op}"
            );
        }
        let req = sign("ro", "s", now_ms(), "balance", body(json!({})));
        assert!(venue.handle(&req).is_ok());
    }

    #[test]
    fn orders_move_balances() {
        let venue = PaperVenue::new();
        venue.open_key("k", "s", true).unwrap();
        let call = |op: &str, p: Value| venue.handle(&sign("k", "s", now_ms(), op, body(p)));
        let filled = call(
            "create_order",
            json!({"symbol": "BTC/USDT", "side": "buy", "amount": "0.1"}),
        )
        .unwrap();
        assert_eq!(filled["order"]["status"], "closed");
        let bal = call("balance", json!({})).unwrap();
        assert_eq!(bal["balances"]["USDT"]["free"], "95000");
        assert_eq!(bal["balances"]["BTC"]["free"], "1.1");
        let resting = call(
            "create_order",
            json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "1", "price": "40000"}),
        )
        .unwrap();
        assert_eq!(resting["order"]["status"], "open");
        let bal = call("balance", json!({})).unwrap();
        assert_eq!(bal["balances"]["USDT"]["used"], "40000");
        let id = resting["order"]["id"].as_str().unwrap().to_owned();
        call("cancel_order", json!({ "order_id": id })).unwrap();
        let bal = call("balance", json!({})).unwrap();
        assert_eq!(bal["balances"]["USDT"]["free"], "95000");
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "buy", "amount": "100"})
            ),
            Err(ExchangeError::Rejected {
                code: "insufficient_funds"
            })
        );
        let huge = "999999999999999999.99999999";
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": huge, "price": huge})
            ),
            Err(ExchangeError::Rejected {
                code: "amount_too_large"
            })
        );
        assert!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "sell", "type": "limit", "amount": "1", "price": huge})
            )
            .is_ok()
        );
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "DOGE/USDT", "side": "buy", "amount": "1"})
            ),
            Err(ExchangeError::InvalidParameter { field: "symbol" })
        );
        assert_eq!(
            call("my_trades", json!({})).unwrap()["trades"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let _ = params(json!({}));
    }
}
