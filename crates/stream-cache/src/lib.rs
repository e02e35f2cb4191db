//! A read cache for ultimate-stream, kept fresh by the change stream.
//!
//! [`Cache`] holds rows by namespace and key, and query results by namespace and query, in a
//! moka LRU + TTL tier, optionally backed by a Redis tier shared between processes. Change
//! events of a namespace invalidate what they touch, so a read made after the event of a
//! committed change was applied returns the new row, whoever made the change.
//! [`CachedStore`] puts any [`Store`](stream_core::Store) behind it, with read-your-own-writes
//! for writes made through it.
//!
//! ```
//! use stream_cache::{Cache, CacheConfig, CachedStore};
//! use stream_core::{ChangeEvent, MemoryStore, Namespace, Op, Row, SourceKind, Store, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::new(CacheConfig::default()).await?;
//! let orders = CachedStore::new(MemoryStore::new(), cache.clone());
//! let ns = Namespace::new("shop", "orders");
//! let key: Row = [("id", Value::Int(7))].into_iter().collect();
//! let row = |status: &str| -> Row {
//!     [("id", Value::Int(7)), ("status", Value::from(status))].into_iter().collect()
//! };
//!
//! // Read-your-own-writes: the written row is cached, the read does not reach the store.
//! orders.write(&ns, &key, &row("new")).await?;
//! assert_eq!(orders.read(&ns, &key).await?, Some(row("new")));
//!
//! // Another client changes the row; until its change event arrives the cache answers...
//! orders.store().write(&ns, &key, &row("paid")).await?;
//! assert_eq!(orders.read(&ns, &key).await?, Some(row("new")));
//! // ...and once it was applied, the next read fetches the new row.
//! cache
//!     .apply(&ChangeEvent {
//!         source: SourceKind::MySql,
//!         namespace: ns.clone(),
//!         op: Op::Update,
//!         key: Some(key.clone()),
//!         before: Some(row("new")),
//!         after: Some(row("paid")),
//!         update: None,
//!         position: "binlog:mysql-bin.000001:4+1".parse()?,
//!         ts_ms: 1_732_272_000_000,
//!         txn: None,
//!     })
//!     .await;
//! assert_eq!(orders.read(&ns, &key).await?, Some(row("paid")));
//! assert_eq!(orders.read(&ns, &key).await?, Some(row("paid")));
//!
//! let stats = cache.stats();
//! assert_eq!((stats.hits, stats.misses, stats.invalidations), (3, 1, 1));
//! # Ok(()) }
//! ```
//!
//! | feature | what |
//! | --- | --- |
//! | `redis` | `RedisTier`: a second tier in Redis, shared by several processes |
//!
//! # Feeding it events
//!
//! Freshness comes from the events: hand every [`ChangeEvent`](stream_core::ChangeEvent) of the
//! namespaces read through the cache to [`Cache::apply`], and every
//! [`SchemaChange`](stream_core::SchemaChange) to [`Cache::apply_schema`]. If events may have
//! been skipped (a lagging subscription reporting `Delivery::Lagged`), call
//! [`Cache::invalidate_all`]: the cache cannot know which keys they touched. The TTL bounds how
//! long a row can stay stale when events do not arrive at all.
//!
//! # Invalidate, never update in place
//!
//! An event removes the cached row of its key (and of its `before` row's key, should the
//! primary key have changed) and every cached query result of its namespace; an event without a
//! key removes the whole namespace. It never writes its `after` row into the cache: the event
//! may be older than what is cached by then (the write through the streamer that it reports
//! was already followed by another, a read raced with it), and an update in place would bring
//! the old row back. Invalidation is always safe; its cost is one store read after each change
//! of a key that is read again.
//!
//! # Races, and how generations settle them
//!
//! A read that misses must ask the store, and a change may be committed and its event applied
//! between the store's answer and the moment the answer is cached: cached as is, the old row
//! would stay until the TTL. So a reader takes a [`FillTicket`] (a reading of the cache's
//! clock) *before* asking the store, and [`Cache::fill`] is told the ticket: every invalidation
//! takes the next clock value and raises the counter of the key (and of the namespace's query
//! results, or of the namespace, or of everything) to it, and an entry is served only while the
//! counters covering it are not above its ticket. A fill that lost the race is dropped, or dies
//! the moment the invalidation lands if it was stored first. Counters are shared by stripes of
//! keys: a collision can drop a fill needlessly, never serve a stale one. Lookups take no lock.
//!
//! Writes through the streamer ([`Cache::begin_write`], used by [`CachedStore`]) take their tag
//! before the store is written and cache the written row after, so a read right after sees it.
//! The row is cached only if nothing else touched the key in between: when two writes of a key
//! overlap, or an event or invalidation arrives during the write, the store's final order is
//! unknown here and the key is invalidated instead. A write's end also kills fills whose
//! tickets were taken before it (they may hold the row from before the write).
//! For tables whose stored row differs from the written one (defaults, triggers, `ON UPDATE`
//! columns), [`WritePolicy::Invalidate`] caches nothing after a write: the next read asks the
//! store. [`Cache::put`] caches unconditionally, for values known to be current.
//!
//! # Query results
//!
//! [`Cache::get_query`] and [`Cache::fill_query`] cache whole results by namespace and query
//! (keyed by an exact encoding of the filter, order and limit). Any change of the namespace
//! drops them all: whether a changed row enters or leaves a result cannot be told without
//! running the query. They stay in the local tier only: a result is cheap to recompute once
//! per process and costly to keep consistent across processes.
//!
//! # Keys
//!
//! A row is cached under its namespace and the contract JSON of its key row
//! ([`stream_core::json::write_row`], what [`MemoryStore`](stream_core::MemoryStore) keys by):
//! `Int(7)` and `UInt(7)` are the same key, as they are in the events a source emits.
//!
//! # The Redis tier
//!
//! With the `redis` feature and `CacheConfig::redis` set, a local miss asks Redis before the
//! store (one `MGET`), and rows cached locally are stored there too (with the tier's TTL), so
//! processes sharing a prefix share their reads. Without the feature, or with
//! `CacheConfig::redis` unset, there is no second tier: a no-op one stands in, and the cache
//! behaves the same otherwise. Keys:
//!
//! | key | value |
//! | --- | --- |
//! | `{prefix}:{db}.{table}:{key JSON}` | `{floor}\|{global token}/{namespace token}\|{row}`, or a tombstone `{floor}\|~` |
//! | `{prefix}:clock` | the invalidation clock, a counter |
//! | `{prefix}:gen:{db}.{table}` | the namespace's token |
//! | `{prefix}:gen` | the global token |
//!
//! (`%`, `.` and `:` in names are percent-escaped.) The same race as in the local tier exists
//! between processes: a process may read the store before a change and store the old row in
//! Redis after another process applied the change's event. So the generations live in Redis
//! too, with a compare-and-set done by a Lua script:
//!
//! - a key is invalidated by moving the clock and leaving a tombstone whose floor is the new
//!   clock value;
//! - every lookup reads the clock with the row, and a ticket carries the last clock reading,
//!   taken before the store read; a fill is refused if the key's floor is above it;
//! - a write through the streamer moves the clock too and raises the floor, so fills that
//!   read before the write cannot land over it; if the key was invalidated since the write
//!   began, it leaves a tombstone instead;
//! - a namespace, or everything, is invalidated by replacing its token with a fresh random
//!   one: a row is served only if the tokens it was stored under are still current, so no
//!   `SCAN` is needed. A missing token is created rather than taken as a value, so a flushed
//!   or evicted token never makes old rows valid again.
//!
//! Rows travel in a private, lossless tagged encoding (every [`Value`](stream_core::Value)
//! kind, floats bit for bit).
//!
//! Every process sharing a tier must apply the change events of the namespaces it reads, as its
//! own local tier needs anyway: a process's invalidations reach Redis, not the other
//! processes' local tiers. A process stores rows in Redis once it has looked one up there
//! (which tells it the clock and the tokens). One Redis server is expected (the scripts touch
//! two keys, which Redis Cluster would refuse).
//!
//! Redis never fails a read: errors and timeouts (`RedisTier::timeout`) are logged with
//! `tracing::warn!` (the URL without its password) and counted in
//! [`CacheStats::redis_errors`], and the read goes on to the store; a lost connection is
//! retried with backoff. An invalidation that could not be delivered stops the tier from
//! serving until the global token could be replaced, dropping every row it holds: a stale row
//! is never served for want of an invalidation. [`Cache::check_redis`] is the health check.
//!
//! # Not covered
//!
//! - Reads from a replica that lags behind the server the events come from may cache rows older
//!   than the last applied event.
//! - After a restart the cache starts empty, but a shared Redis tier keeps what it had: rows
//!   changed while no process applied events stay until the resumed stream delivers those
//!   events (or the TTL).

mod cache;
mod codec;
mod config;
mod error;
#[cfg(test)]
mod fixtures;
mod gens;
mod key;
#[cfg(feature = "redis")]
mod redis_tier;
mod remote;
mod store;

pub use cache::{Cache, CacheStats, FillTicket, Lookup, WriteTicket};
pub use config::CacheConfig;
pub use error::CacheError;
#[cfg(feature = "redis")]
pub use redis_tier::RedisTier;
pub use store::{CachedStore, WritePolicy};
