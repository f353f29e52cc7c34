//! The paper venue: a simulated exchange whose state (keys, balances, orders) lives in
//! the service's database, so that every instance of the service sees one venue.
//!
//! This module is the **exchange**, not the adapter: it plays the part a real venue's
//! servers play. The adapter that talks to it ([`super::paper`]) is the file to copy
//! for a real exchange; nothing here is needed then.
//!
//! The venue behaves like a real one where it matters for security: every call carries
//! the API key and an HMAC-SHA256 signature over `timestamp "\n" operation "\n" body`
//! ([`signing_payload`]) made with the key's secret; the venue recomputes it (aws-lc-rs,
//! constant-time verification), refuses timestamps more than 30 s away from its clock,
//! and refuses trading calls from keys opened read-only. Withdrawals and transfers are
//! disabled for every key.
//!
//! A venue account is opened the first time the venue sees a key
//! ([`PaperVenue::open_key`], what a user does on a real venue's web site), funded with
//! 100 000 USDT, 1 BTC and 10 ETH, with the permission the key was registered with. From
//! then on the venue enforces it on every call, on every instance.
//!
//! Prices are fixed marks (BTC/USDT 50 000, ETH/USDT 3 000, SOL/USDT 150). Market orders
//! and marketable limit orders fill at once at the mark; other limit orders rest, with
//! their funds reserved, until cancelled. Amounts are exact decimals with 8 places.
//!
//! # State and concurrency
//!
//! Tables `tb_paper_keys`, `tb_paper_balances` and `tb_paper_orders` (migration
//! `50060_paper_venue.sql`, SQLite and PostgreSQL). The database holds neither the API
//! key nor the secret: a key is named by a digest of the API key, and the secret is
//! represented by an HMAC check value. The HMAC key itself is kept in the memory of the
//! process that was handed it by [`PaperVenue::open_key`] (the adapter hands it over on
//! every call, so a restarted instance or another one learns it again); a key handed
//! over with another secret than the first registration's is refused on every instance.
//!
//! Every write of an account runs in one transaction that first updates the account's
//! key row (PostgreSQL locks it; SQLite's `BEGIN IMMEDIATE` takes the write lock), so the
//! writes of one account are serialised across instances; funds are debited with a
//! conditional `UPDATE ... WHERE free >= amount`, so no two orders spend the same funds
//! and no update is lost. A key's trades and ledger are its filled orders.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use serde_json::{Map, Value, json};

use super::ExchangeError;
use crate::db::{Db, on_pool};

/// How far a request's timestamp may be from the venue's clock.
pub const MAX_SKEW_MS: i64 = 30_000;

const SCALE: i128 = 100_000_000;
/// Most orders one key may place.
const MAX_RECORDS: i64 = 10_000;
/// What a new venue account is funded with (whole units).
const FUNDING: [(&str, i64); 3] = [("USDT", 100_000), ("BTC", 1), ("ETH", 10)];

const MARKETS: [(&str, &str, &str, i128); 3] = [
    ("BTC/USDT", "BTC", "USDT", 50_000),
    ("ETH/USDT", "ETH", "USDT", 3_000),
    ("SOL/USDT", "SOL", "USDT", 150),
];

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

/// The venue's clock, milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The venue's mark price of `symbol` in minor units (1e-8); `None` for a market it
/// does not list.
#[must_use]
pub fn mark_price(symbol: &str) -> Option<u64> {
    MARKETS
        .iter()
        .find(|m| m.0 == symbol)
        .and_then(|m| u64::try_from(m.3 * SCALE).ok())
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

    /// The amount as a balance column (64 bits); `None` when it does not fit.
    fn column(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// An amount column written as a decimal integer of minor units.
    fn from_text(text: &str) -> Result<Self, ExchangeError> {
        text.parse::<i128>()
            .map(Amount)
            .map_err(|_| ExchangeError::Unavailable)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Buy,
    Sell,
}

impl Side {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

/// A market of [`MARKETS`]: symbol, base asset, quote asset, mark.
type Market = (&'static str, &'static str, &'static str, Amount);

fn market(symbol: &str) -> Option<Market> {
    MARKETS
        .iter()
        .find(|m| m.0 == symbol)
        .map(|m| (m.0, m.1, m.2, Amount(m.3 * SCALE)))
}

/// One order as stored.
#[derive(Clone, Debug)]
struct Order {
    seq: i64,
    market: Market,
    side: Side,
    kind: &'static str,
    amount: Amount,
    price: Amount,
    status: &'static str,
    created_ms: i64,
}

/// An order row: seq, symbol, side, kind, amount, price, status, created_at.
type OrderRow = (i64, String, String, String, String, String, String, i64);

const ORDER_COLUMNS: &str = "seq, symbol, side, kind, amount, price, status, created_at";

impl Order {
    fn id(&self) -> String {
        format!("paper-{}", self.seq)
    }

    fn from_row(row: OrderRow) -> Result<Self, ExchangeError> {
        let (seq, symbol, side, kind, amount, price, status, created_ms) = row;
        let corrupt = ExchangeError::Unavailable;
        Ok(Self {
            seq,
            market: market(&symbol).ok_or(corrupt.clone())?,
            side: match side.as_str() {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                _ => return Err(corrupt),
            },
            kind: match kind.as_str() {
                "market" => "market",
                "limit" => "limit",
                _ => return Err(corrupt),
            },
            amount: Amount::from_text(&amount)?,
            price: Amount::from_text(&price)?,
            status: match status.as_str() {
                "open" => "open",
                "closed" => "closed",
                "canceled" => "canceled",
                _ => return Err(corrupt),
            },
            created_ms,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "symbol": self.market.0,
            "side": self.side.as_str(),
            "type": self.kind,
            "amount": self.amount.render(),
            "price": self.price.render(),
            "status": self.status,
            "timestamp": self.created_ms,
        })
    }

    /// The asset and amount a resting order holds (reserved at creation with the same
    /// computation, so it fits).
    fn held(&self) -> (&'static str, Amount) {
        match self.side {
            Side::Buy => (
                self.market.2,
                self.amount.times(self.price).unwrap_or_default(),
            ),
            Side::Sell => (self.market.1, self.amount),
        }
    }

    /// What a filled order paid and got: `(paid asset, paid, got asset, got)`.
    fn fill(&self) -> (&'static str, Amount, &'static str, Amount) {
        let cost = self.amount.times(self.price).unwrap_or_default();
        match self.side {
            Side::Buy => (self.market.2, cost, self.market.1, self.amount),
            Side::Sell => (self.market.1, self.amount, self.market.2, cost),
        }
    }

    fn trade(&self) -> Value {
        json!({
            "order_id": self.id(), "symbol": self.market.0, "side": self.side.as_str(),
            "amount": self.amount.render(), "price": self.price.render(), "timestamp": self.created_ms,
        })
    }

    fn ledger(&self) -> [Value; 2] {
        let (paid, paid_amount, got, got_amount) = self.fill();
        [
            json!({ "asset": paid, "change": Amount(-paid_amount.0).render(), "reason": "trade", "order_id": self.id() }),
            json!({ "asset": got, "change": got_amount.render(), "reason": "trade", "order_id": self.id() }),
        ]
    }
}

/// A key this process was handed: its HMAC key, its check value and its permission.
#[derive(Clone)]
struct KnownKey {
    key: hmac::Key,
    check: Vec<u8>,
    can_trade: bool,
}

/// A transaction that writes, on either engine: SQLite's `BEGIN IMMEDIATE` takes the
/// write lock at once (a deferred transaction that reads before it writes could fail
/// instead of waiting); PostgreSQL's default isolation with row locks.
trait BeginWrite {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, Self::Database>>;
}

#[cfg(feature = "sqlite")]
impl BeginWrite for sqlx::SqlitePool {
    type Database = sqlx::Sqlite;
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

#[cfg(feature = "postgres")]
impl BeginWrite for sqlx::PgPool {
    type Database = sqlx::Postgres;
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.begin().await
    }
}

/// Any database failure: the venue is unavailable (the service fails closed).
fn down<E>(_: E) -> ExchangeError {
    ExchangeError::Unavailable
}

/// Why an order was not placed, inside its transaction.
enum Refusal {
    /// Roll back and answer this error.
    Error(ExchangeError),
    /// Roll back, note that the key has a (zero) balance of the asset, then answer
    /// `insufficient_funds` (the venue lists an asset once an order has looked at it).
    Insufficient(&'static str),
}

impl From<sqlx::Error> for Refusal {
    fn from(_: sqlx::Error) -> Self {
        Self::Error(ExchangeError::Unavailable)
    }
}

/// The simulated venue: keys, balances, orders, in the service's database. Every
/// instance of the service has one over the same tables.
pub struct PaperVenue {
    db: Db,
    /// Keys this process was handed, by key id.
    known: Mutex<HashMap<String, KnownKey>>,
}

impl fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.known.lock().map(|k| k.len()).unwrap_or(0);
        f.debug_struct("PaperVenue")
            .field("keys_in_memory", &keys)
            .finish_non_exhaustive()
    }
}

/// The venue's name of an API key: hex SHA-256 of a domain-separated key (the database
/// never holds the key).
fn key_id(api_key: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"strongroom.paper-venue.key-id\n");
    ctx.update(api_key.as_bytes());
    base16ct::lower::encode_string(ctx.finish().as_ref())
}

/// The check value of a secret: HMAC-SHA256 under the secret of a fixed message bound
/// to the key id (the database never holds the secret).
fn key_check(key: &hmac::Key, key_id: &str) -> Vec<u8> {
    hmac::sign(key, &check_message(key_id)).as_ref().to_vec()
}

impl PaperVenue {
    /// A venue over the service's database (its tables are made by the service's
    /// migrations).
    pub(crate) fn new(db: Db) -> Self {
        Self {
            db,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// A venue over a SQLite pool. [`PaperVenue::migrate`] creates its tables.
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn sqlite(pool: sqlx::SqlitePool) -> Self {
        Self::new(Db::Sqlite(pool))
    }

    /// A venue over a PostgreSQL pool. [`PaperVenue::migrate`] creates its tables.
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        Self::new(Db::Postgres(pool))
    }

    /// Applies this service's own migrations (among them the venue's tables), for a
    /// venue used without the service (tests, the fuzz target). The service applies
    /// them at start.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unavailable`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), ExchangeError> {
        match &self.db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => {
                let mut own = sqlx::migrate!("./migrations/sqlite");
                own.set_ignore_missing(true);
                own.run(pool).await.map_err(down)
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                let mut own = sqlx::migrate!("./migrations/postgres");
                own.set_ignore_missing(true);
                own.run(pool).await.map_err(down)
            }
        }
    }

    /// Opens a venue account for a key (what a user does on the venue's web site), or
    /// hands an existing key's secret to this process. Returns `false` when the key
    /// already exists (nothing is changed; a secret other than the first registration's
    /// is not accepted, and requests signed with it are refused).
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unavailable`] when the database cannot be reached.
    pub async fn open_key(
        &self,
        api_key: &str,
        secret: &str,
        can_trade: bool,
    ) -> Result<bool, ExchangeError> {
        let id = key_id(api_key);
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let check = key_check(&key, &id);
        let known = self
            .known
            .lock()
            .map_err(|_| ExchangeError::Unavailable)?
            .get(&id)
            .map(|k| k.check.clone());
        if known.is_some_and(|c| hmac::verify(&key, &check_message(&id), &c).is_ok()) {
            return Ok(false);
        }
        let check_hex = base16ct::lower::encode_string(&check);
        let now = now_ms();
        let (created, stored): (bool, Option<(String, i64)>) = on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(down)?;
            let created = sqlx::query(
                "INSERT INTO tb_paper_keys (key_id, key_check, can_trade, next_order, created_at) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&id)
            .bind(&check_hex)
            .bind(i64::from(can_trade))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(down)?
            .rows_affected()
                == 1;
            if created {
                for (asset, units) in FUNDING {
                    sqlx::query(
                        "INSERT INTO tb_paper_balances (key_id, asset, free, used) VALUES ($1, $2, $3, 0)",
                    )
                    .bind(&id)
                    .bind(asset)
                    .bind(units * 100_000_000)
                    .execute(&mut *tx)
                    .await
                    .map_err(down)?;
                }
            }
            let stored: Option<(String, i64)> = sqlx::query_as(
                "SELECT key_check, can_trade FROM tb_paper_keys WHERE key_id = $1",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(down)?;
            tx.commit().await.map_err(down)?;
            (created, stored)
        });
        let Some((stored_check, stored_can_trade)) = stored else {
            return Err(ExchangeError::Unavailable);
        };
        let matches = base16ct::lower::decode_vec(stored_check.as_bytes())
            .is_ok_and(|c| hmac::verify(&key, &check_message(&id), &c).is_ok());
        if matches {
            self.known
                .lock()
                .map_err(|_| ExchangeError::Unavailable)?
                .insert(
                    id,
                    KnownKey {
                        key,
                        check,
                        can_trade: stored_can_trade != 0,
                    },
                );
        }
        Ok(created)
    }

    /// Handles one signed request: authenticates it, checks the key's permission, runs
    /// the operation.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unauthenticated`] for an unknown key, a bad signature or a stale
    /// timestamp (the venue does not say which); [`ExchangeError::PermissionDenied`] for
    /// a trading call with a read-only key and for withdrawals;
    /// [`ExchangeError::Unavailable`] when the database cannot be reached; otherwise as
    /// the operation.
    pub async fn handle(&self, request: &SignedRequest) -> Result<Value, ExchangeError> {
        let id = key_id(&request.api_key);
        let known = self
            .known
            .lock()
            .map_err(|_| ExchangeError::Unavailable)?
            .get(&id)
            .cloned()
            .ok_or(ExchangeError::Unauthenticated)?;
        let signature = base16ct::lower::decode_vec(request.signature.as_bytes())
            .map_err(|_| ExchangeError::Unauthenticated)?;
        let payload = signing_payload(request.timestamp_ms, &request.operation, &request.body);
        hmac::verify(&known.key, &payload, &signature)
            .map_err(|_| ExchangeError::Unauthenticated)?;
        if (now_ms() - request.timestamp_ms).abs() > MAX_SKEW_MS {
            return Err(ExchangeError::Unauthenticated);
        }
        let params: Map<String, Value> = serde_json::from_str(&request.body)
            .map_err(|_| ExchangeError::InvalidParameter { field: "body" })?;
        match request.operation.as_str() {
            "ping" => Ok(json!({ "ok": true, "can_trade": known.can_trade })),
            "balance" => self.balance(&id).await,
            "open_orders" => self.orders_with(&id, |o| o.status == "open").await,
            "closed_orders" => self.orders_with(&id, |o| o.status != "open").await,
            "my_trades" => {
                let trades: Vec<Value> = self.filled(&id).await?.iter().map(Order::trade).collect();
                Ok(json!({ "trades": trades }))
            }
            "ledger" => {
                let ledger: Vec<Value> = self
                    .filled(&id)
                    .await?
                    .iter()
                    .flat_map(Order::ledger)
                    .collect();
                Ok(json!({ "ledger": ledger }))
            }
            "positions" => self.positions(&id).await,
            "create_order" | "cancel_order" | "cancel_all" | "edit_order" if !known.can_trade => {
                Err(ExchangeError::PermissionDenied)
            }
            "create_order" => self.create_order(&id, &params).await,
            "cancel_order" => self.cancel_order(&id, &params).await,
            "cancel_all" => self.cancel_all(&id).await,
            "withdraw" | "transfer" => Err(ExchangeError::PermissionDenied),
            _ => Err(ExchangeError::Unsupported),
        }
    }

    /// The key's balances by asset, `(free, used)`.
    async fn balances(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, (Amount, Amount)>, ExchangeError> {
        let rows: Vec<(String, i64, i64)> = on_pool!(&self.db, pool => sqlx::query_as(
            "SELECT asset, free, used FROM tb_paper_balances WHERE key_id = $1",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(down))?;
        Ok(rows
            .into_iter()
            .map(|(asset, free, used)| {
                (asset, (Amount(i128::from(free)), Amount(i128::from(used))))
            })
            .collect())
    }

    async fn balance(&self, id: &str) -> Result<Value, ExchangeError> {
        let balances: Map<String, Value> = self
            .balances(id)
            .await?
            .into_iter()
            .map(|(asset, (free, used))| {
                (
                    asset,
                    json!({
                        "free": free.render(),
                        "used": used.render(),
                        "total": Amount(free.0 + used.0).render(),
                    }),
                )
            })
            .collect();
        Ok(json!({ "balances": balances }))
    }

    async fn positions(&self, id: &str) -> Result<Value, ExchangeError> {
        let positions: Vec<Value> = self
            .balances(id)
            .await?
            .into_iter()
            .filter(|(asset, (free, used))| asset != "USDT" && free.0 + used.0 > 0)
            .map(|(asset, (free, used))| {
                json!({ "asset": asset, "amount": Amount(free.0 + used.0).render() })
            })
            .collect();
        Ok(json!({ "positions": positions }))
    }

    /// The key's orders, oldest first.
    async fn orders(&self, id: &str) -> Result<Vec<Order>, ExchangeError> {
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM tb_paper_orders WHERE key_id = $1 ORDER BY seq");
        let rows: Vec<OrderRow> = on_pool!(&self.db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(pool)
            .await
            .map_err(down))?;
        rows.into_iter().map(Order::from_row).collect()
    }

    async fn orders_with(
        &self,
        id: &str,
        keep: impl Fn(&Order) -> bool,
    ) -> Result<Value, ExchangeError> {
        let orders: Vec<Value> = self
            .orders(id)
            .await?
            .iter()
            .filter(|o| keep(o))
            .map(Order::to_json)
            .collect();
        Ok(json!({ "orders": orders }))
    }

    /// The key's filled orders (its trades), oldest first.
    async fn filled(&self, id: &str) -> Result<Vec<Order>, ExchangeError> {
        Ok(self
            .orders(id)
            .await?
            .into_iter()
            .filter(|o| o.status == "closed")
            .collect())
    }

    async fn create_order(
        &self,
        id: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, ExchangeError> {
        let symbol = params.get("symbol").and_then(Value::as_str);
        let market = symbol
            .and_then(market)
            .ok_or(ExchangeError::InvalidParameter { field: "symbol" })?;
        let (_, base, quote, mark) = market;
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
        let marketable = match side {
            Side::Buy => price >= mark,
            Side::Sell => price <= mark,
        };
        let fill_price = if marketable { mark } else { price };
        // Funds: the quote value for a buy (at the order's own price, the most it can
        // cost), the base amount for a sell. Checked after the order count, as ever.
        let too_large = ExchangeError::Rejected {
            code: "amount_too_large",
        };
        let needed = match side {
            Side::Buy => amount.times(price).map(|n| (quote, n)),
            Side::Sell => Some((base, amount)),
        };
        let order = Order {
            seq: 0,
            market,
            side,
            kind,
            amount,
            price: fill_price,
            status: if marketable { "closed" } else { "open" },
            created_ms: now_ms(),
        };
        let outcome: Result<Order, Refusal> = on_pool!(&self.db, pool => async {
            let mut tx = pool.begin_write().await?;
            let result: Result<Order, Refusal> = async {
                // The order number, and the account's row lock: one writer per account.
                let seq: Option<(i64,)> = sqlx::query_as(
                    "UPDATE tb_paper_keys SET next_order = next_order + 1 \
                     WHERE key_id = $1 AND next_order <= $2 RETURNING next_order - 1",
                )
                .bind(id)
                .bind(MAX_RECORDS)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((seq,)) = seq else {
                    return Err(Refusal::Error(ExchangeError::Rejected { code: "too_many_orders" }));
                };
                let (asset, needed) = needed.ok_or(Refusal::Error(too_large.clone()))?;
                // Held funds fit the balance column, or they exceed every balance.
                let Some(debit) = needed.column() else {
                    return Err(Refusal::Insufficient(asset));
                };
                let (paid, credit) = if marketable {
                    // The funds leave at once: the paid asset's free balance drops by
                    // what the fill costs (a marketable buy pays the mark, at most its
                    // own price).
                    let (paid, paid_amount, got, got_amount) = Order { seq, ..order.clone() }.fill();
                    // Both fit when the funds are there: past 64 bits, they are not.
                    let got_amount = got_amount.column().ok_or(Refusal::Insufficient(asset))?;
                    (
                        (paid, paid_amount.column().ok_or(Refusal::Insufficient(asset))?, 0_i64),
                        Some((got, got_amount)),
                    )
                } else {
                    ((asset, debit, debit), None)
                };
                let (paid_asset, paid_free, paid_used) = paid;
                // The funds must be there for the whole order (`needed`), and are taken:
                // a conditional UPDATE, so concurrent orders never spend them twice.
                let taken = sqlx::query(
                    "UPDATE tb_paper_balances SET free = free - $3, used = used + $4 \
                     WHERE key_id = $1 AND asset = $2 AND free >= $5",
                )
                .bind(id)
                .bind(paid_asset)
                .bind(paid_free)
                .bind(paid_used)
                .bind(debit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken != 1 {
                    return Err(Refusal::Insufficient(asset));
                }
                if let Some((got, got_amount)) = credit {
                    sqlx::query(
                        "INSERT INTO tb_paper_balances (key_id, asset, free, used) VALUES ($1, $2, $3, 0) \
                         ON CONFLICT (key_id, asset) DO UPDATE SET free = tb_paper_balances.free + excluded.free",
                    )
                    .bind(id)
                    .bind(got)
                    .bind(got_amount)
                    .execute(&mut *tx)
                    .await?;
                }
                let placed = Order { seq, ..order.clone() };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO tb_paper_orders (key_id, {ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                )))
                .bind(id)
                .bind(placed.seq)
                .bind(placed.market.0)
                .bind(placed.side.as_str())
                .bind(placed.kind)
                .bind(placed.amount.0.to_string())
                .bind(placed.price.0.to_string())
                .bind(placed.status)
                .bind(placed.created_ms)
                .execute(&mut *tx)
                .await?;
                Ok(placed)
            }
            .await;
            match result {
                Ok(placed) => {
                    tx.commit().await?;
                    Ok(placed)
                }
                Err(refusal) => {
                    tx.rollback().await?;
                    Err(refusal)
                }
            }
        }
        .await);
        match outcome {
            Ok(placed) => Ok(json!({ "order": placed.to_json() })),
            Err(Refusal::Error(e)) => Err(e),
            Err(Refusal::Insufficient(asset)) => {
                self.note_asset(id, asset).await?;
                Err(ExchangeError::Rejected {
                    code: "insufficient_funds",
                })
            }
        }
    }

    /// Records a zero balance of `asset` if the key has none.
    async fn note_asset(&self, id: &str, asset: &str) -> Result<(), ExchangeError> {
        on_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO tb_paper_balances (key_id, asset, free, used) VALUES ($1, $2, 0, 0) \
             ON CONFLICT (key_id, asset) DO NOTHING",
        )
        .bind(id)
        .bind(asset)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(down))
    }

    async fn cancel_order(
        &self,
        id: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, ExchangeError> {
        let order_id = params
            .get("order_id")
            .and_then(Value::as_str)
            .ok_or(ExchangeError::InvalidParameter { field: "order_id" })?;
        let not_found = ExchangeError::Rejected {
            code: "order_not_found",
        };
        // Only the ids the venue gives out ("paper-<n>", n written without leading
        // zeros) name an order.
        let seq = order_id
            .strip_prefix("paper-")
            .and_then(|n| {
                n.parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 1 && s.to_string() == n)
            })
            .ok_or(not_found.clone())?;
        let canceled = self.cancel(id, Some(seq)).await?;
        let order = canceled.first().ok_or(not_found)?;
        Ok(json!({ "order": order.to_json() }))
    }

    async fn cancel_all(&self, id: &str) -> Result<Value, ExchangeError> {
        let canceled = self.cancel(id, None).await?;
        Ok(json!({ "canceled": canceled.len() }))
    }

    /// Cancels the key's open order `seq` (or all of them) and releases the funds they
    /// held, in one transaction; the orders canceled.
    async fn cancel(&self, id: &str, seq: Option<i64>) -> Result<Vec<Order>, ExchangeError> {
        let filter = if seq.is_some() { "AND seq = $2" } else { "" };
        let sql = format!(
            "UPDATE tb_paper_orders SET status = 'canceled' \
             WHERE key_id = $1 {filter} AND status = 'open' RETURNING {ORDER_COLUMNS}"
        );
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(down)?;
            // The account's row lock first, as every write of the account.
            sqlx::query("UPDATE tb_paper_keys SET next_order = next_order WHERE key_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(down)?;
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id);
            if let Some(seq) = seq {
                query = query.bind(seq);
            }
            let rows: Vec<OrderRow> = query.fetch_all(&mut *tx).await.map_err(down)?;
            let mut canceled = rows
                .into_iter()
                .map(Order::from_row)
                .collect::<Result<Vec<_>, _>>()?;
            canceled.sort_by_key(|o| o.seq);
            for order in &canceled {
                let (asset, held) = order.held();
                let held = held.column().ok_or(ExchangeError::Unavailable)?;
                sqlx::query(
                    "UPDATE tb_paper_balances SET used = used - $3, free = free + $3 \
                     WHERE key_id = $1 AND asset = $2",
                )
                .bind(id)
                .bind(asset)
                .bind(held)
                .execute(&mut *tx)
                .await
                .map_err(down)?;
            }
            tx.commit().await.map_err(down)?;
            Ok(canceled)
        })
    }
}

/// The message [`key_check`] signs.
fn check_message(key_id: &str) -> Vec<u8> {
    format!("strongroom.paper-venue.key-check\n{key_id}").into_bytes()
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use super::*;
    use crate::exchange::paper::sign;

    fn body(v: Value) -> String {
        v.to_string()
    }

    /// A venue over a fresh SQLite file in `dir` (a second call: another instance on
    /// the same file).
    async fn venue_in(dir: &std::path::Path) -> PaperVenue {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("venue.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let venue = PaperVenue::sqlite(pool);
        venue.migrate().await.unwrap();
        venue
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

    #[tokio::test]
    async fn venue_checks_every_signature() {
        let dir = tempfile::tempdir().unwrap();
        let venue = venue_in(dir.path()).await;
        assert!(venue.open_key("key-1", "secret-1", true).await.unwrap());
        let now = now_ms();
        let good = sign("key-1", "secret-1", now, "balance", body(json!({})));
        assert!(venue.handle(&good).await.is_ok());
        // Wrong secret, tampered body, unknown key, stale timestamp, garbage signature.
        let wrong = sign("key-1", "secret-2", now, "balance", body(json!({})));
        assert_eq!(
            venue.handle(&wrong).await,
            Err(ExchangeError::Unauthenticated)
        );
        let mut tampered = sign(
            "key-1",
            "secret-1",
            now,
            "create_order",
            body(json!({"amount": "1"})),
        );
        tampered.body = body(json!({"amount": "100"}));
        assert_eq!(
            venue.handle(&tampered).await,
            Err(ExchangeError::Unauthenticated)
        );
        let unknown = sign("key-9", "secret-1", now, "balance", body(json!({})));
        assert_eq!(
            venue.handle(&unknown).await,
            Err(ExchangeError::Unauthenticated)
        );
        let stale = sign(
            "key-1",
            "secret-1",
            now - 2 * MAX_SKEW_MS,
            "balance",
            body(json!({})),
        );
        assert_eq!(
            venue.handle(&stale).await,
            Err(ExchangeError::Unauthenticated)
        );
        let mut garbage = good.clone();
        garbage.signature = "zz".into();
        assert_eq!(
            venue.handle(&garbage).await,
            Err(ExchangeError::Unauthenticated)
        );
        // Reopening an existing key changes nothing (the secret stays the first one),
        // on this instance and on another one over the same database.
        assert!(!venue.open_key("key-1", "secret-2", true).await.unwrap());
        assert_eq!(
            venue.handle(&wrong).await,
            Err(ExchangeError::Unauthenticated)
        );
        let other = venue_in(dir.path()).await;
        assert!(!other.open_key("key-1", "secret-2", true).await.unwrap());
        assert_eq!(
            other.handle(&wrong).await,
            Err(ExchangeError::Unauthenticated)
        );
        assert!(!other.open_key("key-1", "secret-1", false).await.unwrap());
        let ping = sign("key-1", "secret-1", now_ms(), "ping", body(json!({})));
        assert_eq!(
            other.handle(&ping).await.unwrap(),
            json!({"ok": true, "can_trade": true}),
            "the permission of the first registration"
        );
    }

    #[tokio::test]
    async fn the_database_holds_neither_the_key_nor_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let venue = venue_in(dir.path()).await;
        venue
            .open_key("CANARY-venue-key", "CANARY-venue-secret", true)
            .await
            .unwrap();
        let req = sign(
            "CANARY-venue-key",
            "CANARY-venue-secret",
            now_ms(),
            "create_order",
            body(json!({"symbol": "BTC/USDT", "side": "buy", "amount": "0.1"})),
        );
        venue.handle(&req).await.unwrap();
        drop(venue);
        for file in ["venue.db", "venue.db-wal"] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
            for canary in [&b"CANARY-venue-key"[..], b"CANARY-venue-secret"] {
                assert!(!bytes.windows(canary.len()).any(|w| w == canary), "{file}");
            }
        }
    }

    #[tokio::test]
    async fn read_only_keys_cannot_trade_at_the_venue() {
        let dir = tempfile::tempdir().unwrap();
        let venue = venue_in(dir.path()).await;
        venue.open_key("ro", "s", false).await.unwrap();
        let order =
            json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"});
        for op in ["create_order", "cancel_order", "cancel_all", "withdraw"] {
            let req = sign("ro", "s", now_ms(), op, body(order.clone()));
            assert_eq!(
                venue.handle(&req).await,
                Err(ExchangeError::PermissionDenied),
                "{op}"
            );
        }
        let req = sign("ro", "s", now_ms(), "balance", body(json!({})));
        assert!(venue.handle(&req).await.is_ok());
    }

    #[tokio::test]
    async fn orders_move_balances() {
        let dir = tempfile::tempdir().unwrap();
        let venue = venue_in(dir.path()).await;
        venue.open_key("k", "s", true).await.unwrap();
        let call = |op: &'static str, p: Value| {
            let req = sign("k", "s", now_ms(), op, body(p));
            let venue = &venue;
            async move { venue.handle(&req).await }
        };
        let filled = call(
            "create_order",
            json!({"symbol": "BTC/USDT", "side": "buy", "amount": "0.1"}),
        )
        .await
        .unwrap();
        assert_eq!(filled["order"]["status"], "closed");
        assert_eq!(filled["order"]["id"], "paper-1");
        let bal = call("balance", json!({})).await.unwrap();
        assert_eq!(bal["balances"]["USDT"]["free"], "95000");
        assert_eq!(bal["balances"]["BTC"]["free"], "1.1");
        let resting = call(
            "create_order",
            json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "1", "price": "40000"}),
        )
        .await
        .unwrap();
        assert_eq!(resting["order"]["status"], "open");
        let bal = call("balance", json!({})).await.unwrap();
        assert_eq!(bal["balances"]["USDT"]["used"], "40000");
        assert_eq!(bal["balances"]["USDT"]["total"], "95000");
        let id = resting["order"]["id"].as_str().unwrap().to_owned();
        let open = call("open_orders", json!({})).await.unwrap();
        assert_eq!(open["orders"][0]["id"], id.as_str());
        let canceled = call("cancel_order", json!({ "order_id": id }))
            .await
            .unwrap();
        assert_eq!(canceled["order"]["status"], "canceled");
        assert_eq!(
            call("cancel_order", json!({ "order_id": id })).await,
            Err(ExchangeError::Rejected {
                code: "order_not_found"
            })
        );
        for bad in ["paper-0", "paper-02", "paper-x", "other"] {
            assert_eq!(
                call("cancel_order", json!({ "order_id": bad })).await,
                Err(ExchangeError::Rejected {
                    code: "order_not_found"
                }),
                "{bad}"
            );
        }
        let bal = call("balance", json!({})).await.unwrap();
        assert_eq!(bal["balances"]["USDT"]["free"], "95000");
        assert_eq!(bal["balances"]["USDT"]["used"], "0");
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "buy", "amount": "100"})
            )
            .await,
            Err(ExchangeError::Rejected {
                code: "insufficient_funds"
            })
        );
        let huge = "999999999999999999.99999999";
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": huge, "price": huge})
            )
            .await,
            Err(ExchangeError::Rejected {
                code: "amount_too_large"
            })
        );
        assert!(
            call(
                "create_order",
                json!({"symbol": "BTC/USDT", "side": "sell", "type": "limit", "amount": "1", "price": huge})
            )
            .await
            .is_ok()
        );
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "DOGE/USDT", "side": "buy", "amount": "1"})
            )
            .await,
            Err(ExchangeError::InvalidParameter { field: "symbol" })
        );
        // A refused sell of an asset the account never held lists it, at zero.
        assert_eq!(
            call(
                "create_order",
                json!({"symbol": "SOL/USDT", "side": "sell", "amount": "1"})
            )
            .await,
            Err(ExchangeError::Rejected {
                code: "insufficient_funds"
            })
        );
        let bal = call("balance", json!({})).await.unwrap();
        assert_eq!(bal["balances"]["SOL"]["total"], "0");
        let positions = call("positions", json!({})).await.unwrap();
        assert_eq!(
            positions,
            json!({"positions": [{"asset": "BTC", "amount": "1.1"}, {"asset": "ETH", "amount": "10"}]})
        );
        assert_eq!(
            call("my_trades", json!({})).await.unwrap()["trades"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let ledger = call("ledger", json!({})).await.unwrap();
        assert_eq!(
            ledger["ledger"],
            json!([
                {"asset": "USDT", "change": "-5000", "reason": "trade", "order_id": "paper-1"},
                {"asset": "BTC", "change": "0.1", "reason": "trade", "order_id": "paper-1"},
            ])
        );
        assert_eq!(
            call("cancel_all", json!({})).await.unwrap(),
            json!({"canceled": 1})
        );
        let bal = call("balance", json!({})).await.unwrap();
        assert_eq!(bal["balances"]["BTC"]["free"], "1.1");
        assert_eq!(bal["balances"]["BTC"]["used"], "0");
    }

    /// Two venues over one database file (two instances of the service), orders of one
    /// account at once from both: every fill is counted, none twice, and no more is
    /// spent than the account holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_venues_on_one_database_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let a = std::sync::Arc::new(venue_in(dir.path()).await);
        let b = std::sync::Arc::new(venue_in(dir.path()).await);
        a.open_key("k", "s", true).await.unwrap();
        b.open_key("k", "s", true).await.unwrap();
        // 1 BTC: 40 sells of 0.05 from both venues at once, only 20 can fill.
        let mut tasks = Vec::new();
        for i in 0..40 {
            let venue = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let req = sign(
                    "k",
                    "s",
                    now_ms(),
                    "create_order",
                    body(json!({"symbol": "BTC/USDT", "side": "sell", "amount": "0.05"})),
                );
                venue.handle(&req).await
            }));
        }
        let mut filled = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(order) => {
                    assert_eq!(order["order"]["status"], "closed");
                    filled += 1;
                }
                Err(e) => assert_eq!(
                    e,
                    ExchangeError::Rejected {
                        code: "insufficient_funds"
                    }
                ),
            }
        }
        assert_eq!(filled, 20);
        for venue in [&a, &b] {
            let req = sign("k", "s", now_ms(), "balance", body(json!({})));
            let bal = venue.handle(&req).await.unwrap();
            assert_eq!(bal["balances"]["BTC"]["free"], "0");
            assert_eq!(bal["balances"]["USDT"]["free"], "150000");
            let req = sign("k", "s", now_ms(), "my_trades", body(json!({})));
            let trades = venue.handle(&req).await.unwrap();
            assert_eq!(trades["trades"].as_array().unwrap().len(), 20);
        }
    }
}
