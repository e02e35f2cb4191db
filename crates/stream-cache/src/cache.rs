//! The cache: a moka LRU + TTL tier of rows and query results, kept fresh by change events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use stream_core::{ChangeEvent, Namespace, Query, Row, SchemaChange, SchemaChangeKind};

use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::gens::{Generations, Kind};
use crate::key::{RowKey, namespace_hash, namespace_slot, query_key};
use crate::remote::{RemoteTag, RemoteTier, StoreMode};

/// What [`Cache::get`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The cache knows the answer: the row, or `None` for "there is no such row".
    Hit(Option<Row>),
    /// Ask the store (take a [`Cache::ticket`] first, then [`Cache::fill`] the answer).
    Miss,
}

impl Lookup {
    /// Whether the cache knew the answer.
    pub fn is_hit(&self) -> bool {
        matches!(self, Lookup::Hit(_))
    }

    /// The answer if the cache knew it: `Some(None)` is a cached "no such row".
    pub fn into_hit(self) -> Option<Option<Row>> {
        match self {
            Lookup::Hit(row) => Some(row),
            Lookup::Miss => None,
        }
    }
}

/// Taken just before reading the store, handed to [`Cache::fill`] with what was read: if the
/// key (or its namespace) was invalidated in between, the fill is dropped, because the store
/// may have answered with what the invalidation was about.
#[derive(Debug, Clone)]
pub struct FillTicket {
    seq: u64,
    ns_hash: u64,
    remote: Option<RemoteTag>,
}

/// Counters since the cache was created.
///
/// Lookups answered by either tier count as `hits`, those left to the store as `misses`;
/// `redis_hits` is the part of `hits` the Redis tier answered. `entries` counts what the local
/// tier holds, including entries an invalidation made unservable but that were not evicted yet
/// (a namespace invalidation does not walk the cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Row lookups answered by the cache.
    pub hits: u64,
    /// Row lookups left to the store.
    pub misses: u64,
    /// Row lookups answered by the Redis tier (part of `hits`).
    pub redis_hits: u64,
    /// Redis commands or connections that failed (each fell back without failing a read).
    pub redis_errors: u64,
    /// Query lookups answered by the cache.
    pub query_hits: u64,
    /// Query lookups left to the store.
    pub query_misses: u64,
    /// Rows the local tier dropped for room (least recently used) or age (TTL).
    pub evictions: u64,
    /// Query results the local tier dropped for room or age.
    pub query_evictions: u64,
    /// Keys, namespaces or everything invalidated (by events, writes that raced, or calls).
    pub invalidations: u64,
    /// Fills dropped because their key was invalidated after the ticket was taken.
    pub stale_fills: u64,
    /// Rows in the local tier now (approximate until pending maintenance ran).
    pub entries: u64,
    /// Query results in the local tier now (approximate likewise).
    pub query_entries: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    redis_hits: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
    query_hits: AtomicU64,
    query_misses: AtomicU64,
    evictions: AtomicU64,
    query_evictions: AtomicU64,
    invalidations: AtomicU64,
    stale_fills: AtomicU64,
}

#[derive(Clone)]
struct RowEntry {
    tag: u64,
    kind: Kind,
    row: Option<Arc<Row>>,
}

#[derive(Clone)]
struct QueryEntry {
    tag: u64,
    rows: Arc<Vec<Row>>,
}

type Moka<V> = moka::future::Cache<Box<[u8]>, V>;

struct Inner {
    rows: Moka<RowEntry>,
    queries: Option<Moka<QueryEntry>>,
    gens: Generations,
    counters: Arc<Counters>,
    remote: Box<dyn RemoteTier>,
}

/// A cache of rows and query results by namespace, kept fresh by the change stream.
///
/// Cheap to clone: clones share one cache. See the [crate documentation](crate) for the
/// guarantees and for how races between reads and invalidations are resolved.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn moka<V: Clone + Send + Sync + 'static>(
    capacity: u64,
    ttl: Option<std::time::Duration>,
    evictions: Arc<Counters>,
    count: fn(&Counters) -> &AtomicU64,
) -> Moka<V> {
    let mut builder = moka::future::Cache::builder()
        .max_capacity(capacity)
        .eviction_policy(EvictionPolicy::lru())
        .eviction_listener(move |_key, _value, cause| {
            if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                count(&evictions).fetch_add(1, Relaxed);
            }
        });
    if let Some(ttl) = ttl {
        builder = builder.time_to_live(ttl);
    }
    builder.build()
}

impl Cache {
    /// A cache with these settings; connects to the Redis tier when one is configured (an
    /// unreachable Redis is logged and retried later, it is not an error).
    pub async fn new(config: CacheConfig) -> Result<Self, CacheError> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let rows = moka(config.max_entries, config.ttl, counters.clone(), |c| {
            &c.evictions
        });
        let queries = (config.max_query_results > 0).then(|| {
            moka(
                config.max_query_results,
                config.ttl,
                counters.clone(),
                |c| &c.query_evictions,
            )
        });
        let remote = crate::remote::open(&config, &counters).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                rows,
                queries,
                gens: Generations::new(),
                counters,
                remote,
            }),
        })
    }

    /// The cached row for this key, if the cache knows it: [`Lookup::Hit`]`(None)` means the
    /// row does not exist. On a local miss the Redis tier (if any) is asked. Never fails.
    pub async fn get(&self, ns: &Namespace, key: &Row) -> Lookup {
        let inner = &*self.inner;
        let k = RowKey::new(ns, key);
        if let Some(entry) = inner.rows.get(k.bytes()).await
            && inner.gens.row_floor(k.slots, entry.kind) <= entry.tag
        {
            inner.counters.hits.fetch_add(1, Relaxed);
            return Lookup::Hit(entry.row.map(Arc::unwrap_or_clone));
        }
        let seq = inner.gens.now();
        if let Some(row) = inner.remote.get(ns, k.json()).await {
            inner.counters.hits.fetch_add(1, Relaxed);
            inner.counters.redis_hits.fetch_add(1, Relaxed);
            self.fill_local(&k, row.clone().map(Arc::new), seq).await;
            return Lookup::Hit(row);
        }
        inner.counters.misses.fetch_add(1, Relaxed);
        Lookup::Miss
    }

    /// A ticket for a read of `ns` about to be made: take it before asking the store, hand it
    /// to [`fill`](Self::fill) or [`fill_query`](Self::fill_query) with the answer.
    pub fn ticket(&self, ns: &Namespace) -> FillTicket {
        FillTicket {
            seq: self.inner.gens.now(),
            ns_hash: namespace_hash(ns),
            remote: self.inner.remote.tag(ns),
        }
    }

    /// Caches what the store answered for this key (`None`: no such row), unless the key, its
    /// namespace or everything was invalidated since `ticket` was taken (or a write through
    /// [`begin_write`](Self::begin_write) ended since): then the answer may predate a change,
    /// and is dropped. A ticket taken for another namespace is ignored.
    pub async fn fill(&self, ns: &Namespace, key: &Row, row: Option<Row>, ticket: FillTicket) {
        let k = RowKey::new(ns, key);
        if ticket.ns_hash != k.ns_hash {
            return;
        }
        let row = row.map(Arc::new);
        if self.fill_local(&k, row.clone(), ticket.seq).await
            && let Some(tag) = &ticket.remote
        {
            // Shared through the remote tier, which refuses it if any process invalidated the
            // key after the ticket's reading of the tier's clock.
            self.inner
                .remote
                .store(ns, k.json(), tag, row.as_deref(), StoreMode::Fill)
                .await;
        }
    }

    async fn fill_local(&self, k: &RowKey, row: Option<Arc<Row>>, seq: u64) -> bool {
        let inner = &*self.inner;
        if inner.gens.row_floor(k.slots, Kind::Fill) > seq {
            inner.counters.stale_fills.fetch_add(1, Relaxed);
            return false;
        }
        let entry = RowEntry {
            tag: seq,
            kind: Kind::Fill,
            row,
        };
        inner.rows.insert(k.to_boxed(), entry).await;
        true
    }

    /// Caches `row` as the current value of this key (`None`: it no longer exists), whatever
    /// was cached or is being filled; drops the namespace's cached query results.
    ///
    /// For a value known to be current. After a write of your own, prefer
    /// [`begin_write`](Self::begin_write): `put` cannot tell whether another writer changed the
    /// row between your write and this call, a write ticket can.
    pub async fn put(&self, ns: &Namespace, key: &Row, row: Option<Row>) {
        let k = RowKey::new(ns, key);
        let tag = self.inner.gens.invalidate_key(k.slots);
        let remote_tag = self.inner.remote.tag(ns);
        self.store_write(ns, &k, tag, remote_tag, row.map(Arc::new))
            .await;
    }

    /// Caches the row of a write through the streamer (tagged from its start) in both tiers.
    async fn store_write(
        &self,
        ns: &Namespace,
        k: &RowKey,
        tag: u64,
        remote_tag: Option<RemoteTag>,
        row: Option<Arc<Row>>,
    ) {
        let inner = &*self.inner;
        let entry = RowEntry {
            tag,
            kind: Kind::Write,
            row: row.clone(),
        };
        inner.rows.insert(k.to_boxed(), entry).await;
        if !inner.remote.is_present() {
            return;
        }
        match remote_tag {
            Some(remote_tag) => {
                let row = row.as_deref();
                let remote = &inner.remote;
                remote
                    .store(ns, k.json(), &remote_tag, row, StoreMode::Write)
                    .await;
            }
            None => inner.remote.invalidate_key(ns, k.json()).await,
        }
        // Lookups of this process that read the remote tier before it held the write may have
        // cached what they read: they die now (this write's own entry lives on).
        inner.gens.end_write(k.slots);
    }

    /// Announces a write (or delete) of this key through the streamer, before it is sent to
    /// the store; [`WriteTicket::finish`] it with the row written once the store accepted it.
    ///
    /// The key is invalidated at once. On `finish`, the row is cached (read-your-own-writes)
    /// only if nothing else touched the key meanwhile: no change event, no invalidation, no
    /// other write through this cache overlapping this one. Otherwise the key is invalidated,
    /// because the order in which the store applied the competing changes is unknown here.
    pub fn begin_write(&self, ns: &Namespace, key: &Row) -> WriteTicket {
        let key = RowKey::new(ns, key);
        let remote = self.inner.remote.tag(ns);
        let tag = self.inner.gens.begin_write(key.slots);
        WriteTicket {
            cache: self.clone(),
            ns: ns.clone(),
            key,
            tag,
            remote,
            done: false,
        }
    }

    /// Cached result of this query on `ns`, if any (and none written since).
    pub async fn get_query(&self, ns: &Namespace, query: &Query) -> Option<Vec<Row>> {
        let inner = &*self.inner;
        let queries = inner.queries.as_ref()?;
        let found = match query_key(ns, query) {
            Some(key) => queries
                .get(&key)
                .await
                .filter(|entry| inner.gens.query_floor(namespace_slot(ns)) <= entry.tag),
            None => None,
        };
        match found {
            Some(entry) => {
                inner.counters.query_hits.fetch_add(1, Relaxed);
                Some(Arc::unwrap_or_clone(entry.rows))
            }
            None => {
                inner.counters.query_misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Caches the store's answer to this query, unless anything of `ns` changed since the
    /// ticket was taken. Query results stay in the local tier (see the crate documentation).
    pub async fn fill_query(
        &self,
        ns: &Namespace,
        query: &Query,
        rows: Vec<Row>,
        ticket: FillTicket,
    ) {
        let inner = &*self.inner;
        let Some(queries) = &inner.queries else {
            return;
        };
        if ticket.ns_hash != namespace_hash(ns) {
            return;
        }
        let Some(key) = query_key(ns, query) else {
            return;
        };
        if inner.gens.query_floor(namespace_slot(ns)) > ticket.seq {
            inner.counters.stale_fills.fetch_add(1, Relaxed);
            return;
        }
        let entry = QueryEntry {
            tag: ticket.seq,
            rows: Arc::new(rows),
        };
        queries.insert(key, entry).await;
    }

    /// Applies a change event: invalidates its key in both tiers (also the key its `before`
    /// row had, should an update have changed the primary key) and every cached query result
    /// of its namespace; an event without a key invalidates the whole namespace.
    ///
    /// Events only ever invalidate, never update a cached row in place: an event may be older
    /// than a row cached since (a write through the streamer whose own event is still on its
    /// way, a read that raced), and writing its `after` would bring the old row back. The cost
    /// is one store read after each change of a key that is read again.
    pub async fn apply(&self, event: &ChangeEvent) {
        let ns = &event.namespace;
        let Some(key) = event.key.as_ref().filter(|k| !k.is_empty()) else {
            self.invalidate_namespace(ns).await;
            return;
        };
        self.invalidate(ns, key).await;
        for row in [&event.before, &event.after].into_iter().flatten() {
            if let Some(other) = project(row, key)
                && other != *key
            {
                self.invalidate(ns, &other).await;
            }
        }
    }

    /// Applies a schema change: a table renamed, dropped, truncated or altered is invalidated
    /// (both names for a rename); a dropped database or a closed MongoDB stream invalidates
    /// everything.
    pub async fn apply_schema(&self, change: &SchemaChange) {
        match &change.kind {
            SchemaChangeKind::Rename { to } => {
                self.invalidate_namespace(&change.namespace).await;
                self.invalidate_namespace(to).await;
            }
            SchemaChangeKind::DropDatabase | SchemaChangeKind::Invalidate => {
                self.invalidate_all().await;
            }
            _ => self.invalidate_namespace(&change.namespace).await,
        }
    }

    /// Forgets this key in both tiers, and every cached query result of `ns`.
    pub async fn invalidate(&self, ns: &Namespace, key: &Row) {
        let k = RowKey::new(ns, key);
        self.invalidate_key(ns, &k).await;
    }

    async fn invalidate_key(&self, ns: &Namespace, k: &RowKey) {
        let inner = &*self.inner;
        inner.counters.invalidations.fetch_add(1, Relaxed);
        inner.gens.invalidate_key(k.slots);
        inner.rows.invalidate(k.bytes()).await;
        if inner.remote.is_present() {
            inner.remote.invalidate_key(ns, k.json()).await;
            // A lookup of this process that read the remote tier before the invalidation
            // reached it may have cached the old row after the first bump: it dies now.
            inner.gens.invalidate_key(k.slots);
        }
    }

    /// Forgets every row and query result of `ns`, in both tiers. O(1): entries are made
    /// unservable at once and evicted over time.
    pub async fn invalidate_namespace(&self, ns: &Namespace) {
        let inner = &*self.inner;
        inner.counters.invalidations.fetch_add(1, Relaxed);
        inner.gens.invalidate_namespace(namespace_slot(ns));
        if inner.remote.is_present() {
            inner.remote.invalidate_namespace(ns).await;
            inner.gens.invalidate_namespace(namespace_slot(ns));
        }
    }

    /// Forgets everything, in both tiers (in Redis: for every process sharing the prefix).
    pub async fn invalidate_all(&self) {
        let inner = &*self.inner;
        inner.counters.invalidations.fetch_add(1, Relaxed);
        inner.gens.invalidate_all();
        inner.rows.invalidate_all();
        if let Some(queries) = &inner.queries {
            queries.invalidate_all();
        }
        if inner.remote.is_present() {
            inner.remote.invalidate_all().await;
            inner.gens.invalidate_all();
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            redis_hits: c.redis_hits.load(Relaxed),
            redis_errors: c.redis_errors.load(Relaxed),
            query_hits: c.query_hits.load(Relaxed),
            query_misses: c.query_misses.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            query_evictions: c.query_evictions.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            stale_fills: c.stale_fills.load(Relaxed),
            entries: self.inner.rows.entry_count(),
            query_entries: self.inner.queries.as_ref().map_or(0, |q| q.entry_count()),
        }
    }

    /// Runs the local tier's pending maintenance now (evictions, expirations, counts), which
    /// otherwise happens in passing: for exact [`stats`](Self::stats) in tests and reports.
    pub async fn run_pending_tasks(&self) {
        self.inner.rows.run_pending_tasks().await;
        if let Some(queries) = &self.inner.queries {
            queries.run_pending_tasks().await;
        }
    }

    /// Whether the Redis tier answers now; `Ok` when there is none. For health checks: reads
    /// never fail because of Redis.
    pub async fn check_redis(&self) -> Result<(), CacheError> {
        self.inner.remote.ping().await
    }
}

/// The key fields of `key`, taken from `row`; `None` if the row lacks one.
fn project(row: &Row, key: &Row) -> Option<Row> {
    key.iter()
        .map(|(name, _)| Some((name.clone(), row.get(name)?.clone())))
        .collect::<Option<Vec<_>>>()
        .map(|fields| fields.into_iter().collect())
}

/// A write through the streamer under way, from [`Cache::begin_write`].
///
/// [`finish`](Self::finish) it once the store accepted the write, [`abort`](Self::abort) it
/// if the store failed. Dropped unfinished (a cancelled task), it invalidates the key.
#[must_use = "finish or abort the write ticket once the store answered"]
pub struct WriteTicket {
    cache: Cache,
    ns: Namespace,
    key: RowKey,
    tag: u64,
    remote: Option<RemoteTag>,
    done: bool,
}

impl std::fmt::Debug for WriteTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTicket")
            .field("ns", &self.ns)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl WriteTicket {
    /// The store accepted the write: caches `row` (`None` after a delete) unless something
    /// else touched the key since [`Cache::begin_write`], in which case it invalidates it.
    pub async fn finish(mut self, row: Option<Row>) {
        let gens = &self.cache.inner.gens;
        let slots = self.key.slots;
        let may_cache = gens.write_may_cache(slots, self.tag);
        gens.end_write(slots);
        if may_cache {
            let remote = self.remote.take();
            self.cache
                .store_write(&self.ns, &self.key, self.tag, remote, row.map(Arc::new))
                .await;
        } else {
            self.cache.invalidate_key(&self.ns, &self.key).await;
        }
        self.cache.inner.gens.leave_write(slots);
        self.done = true;
    }

    /// The store failed (it may still have applied the write), or the row it keeps is not
    /// known here (defaults, triggers): invalidates the key, so the next read asks the store.
    pub async fn abort(mut self) {
        let slots = self.key.slots;
        self.cache.inner.gens.end_write(slots);
        self.cache.invalidate_key(&self.ns, &self.key).await;
        self.cache.inner.gens.leave_write(slots);
        self.done = true;
    }
}

impl Drop for WriteTicket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let inner = &self.cache.inner;
        let slots = self.key.slots;
        inner.gens.end_write(slots);
        inner.counters.invalidations.fetch_add(1, Relaxed);
        inner.gens.invalidate_key(slots);
        inner.gens.leave_write(slots);
        if !inner.remote.is_present() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let cache = self.cache.clone();
                let ns = self.ns.clone();
                let json = self.key.json().to_owned();
                handle.spawn(async move {
                    cache.inner.remote.invalidate_key(&ns, &json).await;
                    cache.inner.gens.invalidate_key(slots);
                });
            }
            Err(_) => inner.remote.lost_invalidation(),
        }
    }
}

#[cfg(test)]
mod tests;
