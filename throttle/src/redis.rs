//! Redis store (feature `redis`): each decision is one Lua script (`EVALSHA`, one round
//! trip; `EVAL` once more when the server does not know the script yet). Redis runs a
//! script alone, so read-decide-write is atomic across every instance.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::{BackoffPolicy, BackoffState, Decision, Quota, Unavailable, gcra_decision, micros};

/// Longest wait for a connection or one decision before it counts as [`Unavailable`].
const TIMEOUT: Duration = Duration::from_secs(2);

/// GCRA. KEYS[1]: the key. ARGV: now, interval, span (µs). Returns {1, new tat} or {0,
/// current tat} (the caller derives remaining, reset and retry_after).
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat + interval - span > now then
  return {0, tat}
end
local new = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.max(1, math.ceil((new - now) / 1000)))
return {1, new}
";

/// The backoff wait, as `BackoffPolicy::delay_after` and `throttle_backoff_wait`.
const WAIT: &str = r"
local function wait(f, free, base, cap)
  local first = math.max(free, 1)
  if f < first then return 0 end
  return math.min(cap, base * 2 ^ math.min(f - first, 32))
end
";

/// Backoff check. KEYS[1]: the key (hash f = failures, n = next_at, x = expires_at).
/// ARGV: now, free, base, cap, forget (µs). Returns {allowed, failures, next_at,
/// expires_at}.
const CHECK: &str = r"
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'f', 'n', 'x')
if not v[1] or tonumber(v[3]) <= now then
  return {1, 0, 0, string.format('%d', now)}
end
local f = tonumber(v[1])
local n = tonumber(v[2])
local x = tonumber(v[3])
if now < n then
  return {0, f, string.format('%d', n), string.format('%d', x)}
end
if f >= math.max(free, 1) then
  n = now + wait(f + 1, free, tonumber(ARGV[3]), tonumber(ARGV[4]))
  x = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'n', string.format('%d', n), 'x', string.format('%d', x))
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5]) / 1000))
end
return {1, f, string.format('%d', n), string.format('%d', x)}
";

/// Backoff failure. Same keys and arguments; returns {failures, next_at, expires_at}.
const FAILURE: &str = r"
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'f', 'n', 'x')
local f = 0
local n = 0
if v[1] and tonumber(v[3]) > now then
  f = tonumber(v[1])
  n = tonumber(v[2])
end
f = f + 1
n = math.max(n, now + wait(f, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])))
local x = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'f', f, 'n', string.format('%d', n), 'x', string.format('%d', x))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5]) / 1000))
return {f, string.format('%d', n), string.format('%d', x)}
";

/// A Lua script and its SHA-1 (the name `EVALSHA` knows it by; not a security use).
#[derive(Debug)]
struct Script {
    source: String,
    sha: String,
}

impl Script {
    fn new(parts: &[&str]) -> Self {
        let source = parts.concat();
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            source.as_bytes(),
        );
        let sha = base16ct::lower::encode_string(digest.as_ref());
        Self { source, sha }
    }
}

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    gcra: Script,
    check: Script,
    failure: Script,
}

/// Limiter state in Redis (keys `throttle:<name>:<key>`, each with an expiry, so Redis
/// forgets idle keys by itself). Cheap to clone; one multiplexed connection, reopened on
/// the next decision after a failure.
#[derive(Clone, Debug)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Unavailable {
    Unavailable::new("redis", Some(Box::new(e)))
}

fn unavailable_bare() -> Unavailable {
    Unavailable::new("redis", None)
}

fn num(v: &redis::Value) -> Result<u64, Unavailable> {
    match v {
        redis::Value::Int(i) => u64::try_from(*i).map_err(|_| unavailable_bare()),
        redis::Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(unavailable_bare),
        _ => Err(unavailable_bare()),
    }
}

impl RedisStore {
    /// A store on the server at `url` (`redis://` or `rediss://`). Nothing is sent until
    /// the first decision.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] for a URL the client refuses.
    pub fn open(url: &str) -> Result<Self, Unavailable> {
        let client = redis::Client::open(url).map_err(|_| unavailable_bare())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection: Mutex::new(None),
                gcra: Script::new(&[GCRA]),
                check: Script::new(&[WAIT, CHECK]),
                failure: Script::new(&[WAIT, FAILURE]),
            }),
        })
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, Unavailable> {
        let mut guard = self.inner.connection.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            TIMEOUT,
            self.inner.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn drop_connection(&self) {
        *self.inner.connection.lock().await = None;
    }

    /// Runs `script` with one key and `args`: `EVALSHA`, then `EVAL` if the server lacks
    /// it. A transport failure drops the connection (the next call reconnects).
    async fn run(
        &self,
        script: &Script,
        key: &str,
        args: &[u64],
    ) -> Result<Vec<redis::Value>, Unavailable> {
        let mut conn = self.connection().await?;
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(&script.sha).arg(1).arg(key).arg(args);
        let first =
            tokio::time::timeout(TIMEOUT, evalsha.query_async::<Vec<redis::Value>>(&mut conn))
                .await;
        let result = match first {
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                let mut eval = redis::cmd("EVAL");
                eval.arg(&script.source).arg(1).arg(key).arg(args);
                tokio::time::timeout(TIMEOUT, eval.query_async::<Vec<redis::Value>>(&mut conn))
                    .await
            }
            other => other,
        };
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.drop_connection().await;
                }
                Err(unavailable(e))
            }
            Err(e) => {
                self.drop_connection().await;
                Err(unavailable(e))
            }
        }
    }

    /// `PING` within the 2 s time-out (see [`crate::Store::ping`]); a failure drops the
    /// connection, as a failed decision does.
    ///
    /// # Errors
    ///
    /// [`Unavailable`].
    pub async fn ping(&self) -> Result<(), Unavailable> {
        let mut conn = self.connection().await?;
        let answer =
            tokio::time::timeout(TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
                .await;
        match answer {
            Ok(Ok(pong)) if pong == "PONG" => Ok(()),
            Ok(Ok(_)) => Err(unavailable_bare()),
            Ok(Err(e)) => {
                self.drop_connection().await;
                Err(unavailable(e))
            }
            Err(e) => {
                self.drop_connection().await;
                Err(unavailable(e))
            }
        }
    }

    pub(crate) async fn gcra(
        &self,
        name: &str,
        key: &str,
        now: Duration,
        quota: &Quota,
    ) -> Result<Decision, Unavailable> {
        let now = micros(now);
        let v = self
            .run(
                &self.inner.gcra,
                &format!("throttle:{name}:{key}"),
                &[now, quota.interval_us, quota.span_us()],
            )
            .await?;
        let [allowed, tat] = v.as_slice() else {
            return Err(unavailable_bare());
        };
        Ok(gcra_decision(num(allowed)? == 1, num(tat)?, now, quota))
    }

    fn backoff_args(now: u64, policy: &BackoffPolicy) -> [u64; 5] {
        [
            now,
            u64::from(policy.free_failures),
            policy.base_us,
            policy.cap_us,
            policy.forget_us,
        ]
    }

    pub(crate) async fn backoff_check(
        &self,
        name: &str,
        key: &str,
        now: u64,
        policy: &BackoffPolicy,
    ) -> Result<BackoffState, Unavailable> {
        let v = self
            .run(
                &self.inner.check,
                &format!("throttle:{name}:{key}"),
                &Self::backoff_args(now, policy),
            )
            .await?;
        let [allowed, failures, next_at, expires_at] = v.as_slice() else {
            return Err(unavailable_bare());
        };
        Ok(BackoffState {
            allowed: num(allowed)? == 1,
            failures: num(failures)?,
            next_at: num(next_at)?,
            expires_at: num(expires_at)?,
        })
    }

    pub(crate) async fn backoff_failure(
        &self,
        name: &str,
        key: &str,
        now: u64,
        policy: &BackoffPolicy,
    ) -> Result<BackoffState, Unavailable> {
        let v = self
            .run(
                &self.inner.failure,
                &format!("throttle:{name}:{key}"),
                &Self::backoff_args(now, policy),
            )
            .await?;
        let [failures, next_at, expires_at] = v.as_slice() else {
            return Err(unavailable_bare());
        };
        Ok(BackoffState {
            allowed: false,
            failures: num(failures)?,
            next_at: num(next_at)?,
            expires_at: num(expires_at)?,
        })
    }

    pub(crate) async fn backoff_reset(&self, name: &str, key: &str) -> Result<(), Unavailable> {
        let mut conn = self.connection().await?;
        let mut del = redis::cmd("DEL");
        del.arg(format!("throttle:{name}:{key}"));
        match tokio::time::timeout(TIMEOUT, del.query_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.drop_connection().await;
                Err(unavailable(e))
            }
            Err(e) => {
                self.drop_connection().await;
                Err(unavailable(e))
            }
        }
    }
}
