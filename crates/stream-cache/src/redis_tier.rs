//! The Redis tier: rows shared between processes, never trusted over an invalidation.
//!
//! Keys (`db` and `table` with `%`, `.` and `:` percent-escaped):
//!
//! | key | value |
//! | --- | --- |
//! | `{prefix}:{db}.{table}:{key JSON}` | `{floor}\|{global token}/{namespace token}\|{row}` or the tombstone `{floor}\|~`, with the tier's TTL |
//! | `{prefix}:clock` | the invalidation clock, a counter |
//! | `{prefix}:gen:{db}.{table}` | the namespace's token |
//! | `{prefix}:gen` | the global token |
//!
//! A key is invalidated by a script that increments the clock and leaves a tombstone whose
//! `floor` is the new clock value. A process reads the clock with every lookup (one `MGET`
//! answers the clock, the tokens and the row), and a fill carries the clock value seen before
//! its store read: the fill script refuses it if the key's floor is above, because an
//! invalidation then happened after the read began, in whichever process applied it. A write
//! through the streamer also moves the clock and raises the floor, so that fills which read
//! before the write can no longer land over it. Rows keep the floor of what they replaced.
//!
//! A namespace (or everything) is invalidated by replacing its token with a fresh random one:
//! a row is served only if the tokens it was written under are still the current ones, so no
//! `SCAN` is ever needed. A missing token is created (`SET NX`) rather than taken as a value, so
//! a flushed or evicted token can never make old rows valid again.
//!
//! When an invalidation cannot reach Redis (error, timeout, no connection), the tier stops
//! serving until it could replace the global token, which drops every row it holds. One Redis
//! server is expected (the scripts touch two keys, which Redis Cluster would refuse).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{Value as J, json};
use stream_core::{Namespace, Row, redact_url};

use crate::cache::Counters;
use crate::codec::decode::decode_row;
use crate::codec::encode_row;
use crate::error::CacheError;
use crate::remote::{RemoteTag, RemoteTier, StoreMode};

/// A Redis tier behind the local one: rows missing locally are looked up there before the
/// store, and every row cached locally is stored there too, so that processes sharing it
/// share their reads. See the crate documentation for how it stays fresh.
#[derive(Clone, PartialEq)]
pub struct RedisTier {
    /// `redis://[user][:password@]host[:port][/db]` (or `rediss://`).
    pub url: String,
    /// Prefix of every key this cache writes. Default `ustream`.
    pub prefix: String,
    /// How long a row lives in Redis. Default 5 minutes.
    pub ttl: Duration,
    /// The longest wait for Redis (connecting or one command) before falling back to the
    /// store. Default 250 ms.
    pub timeout: Duration,
}

impl RedisTier {
    /// A tier at `url` with the default prefix, TTL and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "ustream".to_owned(),
            ttl: Duration::from_secs(300),
            timeout: Duration::from_millis(250),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), CacheError> {
        let err = |field, reason: String| Err(CacheError::Config { field, reason });
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            let reason = scrub(&e.to_string(), &self.url);
            return err(
                "cache.redis.url",
                format!(
                    "must be a Redis URL like redis://[:password@]host[:port][/db], not {}: {reason}",
                    stream_core::redact_url(&self.url)
                ),
            );
        }
        if self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return err(
                "cache.redis.prefix",
                "must be non-empty, without spaces or control characters".to_owned(),
            );
        }
        if self.ttl < Duration::from_millis(1) || self.ttl > crate::config::MAX_TTL {
            return err(
                "cache.redis.ttl",
                "must be between 1 ms and 10 years".to_owned(),
            );
        }
        if self.timeout.is_zero() {
            return err("cache.redis.timeout", "must be longer than zero".to_owned());
        }
        Ok(())
    }
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &stream_core::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `msg` without the URL's password (and without the URL itself, shown redacted instead).
pub(crate) fn scrub(msg: &str, url: &str) -> String {
    let mut out = msg.replace(url, &redact_url(url));
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(creds, _)| creds.split_once(':'))
        .map(|(_, password)| password);
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        out = out.replace(password, "***");
    }
    out
}

/// `{global}/{namespace}`: the tokens a row is stored under, as its entry holds them.
fn tokens(tag: &RemoteTag) -> String {
    format!("{}/{}", tag.global, tag.ns)
}

/// What this process last saw in Redis.
#[derive(Default)]
struct Memo {
    clock: Option<u64>,
    global: Option<Arc<str>>,
    namespaces: HashMap<Namespace, Arc<str>>,
}

/// Stores a row unless the key was invalidated after the writer's clock reading.
/// KEYS: data, clock. ARGV: clock seen, `{tokens}|{row}`, TTL in ms, `fill` or `write`.
/// A `write` moves the clock and raises the floor to it (a refused write leaves a tombstone).
/// Returns whether it stored, and the clock.
const STORE_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
local floor = 0
if cur then floor = tonumber(string.match(cur, '^(%d+)|')) or 0 end
local write = ARGV[4] == 'write'
if tonumber(ARGV[1]) < floor then
  if write then
    local c = math.max(redis.call('INCR', KEYS[2]), floor)
    redis.call('SET', KEYS[1], c .. '|~', 'PX', ARGV[3])
    return {0, c}
  end
  return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if write then floor = math.max(redis.call('INCR', KEYS[2]), floor) end
redis.call('SET', KEYS[1], floor .. '|' .. ARGV[2], 'PX', ARGV[3])
return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
";

/// Invalidates a key: moves the clock and leaves a tombstone with the new value as floor.
/// KEYS: data, clock. ARGV: TTL in ms. Returns the clock.
const INVALIDATE_SCRIPT: &str = r"
local c = redis.call('INCR', KEYS[2])
local cur = redis.call('GET', KEYS[1])
if cur then
  local f = tonumber(string.match(cur, '^(%d+)|')) or 0
  if f > c then c = f end
end
redis.call('SET', KEYS[1], c .. '|~', 'PX', ARGV[1])
return c
";

struct ConnState {
    conn: Option<MultiplexedConnection>,
    connecting: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
}

/// Clears `connecting` when a connection attempt ends, even by cancellation.
struct Connecting<'a>(&'a Mutex<ConnState>);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        lock(self.0).connecting = false;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn escape(out: &mut String, name: &str) {
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
}

/// A fresh token, unique across processes for all practical purposes.
fn new_token() -> Arc<str> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    format!("{:016x}", h.finish()).into()
}

/// One process's view of the Redis tier.
pub(crate) struct RedisL2 {
    client: redis::Client,
    url: String,
    shown_url: String,
    prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    state: Mutex<ConnState>,
    memo: Mutex<Memo>,
    needs_reset: AtomicBool,
    counters: Arc<Counters>,
}

impl RedisL2 {
    /// Opens the tier and tries to connect once; an unreachable server is logged and retried
    /// later, never an error.
    pub(crate) async fn connect(
        tier: &RedisTier,
        counters: Arc<Counters>,
    ) -> Result<Self, CacheError> {
        let client = redis::Client::open(tier.url.as_str()).map_err(|e| CacheError::Config {
            field: "cache.redis.url",
            reason: scrub(&e.to_string(), &tier.url),
        })?;
        let l2 = Self {
            client,
            url: tier.url.clone(),
            shown_url: redact_url(&tier.url),
            prefix: tier.prefix.clone(),
            ttl_ms: u64::try_from(tier.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            timeout: tier.timeout,
            state: Mutex::new(ConnState {
                conn: None,
                connecting: false,
                retry_at: None,
                backoff: MIN_BACKOFF,
                last_error: None,
            }),
            memo: Mutex::new(Memo::default()),
            needs_reset: AtomicBool::new(false),
            counters,
        };
        l2.conn().await;
        Ok(l2)
    }

    fn data_key(&self, ns: &Namespace, key_json: &str) -> String {
        let mut k = String::with_capacity(
            self.prefix.len() + ns.db.len() + ns.table.len() + key_json.len() + 3,
        );
        k.push_str(&self.prefix);
        k.push(':');
        escape(&mut k, &ns.db);
        k.push('.');
        escape(&mut k, &ns.table);
        k.push(':');
        k.push_str(key_json);
        k
    }

    fn ns_gen_key(&self, ns: &Namespace) -> String {
        let mut k = format!("{}:gen:", self.prefix);
        escape(&mut k, &ns.db);
        k.push('.');
        escape(&mut k, &ns.table);
        k
    }

    fn global_gen_key(&self) -> String {
        format!("{}:gen", self.prefix)
    }

    fn clock_key(&self) -> String {
        format!("{}:clock", self.prefix)
    }

    /// A reading of the clock: every invalidation up to it is done.
    fn saw_clock(&self, clock: u64) {
        lock(&self.memo).clock = Some(clock);
    }

    fn remember(&self, ns: &Namespace, clock: u64, global: &str, ns_token: &str) {
        let mut memo = lock(&self.memo);
        // The last reading, not the highest: should the counter ever restart (a flush),
        // readings go down with it.
        memo.clock = Some(clock);
        if memo.global.as_deref() != Some(global) {
            memo.global = Some(global.into());
        }
        match memo.namespaces.get_mut(ns) {
            Some(t) if &**t == ns_token => {}
            Some(t) => *t = ns_token.into(),
            None => {
                memo.namespaces.insert(ns.clone(), ns_token.into());
            }
        }
    }

    fn failed(&self, op: &'static str, reason: &str, drop_connection: bool) {
        self.counters.redis_errors.fetch_add(1, Ordering::Relaxed);
        let reason = scrub(reason, &self.url);
        tracing::warn!(
            op,
            redis = %self.shown_url,
            error = %reason,
            "redis tier failed; falling back to the local tier and the store"
        );
        let mut st = lock(&self.state);
        st.last_error = Some(reason);
        if drop_connection {
            st.conn = None;
        }
    }

    async fn conn(&self) -> Option<MultiplexedConnection> {
        {
            let mut st = lock(&self.state);
            if let Some(conn) = &st.conn {
                return Some(conn.clone());
            }
            if st.connecting || st.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            st.connecting = true;
        }
        let attempt = Connecting(&self.state);
        let result =
            tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
                .await;
        drop(attempt);
        let error = match result {
            Ok(Ok(conn)) => {
                let mut st = lock(&self.state);
                st.backoff = MIN_BACKOFF;
                st.retry_at = None;
                if st.last_error.take().is_some() {
                    tracing::info!(redis = %self.shown_url, "redis tier connected again");
                }
                st.conn = Some(conn.clone());
                return Some(conn);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {:?}", self.timeout),
        };
        self.failed("connect", &error, true);
        let mut st = lock(&self.state);
        st.retry_at = Some(Instant::now() + st.backoff);
        st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
        None
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
        conn: &mut MultiplexedConnection,
    ) -> Option<T> {
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                let lost =
                    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error();
                self.failed(op, &e.to_string(), lost);
                None
            }
            Err(_) => {
                self.failed(op, &format!("no answer within {:?}", self.timeout), true);
                None
            }
        }
    }

    /// A connection that may serve: after a lost invalidation, only once everything was reset.
    async fn ready(&self) -> Option<MultiplexedConnection> {
        let mut conn = self.conn().await?;
        if self.needs_reset.load(Ordering::SeqCst) {
            let token = new_token();
            let set = redis::cmd("SET")
                .arg(self.global_gen_key())
                .arg(&*token)
                .clone();
            self.run::<()>("reset", &set, &mut conn).await?;
            self.needs_reset.store(false, Ordering::SeqCst);
            lock(&self.memo).global = Some(token);
            tracing::info!(redis = %self.shown_url, "redis tier reset after lost invalidations");
        }
        Some(conn)
    }

    /// The token at `key`, created if missing.
    async fn ensure_token(&self, key: &str, conn: &mut MultiplexedConnection) -> Option<String> {
        let set = redis::cmd("SET")
            .arg(key)
            .arg(&*new_token())
            .arg("NX")
            .clone();
        self.run::<Option<String>>("token", &set, conn).await?;
        self.run::<Option<String>>("token", redis::cmd("GET").arg(key), conn)
            .await
            .flatten()
    }

    async fn replace_token(&self, key: String) -> Option<Arc<str>> {
        let mut conn = self.conn().await?;
        let token = new_token();
        let set = redis::cmd("SET").arg(key).arg(&*token).clone();
        self.run::<()>("invalidate", &set, &mut conn).await?;
        Some(token)
    }
}

#[async_trait::async_trait]
impl RemoteTier for RedisL2 {
    fn is_present(&self) -> bool {
        true
    }

    /// What this process last saw of `ns`, if it saw it: what a row read from now on is
    /// stored under.
    fn tag(&self, ns: &Namespace) -> Option<RemoteTag> {
        let memo = lock(&self.memo);
        Some(RemoteTag {
            clock: memo.clock?,
            global: memo.global.clone()?,
            ns: memo.namespaces.get(ns)?.clone(),
        })
    }

    /// The row stored for this key: `Some(None)` is a stored "no such row", `None` nothing
    /// usable (absent, invalidated, written under old tokens, unreadable, or no Redis).
    async fn get(&self, ns: &Namespace, key_json: &str) -> Option<Option<Row>> {
        let mut conn = self.ready().await?;
        let data_key = self.data_key(ns, key_json);
        let mget = redis::cmd("MGET")
            .arg(self.clock_key())
            .arg(self.global_gen_key())
            .arg(self.ns_gen_key(ns))
            .arg(&data_key)
            .clone();
        let (clock, global, ns_token, data): (
            Option<u64>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = self.run("get", &mget, &mut conn).await?;
        let clock = clock.unwrap_or(0);
        let (global, ns_token) = match (global, ns_token) {
            (Some(g), Some(n)) => (g, n),
            (g, n) => {
                let g = match g {
                    Some(g) => g,
                    None => self.ensure_token(&self.global_gen_key(), &mut conn).await?,
                };
                let n = match n {
                    Some(n) => n,
                    None => self.ensure_token(&self.ns_gen_key(ns), &mut conn).await?,
                };
                self.remember(ns, clock, &g, &n);
                // Whatever `data` holds was written under tokens that no longer exist.
                return None;
            }
        };
        self.remember(ns, clock, &global, &ns_token);
        let data = data?;
        match decode_entry(&data, &format!("{global}/{ns_token}")) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(
                    redis = %self.shown_url,
                    key = %data_key,
                    error = %reason,
                    "unreadable row in the redis tier; ignored"
                );
                None
            }
        }
    }

    /// Stores a row (or "no such row") read or written after `tag` was taken, unless the key
    /// was invalidated since (then a write leaves a tombstone).
    async fn store(
        &self,
        ns: &Namespace,
        key_json: &str,
        tag: &RemoteTag,
        row: Option<&Row>,
        mode: StoreMode,
    ) {
        let encoded = match row {
            None => Some(J::Null),
            Some(row) => encode_row(row),
        };
        let Some(encoded) = encoded else {
            // A value kind this version cannot store: make sure nothing older stays there.
            self.invalidate_key(ns, key_json).await;
            return;
        };
        let Some(mut conn) = self.ready().await else {
            if mode == StoreMode::Write {
                // What Redis holds predates the write.
                self.lost_invalidation();
            }
            return;
        };
        let value = format!("{}|{}", tokens(tag), json!({ "r": encoded }));
        let script = redis::cmd("EVAL")
            .arg(STORE_SCRIPT)
            .arg(2)
            .arg(self.data_key(ns, key_json))
            .arg(self.clock_key())
            .arg(tag.clock)
            .arg(value)
            .arg(self.ttl_ms)
            .arg(match mode {
                StoreMode::Fill => "fill",
                StoreMode::Write => "write",
            })
            .clone();
        match self.run::<(i64, u64)>("store", &script, &mut conn).await {
            Some((_, clock)) => self.saw_clock(clock),
            None if mode == StoreMode::Write => self.lost_invalidation(),
            None => {}
        }
    }

    /// An invalidation could not be sent: stop serving until everything was reset.
    fn lost_invalidation(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
    }

    /// Invalidates a key's row for every process; if Redis cannot be told, the tier stops
    /// serving until reset.
    async fn invalidate_key(&self, ns: &Namespace, key_json: &str) {
        let done = match self.conn().await {
            Some(mut conn) => {
                let script = redis::cmd("EVAL")
                    .arg(INVALIDATE_SCRIPT)
                    .arg(2)
                    .arg(self.data_key(ns, key_json))
                    .arg(self.clock_key())
                    .arg(self.ttl_ms)
                    .clone();
                match self.run::<u64>("invalidate", &script, &mut conn).await {
                    Some(clock) => {
                        self.saw_clock(clock);
                        true
                    }
                    None => false,
                }
            }
            None => false,
        };
        if !done {
            self.lost_invalidation();
        }
    }

    /// Makes every row of `ns` invisible to every process.
    async fn invalidate_namespace(&self, ns: &Namespace) {
        match self.replace_token(self.ns_gen_key(ns)).await {
            Some(token) => {
                lock(&self.memo).namespaces.insert(ns.clone(), token);
            }
            None => self.needs_reset.store(true, Ordering::SeqCst),
        }
    }

    /// Makes every row invisible to every process.
    async fn invalidate_all(&self) {
        match self.replace_token(self.global_gen_key()).await {
            Some(token) => lock(&self.memo).global = Some(token),
            None => self.needs_reset.store(true, Ordering::SeqCst),
        }
    }

    /// Whether Redis answers a `PING` now.
    async fn ping(&self) -> Result<(), CacheError> {
        let err = |reason: String| CacheError::Redis {
            url: self.shown_url.clone(),
            reason,
        };
        let Some(mut conn) = self.conn().await else {
            let last = lock(&self.state).last_error.clone();
            let mut reason = "not connected".to_owned();
            if let Some(last) = last {
                let _ = write!(reason, ": {last}");
            }
            return Err(err(reason));
        };
        match tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(err(scrub(&e.to_string(), &self.url))),
            Err(_) => Err(err(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// Reads a stored entry: its row if it is not a tombstone and was written under `tokens`.
fn decode_entry(data: &str, tokens: &str) -> Result<Option<Option<Row>>, String> {
    let mut parts = data.splitn(3, '|');
    let (Some(floor), Some(tag)) = (parts.next(), parts.next()) else {
        return Err("no floor".to_owned());
    };
    floor
        .parse::<u64>()
        .map_err(|_| format!("invalid floor `{floor}`"))?;
    if tag == "~" {
        return Ok(None);
    }
    let body = parts.next().ok_or("no row")?;
    if tag != tokens {
        return Ok(None);
    }
    let entry: J = serde_json::from_str(body).map_err(|e| e.to_string())?;
    match entry.get("r") {
        Some(J::Null) => Ok(Some(None)),
        Some(row) => Ok(Some(Some(decode_row(row)?))),
        None => Err("the entry has no row".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheConfig;
    use stream_core::Value;

    #[test]
    fn messages_lose_the_password() {
        let url = "redis://user:s3cret@10.0.0.1:6379/0";
        let msg = format!("could not reach {url}: auth failed for s3cret");
        let out = scrub(&msg, url);
        assert!(!out.contains("s3cret"), "{out}");
        assert!(out.contains("redis://user:***@10.0.0.1:6379/0"), "{out}");
        assert_eq!(scrub("plain", "redis://h:1"), "plain");
    }

    #[test]
    fn entries_are_served_only_under_the_current_tokens_and_never_as_tombstones() {
        let row: Row = [("id", Value::Int(7))].into_iter().collect();
        let data = format!("12|g1/n1|{}", json!({ "r": encode_row(&row) }));
        assert_eq!(decode_entry(&data, "g1/n1"), Ok(Some(Some(row))));
        assert_eq!(decode_entry(&data, "g1/n2"), Ok(None));
        assert_eq!(decode_entry(&data, "g2/n1"), Ok(None));
        assert_eq!(
            decode_entry(r#"0|g1/n1|{"r":null}"#, "g1/n1"),
            Ok(Some(None))
        );
        assert_eq!(decode_entry("13|~", "g1/n1"), Ok(None));
        assert!(decode_entry("x|~", "g1/n1").is_err());
        assert!(decode_entry("1|g1/n1|{", "g1/n1").is_err());
        assert!(decode_entry(r#"1|g1/n1|{"x":1}"#, "g1/n1").is_err());
        assert!(decode_entry("1|g1/n1", "g1/n1").is_err());
    }

    #[test]
    fn names_are_escaped_so_keys_cannot_collide() {
        let mut a = String::new();
        escape(&mut a, "a.b");
        let mut b = String::new();
        escape(&mut b, "a");
        assert_eq!(a, "a%2Eb");
        assert_ne!(format!("{a}.c"), format!("{b}.b.c"));
        let mut c = String::new();
        escape(&mut c, "x:%");
        assert_eq!(c, "x%3A%25");
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn redis_settings_are_checked_without_showing_the_password() {
        let with = |tier: RedisTier| CacheConfig {
            redis: Some(tier),
            ..CacheConfig::default()
        };
        assert!(
            with(RedisTier::new("redis://:pw@127.0.0.1:6379/0"))
                .validate()
                .is_ok()
        );
        let err = with(RedisTier::new("http://:hunter2@example.com"))
            .validate()
            .expect_err("not redis");
        let text = err.to_string();
        assert!(text.starts_with("cache.redis.url "), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let mut tier = RedisTier::new("redis://127.0.0.1");
        tier.prefix = String::new();
        let err = with(tier.clone()).validate().expect_err("empty prefix");
        assert!(err.to_string().starts_with("cache.redis.prefix "));
        tier.prefix = "p".into();
        tier.ttl = Duration::ZERO;
        let err = with(tier).validate().expect_err("zero ttl");
        assert!(err.to_string().starts_with("cache.redis.ttl "));
        let debug = format!("{:?}", RedisTier::new("redis://u:hunter2@h:1"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
