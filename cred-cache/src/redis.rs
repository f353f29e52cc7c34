//! Cross-instance invalidation over Redis pub/sub.
//!
//! Every instance of the service subscribes to one channel; an invalidation
//! made through any instance's [`CredCache`] is applied locally and then
//! published (message format: [`crate::invalidation`]). Receivers apply it
//! with [`CredCache::apply_message`].
//!
//! * **The cache works without Redis.** Publishing failures are returned to the
//!   caller of [`CredCache::invalidate`] (local invalidation has happened); the
//!   TTL (at most 60 s) bounds how long another instance can keep a copy.
//! * **Reconnects with backoff**: the subscriber retries with exponential
//!   backoff from 100 ms to 5 s, with jitter, and checks a live connection with
//!   a `PING` every 5 s.
//! * **A gap fails closed**: messages published while a subscriber is
//!   disconnected are lost (pub/sub does not queue). The subscriber drops the
//!   whole local cache as soon as it finds the connection gone, again after
//!   every failed reconnection attempt (so while Redis is unreachable no entry
//!   lives longer than one backoff, at most 7.5 s), and once more when it has
//!   resubscribed. A message that does not decode also drops everything.
//!
//! ```no_run
//! # async fn example(source: std::sync::Arc<dyn cred_cache::CredentialSource>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use cred_cache::{CredCache, redis::RedisInvalidation};
//!
//! let bus = RedisInvalidation::new("redis://127.0.0.1:6379", "strongroom:cred-cache")?;
//! let cache = CredCache::builder(source).publisher(bus.publisher()).build()?;
//! let subscription = bus.subscribe(&cache); // keep it alive as long as the cache
//! # drop(subscription);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Mutex, watch};

use crate::cache::CredCache;
use crate::error::{ConfigError, PublishError};
use crate::invalidation::{Invalidation, InvalidationMessage, InvalidationPublisher};

/// Timeout for connecting and for one command.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// First reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Period of the liveness `PING` on the subscription connection.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Longest accepted channel name.
const MAX_CHANNEL_LEN: usize = 256;

/// A Redis server and a channel: makes publishers and subscriptions.
#[derive(Clone)]
pub struct RedisInvalidation {
    client: redis::Client,
    channel: Arc<str>,
}

impl fmt::Debug for RedisInvalidation {
    // The URL may hold a password: print the channel only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidation")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisInvalidation {
    /// Configures the bus. Nothing connects until a message is published or a
    /// subscription starts.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] for an unparsable `url` or a channel that
    /// is empty, longer than 256 bytes or not visible ASCII.
    pub fn new(url: &str, channel: &str) -> Result<Self, ConfigError> {
        if channel.is_empty()
            || channel.len() > MAX_CHANNEL_LEN
            || !channel.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::InvalidField {
                field: "channel",
                reason: "must be 1 to 256 bytes of visible ASCII",
            });
        }
        let client = redis::Client::open(url).map_err(|_| ConfigError::InvalidField {
            field: "redis_url",
            reason: "not a valid Redis URL",
        })?;
        Ok(Self {
            client,
            channel: Arc::from(channel),
        })
    }

    /// A publisher for [`CredCacheBuilder::publisher`](crate::CredCacheBuilder::publisher).
    #[must_use]
    pub fn publisher(&self) -> Arc<dyn InvalidationPublisher> {
        Arc::new(RedisPublisher {
            client: self.client.clone(),
            channel: Arc::clone(&self.channel),
            connection: Mutex::new(None),
        })
    }

    /// Starts a task on the current Tokio runtime that applies every message
    /// on the channel to `cache`, reconnecting forever. The task holds a clone
    /// of the cache and stops when the returned [`Subscription`] is dropped.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (as [`tokio::spawn`]).
    #[must_use]
    pub fn subscribe(&self, cache: &CredCache) -> Subscription {
        let (connected_tx, connected_rx) = watch::channel(false);
        let task = tokio::spawn(subscriber(
            self.client.clone(),
            Arc::clone(&self.channel),
            cache.clone(),
            connected_tx,
        ));
        Subscription {
            task: task.abort_handle(),
            connected: connected_rx,
        }
    }
}

/// Publishes invalidations with `PUBLISH`; reconnects on the next message
/// after a failure.
struct RedisPublisher {
    client: redis::Client,
    channel: Arc<str>,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl fmt::Debug for RedisPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPublisher")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisPublisher {
    async fn try_publish(&self, payload: &[u8]) -> Result<(), ()> {
        let mut guard = self.connection.lock().await;
        let mut connection = match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = tokio::time::timeout(
                    IO_TIMEOUT,
                    self.client.get_multiplexed_async_connection(),
                )
                .await
                .map_err(drop)?
                .map_err(drop)?;
                *guard = Some(c.clone());
                c
            }
        };
        let sent = tokio::time::timeout(
            IO_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&*self.channel)
                .arg(payload)
                .query_async::<i64>(&mut connection),
        )
        .await;
        if matches!(sent, Ok(Ok(_))) {
            Ok(())
        } else {
            *guard = None;
            Err(())
        }
    }
}

#[async_trait]
impl InvalidationPublisher for RedisPublisher {
    async fn publish(&self, message: &InvalidationMessage) -> Result<(), PublishError> {
        let payload = message.encode();
        // One retry on a fresh connection: the cached one may have died.
        for _ in 0..2 {
            if self.try_publish(&payload).await.is_ok() {
                return Ok(());
            }
        }
        tracing::warn!(code = "cred_cache.redis.publish_failed", channel = %self.channel, "publish failed");
        Err(PublishError::Transport)
    }
}

/// A running subscription. Dropping it stops the subscriber task.
pub struct Subscription {
    task: tokio::task::AbortHandle,
    connected: watch::Receiver<bool>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("connected", &*self.connected.borrow())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Whether the subscriber is currently subscribed.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until the subscriber is subscribed, at most `timeout`. Returns
    /// whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::Instant::now());
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(r % max_ms)
}

async fn subscriber(
    client: redis::Client,
    channel: Arc<str>,
    cache: CredCache,
    connected: watch::Sender<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Ok(()) = subscribe_once(&client, &channel, &cache, &connected, &mut backoff).await {
            // Connection ended after a successful subscription.
            tracing::warn!(code = "cred_cache.redis.disconnected", channel = %channel, "subscription lost");
        } else {
            tracing::warn!(code = "cred_cache.redis.connect_failed", channel = %channel, "cannot subscribe");
        }
        connected.send_replace(false);
        // Revocations published from now on do not reach this instance: drop what it
        // holds now and after each failed attempt, rather than serve it for a whole TTL.
        cache.invalidate_local(&Invalidation::All).await;
        tokio::time::sleep(backoff + jitter(backoff / 2)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, subscribe, drop the cache (gap), apply
/// messages until the connection fails. `Err` when it never subscribed.
async fn subscribe_once(
    client: &redis::Client,
    channel: &str,
    cache: &CredCache,
    connected: &watch::Sender<bool>,
    backoff: &mut Duration,
) -> Result<(), ()> {
    let pubsub = tokio::time::timeout(IO_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(drop)?
        .map_err(drop)?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(IO_TIMEOUT, sink.subscribe(channel))
        .await
        .map_err(drop)?
        .map_err(drop)?;
    // Anything published while we were not subscribed is lost: fail closed.
    cache.invalidate_local(&Invalidation::All).await;
    connected.send_replace(true);
    *backoff = MIN_BACKOFF;
    tracing::info!(code = "cred_cache.redis.subscribed", channel = %channel, "subscribed");
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return Ok(()) };
                match InvalidationMessage::decode(message.get_payload_bytes()) {
                    Ok(m) => cache.apply_message(&m).await,
                    Err(_) => {
                        tracing::warn!(code = "cred_cache.redis.bad_message", channel = %channel,
                            "undecodable invalidation message: dropping every entry");
                        cache.invalidate_local(&Invalidation::All).await;
                    }
                }
            }
            _ = ping.tick() => {
                let pong = tokio::time::timeout(IO_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return Ok(());
                }
            }
        }
    }
}
